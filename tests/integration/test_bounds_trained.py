"""`:bounds` and `:optimize` on networks trained through the API (in process, with the worker's code):
ReLU networks against their exact range (MILP), bump and gaussian networks against a million random
inputs, a single bump layer exact, and seed 002's question (one input fixed, the other best)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.model import networks
from app.serving import service as serving
from app.settings import Settings
from app.store import migrate
from app.store.db import session_scope
from tests.integration.training import train_queued, upload_npz

pytestmark = pytest.mark.heavy
RNG = np.random.default_rng(11)
X = RNG.uniform(-1, 1, (600, 5)).astype(np.float32)
Y = np.stack([np.sin(X @ RNG.normal(size=5)) + 0.3 * X[:, j] ** 2 for j in range(4)], axis=1).astype(np.float32)
X2 = RNG.uniform([-2, 0], [2, 3], (600, 2)).astype(np.float32)  # seed 002: two inputs, one output
Y2 = (np.sin(X2[:, :1] * X2[:, 1:]) - 0.1 * X2[:, 1:] ** 2).astype(np.float32)
DEFAULT_BUDGET = Settings().bounds_budget_s
NETS: dict[str, tuple[list[dict[str, Any]], str]] = {
    "relu-5-10-4": ([{"type": "dense", "units": 10, "activation": "relu"}, {"type": "dense", "units": 4}], "five"),
    "relu-5-32-32-4": (
        [
            {"type": "dense", "units": 32, "activation": "relu"},
            {"type": "dense", "units": 32, "activation": "relu"},
            {"type": "dense", "units": 4},
        ],
        "five",
    ),
    "bump-net": (
        [{"type": "dense", "units": 8}, {"type": "bump", "sigma_init": 0.5}, {"type": "dense", "units": 4}],
        "five",
    ),
    "gaussian-net": (
        [{"type": "dense", "units": 8, "activation": "tanh"}, {"type": "gaussian"}, {"type": "dense", "units": 4}],
        "five",
    ),
    "two-inputs": ([{"type": "dense", "units": 16, "activation": "tanh"}, {"type": "dense", "units": 1}], "two"),
}


@pytest.fixture(scope="module")
def trained() -> Iterator[tuple[TestClient, Settings]]:
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bounds.db'}"
    migrate.upgrade(url)
    settings = Settings(database_url=url, bounds_budget_s=60)
    with TestClient(create_app(settings)) as c:
        data = {"five": upload_npz(c, X, Y), "two": upload_npz(c, X2, Y2)}
        for name, (layers, table) in NETS.items():
            body = {
                "model": {"layers": layers},
                "data": {"kind": "dataset", "id": data[table], "normalize": "standard"},
                "training": {"epochs": 30, "learning_rate": 0.01, "seed": 1, "validation_split": 0.2},
                "model_name": name,
            }
            assert c.post("/v1/jobs", json=body).status_code == 201
        single = {"data": {"kind": "synthetic", "n": 2000, "seed": 1}, "training": {"epochs": 2}, "model_name": "bump"}
        assert c.post("/v1/jobs", json=single).status_code == 201
        train_queued(settings)
        yield c, settings


def ask(c: TestClient, route: str, name: str, **body: Any) -> dict[str, Any]:
    r = c.post(f"/v1/models/{name}:{route}", json=body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def exact_range(c: TestClient, name: str, j: int) -> tuple[float, float, bool]:
    """Output j's least and greatest values by the exact mode (MILP), and whether both were proved."""
    up = ask(c, "optimize", name, output=j, goal="max", method="exact", budget_s=30)
    down = ask(c, "optimize", name, output=j, goal="min", method="exact", budget_s=30)
    return down["value"], up["value"], up["exact"] and down["exact"]


