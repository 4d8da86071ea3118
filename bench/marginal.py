"""What one more job costs at the margin, a small network beside a single layer, through a real
`bumpfit serve --workers 1` on SQLite (loopback only, the worker in its own process).

    python -m bench.marginal [--small 16] [--large 512] [--repeat 2]

Each job: 500 rows, 5 epochs, batch 32, Adam 1e-3, its own seeds. The single layer is the seed's
bump on synthetic data; the network is [dense 8, bump, dense 1 sigmoid] on an uploaded table of 4
features and a 0/1 label (binary cross-entropy). Per kind, a sweep of `small` and one of `large`
jobs run untimed first (the worker compiles both group sizes), then `--repeat` timed rounds of
both; the marginal is (large's seconds - small's) / (large - small), from submission to the last
job's end, best of the rounds. The ratio network / layer is what issue 31 bounds (3x at most).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.service import Service, wait_for

ROWS, EPOCHS, TIMEOUT_S = 500, 5, 900


def table() -> bytes:
    """A CSV of ROWS rows: 4 features and a label that a bump of their mix separates."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 4))
    label = (np.abs(x @ [0.5, -0.3, 0.2, 0.1]) < 0.4).astype(int)
    lines = ["a,b,c,d,label"] + [",".join(f"{v:.6g}" for v in row) + f",{y}" for row, y in zip(x, label, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def body(kind: str, size: int, dataset: str) -> dict[str, Any]:
    """A sweep of `size` jobs of this kind, each with its own seeds (and, for the layer, data)."""
    training = {"epochs": EPOCHS, "batch_size": 32}
    if kind == "layer":
        base: dict[str, Any] = {
            "data": {"kind": "synthetic", "params": {"sigma": 0.5}, "n": ROWS},
            "training": training,
        }
        points = [{"data.seed": i, "training.seed": i} for i in range(size)]
    else:
        base = {
            "model": {
                "layers": [
                    {"type": "dense", "units": 8},
                    {"type": "bump", "sigma_init": 0.5},
                    {"type": "dense", "units": 1, "activation": "sigmoid"},
                ]
            },
            "data": {"kind": "dataset", "id": dataset, "target": ["label"], "normalize": "standard"},
            "training": {**training, "loss": "binary_crossentropy", "metrics": ["accuracy"]},
        }
        points = [{"training.seed": i} for i in range(size)]
    return {"base": base, "points": points}


def timed_sweep(svc: Service, kind: str, size: int, dataset: str) -> float:
    """Seconds from submitting the sweep to its last job's end; every job must succeed."""
    start = time.perf_counter()
    r = svc.http.post("/v1/sweeps", json=body(kind, size, dataset), timeout=300)
    assert r.status_code == 201, r.text
    sweep_id = r.json()["id"]
    wait_for(
        lambda: svc.http.get(f"/v1/sweeps/{sweep_id}", params={"limit": 1}).json()["done"],
        TIMEOUT_S,
        f"a sweep of {size}",
        every=0.05,
    )
    seconds = time.perf_counter() - start
    rows = svc.http.get(f"/v1/sweeps/{sweep_id}").json()["jobs"]
    failed = [row for row in rows if row["status"] != "succeeded"]
    assert not failed, failed[:2]
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=16)
    ap.add_argument("--large", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        svc = Service(f"sqlite:///{tmp}/bench.db", workers=1, log=Path(tmp) / "serve.log")
        try:
            wait_for(lambda: len(svc.http.get("/v1/workers").json()["workers"]) >= 1, 120, "the worker")
            dataset = svc.http.post("/v1/datasets", files={"file": ("t.csv", table())}).json()["id"]
            marginal = {}
            for kind in ("layer", "network"):
                for size in (args.small, args.large):
                    timed_sweep(svc, kind, size, dataset)  # compiles this group size
                rounds = [
                    {size: timed_sweep(svc, kind, size, dataset) for size in (args.small, args.large)}
                    for _ in range(args.repeat)
                ]
                per_job = [(r[args.large] - r[args.small]) / (args.large - args.small) * 1000 for r in rounds]
                marginal[kind] = min(per_job)
                print(
                    f"{kind:8s} sweeps of {args.small} / {args.large}: "
                    + "; ".join(f"{r[args.small]:.2f} / {r[args.large]:.2f} s" for r in rounds)
                    + f"  -> marginal {', '.join(f'{m:.2f}' for m in per_job)} ms a job (best {marginal[kind]:.2f})"
                )
        finally:
            svc.stop()
    print(f"network / layer at the margin: {marginal['network'] / marginal['layer']:.1f}x")


if __name__ == "__main__":
    main()
