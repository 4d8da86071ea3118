"""Networks end to end through a real `bumpfit serve`: a user's table uploaded as CSV, a network with
a bump layer trained on it, sigma per unit in params and history, and predictions from the API and
from the downloaded `.keras` file that agree; classification and regression tables."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import workers.layers  # noqa: F401 - registers the project's layers for load_model
from tests.conftest import Service

sklearn_datasets = pytest.importorskip("sklearn.datasets")
# A real service training several networks: ~1 min on 2 cores. tests/integration/test_networks.py
# (the API) and tests/unit/test_networks.py (the engine, the artifact) run in the main suite.
pytestmark = pytest.mark.heavy

BINARY_NET = [
    {"type": "dense", "units": 16},
    {"type": "bump", "sigma_init": 0.5},
    {"type": "dense", "units": 1, "activation": "sigmoid"},
]


def csv_of(x: np.ndarray, y: np.ndarray, names: list[str], target: str) -> bytes:
    """A CSV with a header: the feature columns, then the target column."""
    lines = [",".join([*names, target])]
    lines += [",".join(f"{v:.6g}" for v in row) for row in np.column_stack([x, y])]
    return ("\n".join(lines) + "\n").encode()


def shuffled(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows in a random order, so the validation split (the last rows) holds every class."""
    order = np.random.default_rng(seed).permutation(len(x))
    return x[order], y[order]


def upload(svc: Service, content: bytes, name: str = "table.csv") -> dict[str, Any]:
    r = svc.http.post("/v1/datasets", files={"file": (name, content)})
    assert r.status_code in (200, 201), r.text  # 200: the same table again, stored once (issue 34)
    return r.json()  # type: ignore[no-any-return]


def submit(svc: Service, body: dict[str, Any]) -> dict[str, Any]:
    r = svc.http.post("/v1/jobs", json=body)
    assert r.status_code == 201, r.text
    return svc.wait_job(r.json()["id"], timeout=300)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """sklearn's bundled breast-cancer table: 569 rows, 30 numeric features, a 0/1 label."""
    data = sklearn_datasets.load_breast_cancer()
    x, y = shuffled(data.data.astype(np.float32), data.target.astype(np.float32))
    return x, y, [n.replace(" ", "_") for n in data.feature_names]


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("networks")
    service = Service(f"sqlite:///{tmp / 'bumpfit.db'}", workers=1, log=tmp / "serve.log")
    yield service
    service.stop()


def test_a_network_with_a_bump_layer_trains_on_an_uploaded_table_and_serves(
    svc: Service, cancer: tuple[np.ndarray, np.ndarray, list[str]], tmp_path: Path
) -> None:
    x, y, names = cancer
    ds = upload(svc, csv_of(x, y, names, "label"))
    assert ds["columns"][-1] == "label" and ds["outputs"] == 0 and ds["n"] == 569
    body = {
        "model": {"layers": BINARY_NET},
        "data": {"kind": "dataset", "id": ds["id"], "target": ["label"], "normalize": "standard"},
        "training": {
            "loss": "binary_crossentropy",
            "metrics": ["accuracy", "auc"],
            "validation_split": 0.2,
            "epochs": 12,
            "learning_rate": 0.01,
            "seed": 3,
        },
    }
    job = submit(svc, body)
    assert job["status"] == "succeeded", job
    assert job["spec"]["data"]["columns"] == names and job["spec"]["data"]["target"] == ["label"]
    sigma = job["params"]["bump_1"]["sigma"]
    assert len(sigma) == 16 and all(s >= 0 for s in sigma) and sigma != [0.5] * 16  # learned, one per unit
    assert job["metrics"]["val_accuracy"] > 0.85 and 0.5 < job["metrics"]["val_auc"] <= 1, job["metrics"]
    history = svc.http.get(f"/v1/jobs/{job['id']}/history").json()["history"]
    assert [h["epoch"] for h in history] == list(range(1, 13))
    for h in history:
        assert len(h["params"]["bump_1"]["sigma"]) == 16
        assert {"accuracy", "val_accuracy", "auc", "val_auc"} <= set(h) and h["val_loss"] is not None
    assert history[-1]["params"] == job["params"]

    rows = x[:7].tolist()  # raw features: the normalisation is inside the model
    api = svc.http.post(f"/v1/models/{job['id']}:predict", json={"instances": rows}).json()["predictions"]
    assert len(api) == 7 and all(isinstance(p, float) and 0 <= p <= 1 for p in api)
    columnar = svc.http.post(f"/v1/models/{job['id']}:predict", json={"inputs": rows}).json()["outputs"]
    assert columnar == api
    path = tmp_path / "model.keras"
    path.write_bytes(svc.http.get(f"/v1/models/{job['id']}/versions/1/artifact").content)
    model = keras.saving.load_model(path)
    np.testing.assert_allclose(model.predict(np.asarray(rows), verbose=0)[:, 0], api, atol=1e-6)
    meta = svc.http.get(f"/v1/models/{job['id']}/versions/1/metadata").json()
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["x"]["tensor_shape"]["dim"][1]["size"] == "30"
    assert signature["outputs"]["output_0"]["tensor_shape"]["dim"][1]["size"] == "1"
    bad = svc.http.post(f"/v1/models/{job['id']}:predict", json={"instances": [[1.0, 2.0]]})
    assert bad.status_code == 422 and "30 features" in bad.json()["error"]["message"]