@pytest.mark.parametrize("name,ratio,must_solve", [("relu-5-10-4", 1.5, True), ("relu-5-32-32-4", 3.0, False)])
def test_relu_bounds_contain_the_exact_range_and_are_tight_after_splitting(
    trained: tuple[TestClient, Settings], name: str, ratio: float, must_solve: bool
) -> None:
    c, _ = trained
    split = ask(c, "bounds", name, method="split", budget_s=DEFAULT_BUDGET)
    for j, out in enumerate(split["outputs"]):
        low, high, proved = exact_range(c, name, j)
        assert proved or not must_solve
        # The true range holds [low, high] (reached by inputs) and, when proved, is it (up to the solver's 1e-6).
        assert out["lower"] <= low + 1e-6 * proved and out["upper"] >= high - 1e-6 * proved
        assert out["upper"] - out["lower"] <= ratio * (high - low)  # the exact width is at least high - low
        if name == "relu-5-10-4":
            reached, width = out["reached"], high - low
            assert abs(reached["max"] - high) <= 0.01 * width and abs(reached["min"] - low) <= 0.01 * width
    exact = ask(c, "bounds", "relu-5-10-4", method="exact", budget_s=30)
    assert exact["method"] == "milp" and exact["exact"] is True


@pytest.mark.parametrize("name", ["bump-net", "gaussian-net"])
def test_a_million_random_inputs_never_fall_outside_the_bounds(trained: tuple[TestClient, Settings], name: str) -> None:
    c, settings = trained
    body = ask(c, "bounds", name)
    lo, hi = np.array(body["box"]["lower"]), np.array(body["box"]["upper"])
    low = np.array([o["lower"] for o in body["outputs"]])
    high = np.array([o["upper"] for o in body["outputs"]])
    with session_scope(settings.database_url) as s:
        job = serving.version_job(s, name, None)
        layers, weights = job.spec["model"]["layers"], serving.weights(s, job)
    rng = np.random.default_rng(0)
    for _ in range(10):  # :predict's own forward pass, 100,000 rows at a time
        y = networks.forward(layers, weights, rng.uniform(lo, hi, (100_000, lo.size)).astype(np.float32))
        assert np.all(y >= low) and np.all(y <= high)
    rows = rng.uniform(lo, hi, (1000, lo.size)).tolist()
    api = np.array(c.post(f"/v1/models/{name}:predict", json={"instances": rows}).json()["predictions"])
    assert np.all(api >= low) and np.all(api <= high)


def test_a_single_bump_layer_is_bounded_exactly(trained: tuple[TestClient, Settings]) -> None:
    c, _ = trained
    body = ask(c, "bounds", "bump", box={"lower": [-0.05], "upper": [0.9]})
    assert body["exact"] is True and body["method"] == "interval"
    (out,) = body["outputs"]
    grid = np.linspace(-0.05, 0.9, 100_000).tolist()
    y = np.array(c.post("/v1/models/bump:predict", json={"instances": grid}).json()["predictions"])
    assert 0 <= out["upper"] - y.max() <= 1e-5 and 0 <= y.min() - out["lower"] <= 1e-5
    assert out["reached"]["max"] == pytest.approx(y.max()) and out["reached"]["argmax"] == [0.0]


@pytest.mark.parametrize("goal", ["max", "min"])
def test_seed_002_the_best_second_input_for_a_fixed_first(trained: tuple[TestClient, Settings], goal: str) -> None:
    c, _ = trained
    body = ask(c, "optimize", "two-inputs", output=0, goal=goal, fixed={"x1": 0.75})
    lo, hi = body["box"]["lower"], body["box"]["upper"]
    assert body["x"][0] == 0.75 == lo[0] == hi[0] and lo[1] <= body["x"][1] <= hi[1]
    predicted = c.post("/v1/models/two-inputs:predict", json={"instances": [body["x"]]}).json()["predictions"]
    assert predicted == [body["value"]] and body["gap"] >= 0
    sweep = [[0.75, v] for v in np.linspace(lo[1], hi[1], 5001).tolist()]
    along = np.array(c.post("/v1/models/two-inputs:predict", json={"instances": sweep}).json()["predictions"])
    sign = 1 if goal == "max" else -1
    best = along.max() if goal == "max" else along.min()  # on a grid: no better than the true optimum
    assert sign * body["bound"] >= sign * best and sign * body["value"] >= sign * best - body["gap"]
