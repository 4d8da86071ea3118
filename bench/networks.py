"""Networks with a bump layer on a real table (scikit-learn's bundled breast-cancer data: 569 rows, 30
features, a 0/1 label; no download), against Keras `fit` of the same network.

1. One network, `[dense 16, bump, dense 1 sigmoid]`, binary cross-entropy, normalised features:
   bumpfit's engine in this process against Keras `fit` (jit_compile, steps_per_execution of a
   whole epoch), same data, epochs, batch, optimizer and validation rows. Accuracy and seconds.
2. A sweep of 64 such networks (8 sigma_init x 8 seeds) submitted as ONE sweep to a real
   `bumpfit serve` (SQLite, one worker), against the same 64 trained by Keras `fit` one after
   another in this process, and against bump's ReLU twin (the bump layer replaced by a relu,
   8 seeds through the API). Prints every accuracy and the wall-time ratio.

    python -m bench.networks [--epochs 50] [--keras-fits 64] [--case bump|rnn|all]
    KERAS_BACKEND=jax python -m bench.networks    # the JAX form (on a GPU where one is lent)

3. The recurrent case (`bench.recurrent`, first; `--case rnn` alone): 16 gated rnn networks
   (30 epochs unless --epochs says otherwise) as one sweep against 16 Keras fits one by one.

`--keras-fits N` times N of the 64 Keras fits and scales their time to 64 (each fit is the same
work); the accuracies compared are those of the N fitted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tests.conftest import Service, wait_for  # noqa: E402

SIGMAS = [0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0]
SEEDS = list(range(8))
BATCH, LEARNING_RATE, VALIDATION = 32, 0.01, 0.2
TIMEOUT_S = 1800


def table() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The breast-cancer table in a fixed random row order (the validation rows are the last 20%)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    order = np.random.default_rng(0).permutation(len(data.target))
    names = [n.replace(" ", "_") for n in data.feature_names]
    return data.data[order].astype(np.float32), data.target[order].astype(np.float32), names


def layers(sigma: float | None, relu: bool = False) -> list[dict[str, Any]]:
    """The network: dense 16, then bump (or its ReLU twin), then dense 1 sigmoid."""
    middle = {"type": "activation", "activation": "relu"} if relu else {"type": "bump", "sigma_init": sigma}
    return [{"type": "dense", "units": 16}, middle, {"type": "dense", "units": 1, "activation": "sigmoid"}]


def training(epochs: int, seed: int) -> dict[str, Any]:
    """The benches' training settings for a binary label (bench.recurrent's too)."""
    return {
        "loss": "binary_crossentropy",
        "metrics": ["accuracy"],
        "validation_split": VALIDATION,
        "epochs": epochs,
        "batch_size": BATCH,
        "learning_rate": LEARNING_RATE,
        "seed": seed,
    }


def request(dataset: str, sigma: float | None, seed: int, epochs: int, relu: bool = False) -> dict[str, Any]:
    """The job request of one network."""
    return {
        "model": {"layers": layers(sigma, relu)},
        "data": {"kind": "dataset", "id": dataset, "target": ["label"], "normalize": "standard"},
        "training": training(epochs, seed),
    }


def keras_fit(
    x: np.ndarray, y: np.ndarray, sigma: float | None, seed: int, epochs: int, relu: bool = False, jit: bool = True
) -> tuple[float, float]:
    """The same network by Keras `fit` (`jit_compile=jit`, a whole epoch per execution):
    (validation accuracy, seconds)."""
    import keras

    from workers.layers import BumpLayer

    n_train = int(len(x) * (1 - VALIDATION))
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    norm = keras.layers.Normalization()
    norm.adapt(x[:n_train])
    middle = keras.layers.Activation("relu") if relu else BumpLayer(per_feature=True)
    model = keras.Sequential(
        [
            keras.Input(shape=(x.shape[1],)),
            norm,
            keras.layers.Dense(16),
            middle,
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    if not relu and sigma is not None:
        model.layers[2].sigma.assign(np.full(16, sigma, np.float32))
    steps = -(-n_train // BATCH)
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit,
        steps_per_execution=steps,  # a whole epoch per call: the most Keras can do without Python per step
    )
    history = model.fit(
        x[:n_train], y[:n_train], validation_data=(x[n_train:], y[n_train:]), epochs=epochs, batch_size=BATCH, verbose=0
    )
    return float(history.history["val_accuracy"][-1]), time.perf_counter() - start


def engine_one(x: np.ndarray, y: np.ndarray, sigma: float, seed: int, epochs: int) -> tuple[float, float, float]:
    """One network by bumpfit's engine in this process: (validation accuracy, seconds, seconds warm)."""
    from app.jobs.schemas import JobRequest
    from workers.engine import Member, train_group

    spec = JobRequest.model_validate(request("d", sigma, seed, epochs)).model_dump(mode="json")
    spec.pop("layer")
    spec["data"].update({"n": len(x), "features": x.shape[1], "columns": [], "target": ["label"]})
    member = Member("one", spec, x, y[:, None])
    times = []
    for _ in range(2):  # the first includes the compile
        start = time.perf_counter()
        result = train_group([member])[0]
        times.append(time.perf_counter() - start)
    return float(result.metrics["val_accuracy"] or 0), times[0], times[1]