def test_three_classes_with_softmax_and_a_regression_reporting_r2(svc: Service) -> None:
    iris = sklearn_datasets.load_iris()
    x, y = shuffled(iris.data.astype(np.float32), iris.target.astype(np.float32))
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y[:, None])
    ds = upload(svc, buf.getvalue(), "iris.npz")
    job = submit(
        svc,
        {
            "model": {
                "layers": [
                    {"type": "dense", "units": 8},
                    {"type": "gaussian"},
                    {"type": "dense", "units": 3, "activation": "softmax"},
                ]
            },
            "data": {"kind": "dataset", "id": ds["id"], "normalize": "standard"},
            "training": {
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
                "validation_split": 0.2,
                "epochs": 30,
                "batch_size": 16,
                "learning_rate": 0.02,
                "seed": 1,
            },
        },
    )
    assert job["status"] == "succeeded", job
    assert set(job["params"]["gaussian_1"]) == {"a", "b", "c"} and len(job["params"]["gaussian_1"]["c"]) == 8
    assert job["metrics"]["val_accuracy"] > 0.7, job["metrics"]
    probs = svc.http.post(f"/v1/models/{job['id']}:predict", json={"instances": x[:3].tolist()}).json()["predictions"]
    assert [len(p) for p in probs] == [3, 3, 3] and np.allclose(np.sum(probs, axis=1), 1, atol=1e-5)

    diabetes = sklearn_datasets.load_diabetes()
    names = [f"f{i}" for i in range(10)]
    ds = upload(svc, csv_of(diabetes.data, diabetes.target / 100, names, "progression"))
    job = submit(
        svc,
        {
            "model": {"layers": [{"type": "dense", "units": 16}, {"type": "bump"}, {"type": "dense", "units": 1}]},
            "data": {"kind": "dataset", "id": ds["id"], "target": ["progression"], "normalize": "standard"},
            "training": {
                "loss": "mse",
                "metrics": ["r2", "mae"],
                "validation_split": 0.2,
                "epochs": 40,
                "seed": 2,
                "learning_rate": 0.01,
            },
        },
    )
    assert job["status"] == "succeeded", job
    assert job["metrics"]["val_r2"] > 0.2 and job["metrics"]["r2"] > 0.2, job["metrics"]