def csv(x: np.ndarray, y: np.ndarray, names: list[str]) -> bytes:
    """The table as a CSV with a header, the label last."""
    lines = [",".join([*names, "label"])] + [",".join(f"{v:.8g}" for v in row) for row in np.column_stack([x, y])]
    return ("\n".join(lines) + "\n").encode()


def sweep(
    svc: Service, dataset: str, epochs: int, grid: dict[str, list[Any]], relu: bool
) -> tuple[list[dict[str, Any]], float]:
    """Submit one sweep and wait for it: (its rows, seconds from submission to the last job's end)."""
    base = request(dataset, None, 0, epochs, relu)
    start = time.perf_counter()
    r = svc.http.post("/v1/sweeps", json={"base": base, "grid": grid})
    assert r.status_code == 201, r.text
    sweep_id = r.json()["id"]

    def done() -> bool:
        s = svc.http.get(f"/v1/sweeps/{sweep_id}").json()
        return all(row["status"] in ("succeeded", "failed", "cancelled") for row in s["jobs"])

    wait_for(done, TIMEOUT_S, "the sweep", every=0.25)
    seconds = time.perf_counter() - start
    rows = svc.http.get(f"/v1/sweeps/{sweep_id}", params={"limit": 1000}).json()["jobs"]
    failed = [row for row in rows if row["status"] != "succeeded"]
    assert not failed, failed[:2]
    return rows, seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--keras-fits", type=int, default=64, help="of the 64 Keras fits, how many to run and time")
    ap.add_argument("--case", choices=["bump", "rnn", "all"], default="all", help="rnn: the recurrent case alone")
    args = ap.parse_args()
    if args.case != "bump":
        from bench import recurrent

        recurrent.main(args.epochs if args.epochs != 50 else 30, args.keras_fits)
        if args.case == "rnn":
            return
    x, y, names = table()
    epochs = args.epochs
    print(
        f"breast cancer: {len(x)} rows x {x.shape[1]} features, validation {VALIDATION:.0%} (last rows), "
        f"{epochs} epochs, batch {BATCH}, Adam {LEARNING_RATE}, binary cross-entropy"
    )

    print("\n== one network: [dense 16, bump sigma_init 0.5, dense 1 sigmoid] ==")
    acc, cold, warm = engine_one(x, y, 0.5, 0, epochs)
    print(f"bumpfit engine:  val accuracy {acc:.4f}  {cold:.2f} s (compile included), {warm:.2f} s warm")
    timed = {jit: keras_fit(x, y, 0.5, 0, epochs, jit=jit) for jit in (True, False)}
    for jit, (acc_k, secs_k) in timed.items():
        print(
            f"Keras fit:       val accuracy {acc_k:.4f}  {secs_k:.2f} s "
            f"(jit_compile={jit}, steps_per_execution = one epoch)"
        )
    best_jit = min(timed, key=lambda j: timed[j][1])  # Keras gets its faster setting for the 64 fits

    with tempfile.TemporaryDirectory() as tmp:
        svc = Service(f"sqlite:///{tmp}/bench.db", workers=1, log=Path(tmp) / "serve.log")
        try:
            wait_for(lambda: len(svc.http.get("/v1/workers").json()["workers"]) >= 1, 120, "the worker")
            ds = svc.http.post("/v1/datasets", files={"file": ("cancer.csv", csv(x, y, names))}).json()["id"]
            print("\n== 64 networks (8 sigma_init x 8 seeds) as one sweep through the API ==")
            grid: dict[str, list[Any]] = {"model.layers.1.sigma_init": SIGMAS, "training.seed": SEEDS}
            rows, api_seconds = sweep(svc, ds, epochs, grid, relu=False)
            print(f"64 networks through the API: {api_seconds:.1f} s (submission to last result, compile included)")
            relu_rows, relu_seconds = sweep(svc, ds, epochs, {"training.seed": SEEDS}, relu=True)
        finally:
            svc.stop()
    bump_acc = {
        (r["point"]["model.layers.1.sigma_init"], r["point"]["training.seed"]): r["metrics"]["val_accuracy"]
        for r in rows
    }
    relu_acc = [r["metrics"]["val_accuracy"] for r in relu_rows]

    print(f"\n== the same 64 by Keras fit (jit_compile={best_jit}), one after another ({args.keras_fits} run) ==")
    keras_acc: dict[tuple[float, int], float] = {}
    keras_seconds = 0.0
    points = [(s, seed) for s in SIGMAS for seed in SEEDS]
    step = max(1, len(points) // args.keras_fits)
    for sigma, seed in points[::step][: args.keras_fits]:
        a, secs = keras_fit(x, y, sigma, seed, epochs, jit=best_jit)
        keras_acc[(sigma, seed)], keras_seconds = a, keras_seconds + secs
        print(f"  sigma_init {sigma}, seed {seed}: val accuracy {a:.4f}, {secs:.1f} s", flush=True)
    keras_64 = keras_seconds * len(points) / len(keras_acc)

    print(f"\n{'sigma_init':>10} " + " ".join(f"{'seed ' + str(s):>13}" for s in SEEDS))
    for sigma in SIGMAS:
        cells = []
        for seed in SEEDS:
            k = keras_acc.get((sigma, seed))
            cells.append(
                f"{bump_acc[(sigma, seed)]:.3f}/{k:.3f}" if k is not None else f"{bump_acc[(sigma, seed)]:.3f}/  -  "
            )
        print(f"{sigma:>10} " + " ".join(f"{c:>13}" for c in cells))
    print("(each cell: bumpfit / Keras fit validation accuracy)")
    both = [(bump_acc[p], keras_acc[p]) for p in keras_acc]
    mean_b = statistics.mean(b for b, _ in both)
    mean_k = statistics.mean(k for _, k in both)
    print(
        f"\nmean validation accuracy over the {len(both)} compared: bumpfit {mean_b:.4f}, Keras fit {mean_k:.4f} "
        f"(difference {mean_b - mean_k:+.4f}); all 64 through the API: {statistics.mean(bump_acc.values()):.4f}"
    )
    print(
        "ReLU twin (8 seeds through the API): "
        + " ".join(f"{a:.3f}" for a in relu_acc)
        + f", mean {statistics.mean(relu_acc):.4f}, {relu_seconds:.1f} s"
    )
    print(f"\nwall time: 64 networks through the API {api_seconds:.1f} s (submission to last result, compile included)")
    print(
        f"           64 Keras fits one after another {keras_64:.1f} s"
        + (f" (scaled from {len(keras_acc)} fits, {keras_seconds:.1f} s)" if len(keras_acc) < len(points) else "")
    )
    print(f"           ratio {keras_64 / api_seconds:.1f}x")


if __name__ == "__main__":
    main()