def test_the_cli_submits_a_network_from_a_json_file_with_an_uploaded_csv(
    svc: Service, cancer: tuple[np.ndarray, np.ndarray, list[str]], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from app.cli import main

    x, y, names = cancer
    table = tmp_path / "cancer.csv"
    table.write_bytes(csv_of(x, y, names, "label"))
    request = tmp_path / "net.json"
    request.write_text(json.dumps({"model": {"layers": BINARY_NET}, "training": {"loss": "binary_crossentropy"}}))
    args = ["submit", "--file", str(request), "--data", str(table), "--target", "label", "--normalize"]
    result = CliRunner().invoke(
        main, [*args, "--epochs", "2", "--seed", "5", "--url", svc.base], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    job = svc.wait_job(result.stdout.strip().splitlines()[-1], timeout=300)
    assert job["status"] == "succeeded", job
    assert job["spec"]["data"]["target"] == ["label"] and job["spec"]["data"]["normalize"] == "standard"
    assert len(job["params"]["bump_1"]["sigma"]) == 16
    bad = CliRunner().invoke(main, [*args, "--target", "price", "--url", svc.base])
    assert bad.exit_code != 0 and "data.target[0]: no column 'price'" in bad.output


def test_validation_accuracy_is_keras_fits_on_the_same_network_and_data(
    svc: Service, cancer: tuple[np.ndarray, np.ndarray, list[str]]
) -> None:
    from bench.networks import keras_fit, request

    x, y, names = cancer
    ds = upload(svc, csv_of(x, y, names, "label"))
    seeds, epochs = [0, 1, 2], 30
    r = svc.http.post("/v1/sweeps", json={"base": request(ds["id"], 0.5, 0, epochs), "grid": {"training.seed": seeds}})
    assert r.status_code == 201, r.text
    ours = [svc.wait_job(j, timeout=300)["metrics"]["val_accuracy"] for j in r.json()["jobs"]]
    # the same rows (the bench's table order differs; both split off the last 20% of what they get)
    theirs = [keras_fit(x, y, 0.5, seed, epochs, jit=False)[0] for seed in seeds]
    assert abs(np.mean(ours) - np.mean(theirs)) <= 0.02, (ours, theirs)


@pytest.fixture(scope="module")
def service(svc: Service) -> Service:
    """The module's service, for the browser's `page` fixture."""
    return svc


def test_the_dashboard_shows_the_network_its_metrics_and_sigma_per_unit(
    page: Any, svc: Service, cancer: tuple[np.ndarray, np.ndarray, list[str]]
) -> None:
    x, y, names = cancer
    ds = upload(svc, csv_of(x, y, names, "label"))
    job = submit(svc, request_of(ds["id"], epochs=3))
    page.goto(f"/#/jobs/{job['id']}")
    page.wait_for_selector("#chart-metrics canvas")
    assert page.inner_text("#network") == "dense 16 → bump → dense 1 sigmoid"
    assert page.get_attribute("#chart-loss", "data-points") == "3"
    assert page.get_attribute("#chart-metrics", "data-points") == "3"
    assert page.get_attribute("#chart-params", "data-points") == "3"
    legend = page.inner_text("#chart-params")
    assert "bump_1.sigma q50" in legend.lower()  # 16 units: drawn as quantiles (the legend is upper case)
    assert page.errors == []
    page.goto("/")
    page.wait_for_selector(f"tr[data-job-id='{job['id']}']")
    grid = {"model.layers.1.sigma_init": [0.3, 1.0], "training.seed": [1, 2]}
    sweep = svc.http.post("/v1/sweeps", json={"base": request_of(ds["id"], epochs=2), "grid": grid}).json()
    for job_id in sweep["jobs"]:
        svc.wait_job(job_id, timeout=300)
    page.goto(f"/#/sweeps/{sweep['id']}")
    page.wait_for_selector("#chart-sweep-error canvas")
    assert page.get_attribute("#chart-sweep", "data-points") == "4"  # val_accuracy of each member
    assert page.get_attribute("#chart-sweep-error", "data-points") == "2"  # its mean per sigma_init
    assert page.inner_text("#sweep-title-1") == "Each network's score against the swept value"
    assert page.errors == []


def request_of(dataset: str, epochs: int) -> dict[str, Any]:
    """The breast-cancer network's request, on an uploaded dataset."""
    return {
        "model": {"layers": BINARY_NET},
        "data": {"kind": "dataset", "id": dataset, "target": ["label"], "normalize": "standard"},
        "training": {"loss": "binary_crossentropy", "metrics": ["accuracy"], "validation_split": 0.2, "epochs": epochs},
    }
