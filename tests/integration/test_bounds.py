"""`:bounds` and `:optimize` at the API (in process) on versions given hand-built weights (no training):
the default box is the training split's, the bounds hold for what `:predict` answers, the reached
inputs give what `:predict` gives, `:optimize` honours its fixed inputs, answers repeat, and each bad
request is a 422 naming its field."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.jobs.models import Artifact, Job
from app.model import networks
from app.store.db import session_scope

RNG = np.random.default_rng(3)
X = RNG.uniform([-1.0, 0.0], [1.0, 2.0], (40, 2)).astype(np.float32)
LAYERS = [
    {"type": "dense", "units": 6, "activation": "relu"},
    {"type": "bump", "sigma_init": 0.5},
    {"type": "dense", "units": 2, "activation": "linear"},
]
WEIGHTS = {
    "mean": X[:30].mean(axis=0),
    "variance": X[:30].var(axis=0),
    "dense_1/kernel": RNG.normal(size=(2, 6)).astype(np.float32),
    "dense_1/bias": RNG.normal(size=6).astype(np.float32) * 0.3,
    "bump_1/sigma": RNG.uniform(0.5, 1.5, 6).astype(np.float32),
    "dense_2/kernel": RNG.normal(size=(6, 2)).astype(np.float32),
    "dense_2/bias": np.zeros(2, np.float32),
}
QUICK = {"budget_s": 1.0}


def served(api: TestClient, db: str, name: str, layers: list[dict[str, Any]], weights: dict[str, Any]) -> str:
    """A network version of model `name` with these weights, stored as a worker would store them."""
    body = {
        "model": {"layers": layers},
        "data": {"kind": "inline", "x": X.tolist(), "y": X.tolist(), "normalize": "standard"},
        "training": {"epochs": 1, "validation_split": 0.25},
        "model_name": name,
    }
    r = api.post("/v1/jobs", json=body)
    assert r.status_code == 201, r.text
    job_id = str(r.json()["id"])
    with session_scope(db) as s:
        s.execute(update(Job).where(Job.id == job_id).values(status="succeeded", params={}, model_version=1))
        s.add(Artifact(job_id=job_id, data=b"keras bytes", weights=networks.pack(weights)))
    return job_id


@pytest.fixture(scope="module")
def net(api: TestClient, db: str) -> str:
    served(api, db, "twoin", LAYERS, WEIGHTS)
    return "twoin"


def predict(api: TestClient, name: str, rows: list[list[float]]) -> np.ndarray:
    r = api.post(f"/v1/models/{name}:predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["predictions"])


def test_bounds_hold_over_the_training_box_and_reached_inputs_give_what_predict_gives(
    api: TestClient, net: str
) -> None:
    r = api.post(f"/v1/models/{net}:bounds", json=QUICK)
    assert r.status_code == 200, r.text
    body = r.json()
    lo, hi = X[:30].min(axis=0), X[:30].max(axis=0)  # the training split: the last quarter validates
    assert body["box"] == {"lower": lo.tolist(), "upper": hi.tolist()}
    assert body["method"] == "split" and body["exact"] is False
    y = networks.forward(LAYERS, WEIGHTS, RNG.uniform(lo, hi, (20000, 2)).astype(np.float32))
    for j, out in enumerate(body["outputs"]):
        assert out["lower"] <= y[:, j].min() and y[:, j].max() <= out["upper"]
        reached = out["reached"]
        assert np.all((np.array(reached["argmax"]) >= lo) & (np.array(reached["argmax"]) <= hi))
        assert predict(api, net, [reached["argmin"]])[0, j] == reached["min"]  # one row each, as :predict reads it
        assert predict(api, net, [reached["argmax"]])[0, j] == reached["max"]
        gap = (out["upper"] - reached["max"]) + (reached["min"] - out["lower"])
        assert out["gap"] == pytest.approx(gap) and out["gap"] >= 0
    assert api.post(f"/v1/models/{net}/versions/1:bounds", json=QUICK).json() == body  # the same, from the cache


def test_interval_linear_and_split_tighten_in_turn_over_a_given_box(api: TestClient, net: str) -> None:
    box = {"lower": [-0.5, 0.5], "upper": [0.5, 1.5]}
    widths = {}
    for method in ("interval", "linear", "split"):
        body = api.post(f"/v1/models/{net}:bounds", json={"box": box, "method": method, **QUICK}).json()
        assert body["method"] == method and body["box"] == box
        widths[method] = np.array([o["upper"] - o["lower"] for o in body["outputs"]])
    assert np.all(widths["linear"] <= widths["interval"] + 1e-9) and np.all(widths["split"] <= widths["linear"] + 1e-9)


def test_optimize_honours_the_fixed_input_and_the_box(api: TestClient, net: str) -> None:
    box = {"lower": [-1.0, 0.0], "upper": [1.0, 2.0]}
    for goal in ("max", "min"):
        req = {"output": 1, "goal": goal, "box": box, "fixed": {"x1": 0.3}, **QUICK}
        r = api.post(f"/v1/models/{net}:optimize", json=req)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["x"][0] == 0.3 and 0.0 <= body["x"][1] <= 2.0
        assert body["value"] == predict(api, net, [body["x"]])[0, 1]
        assert body["gap"] == pytest.approx(abs(body["bound"] - body["value"])) and body["gap"] >= 0
        assert (body["bound"] >= body["value"]) if goal == "max" else (body["bound"] <= body["value"])
        xs = np.stack([np.full(2001, 0.3), np.linspace(0, 2, 2001)], axis=1).astype(np.float32)
        along = networks.forward(LAYERS, WEIGHTS, xs)[:, 1]
        sign = 1 if goal == "max" else -1
        best = sign * (sign * along).max()  # on a grid: no better than the true optimum
        assert sign * body["bound"] >= sign * best and sign * body["value"] >= sign * best - body["gap"]
    same = api.post(f"/v1/models/{net}/versions/1:optimize", json={"fixed": {"0": 0.3}, "box": box, **QUICK})
    assert same.status_code == 200 and same.json()["x"][0] == 0.3


@pytest.mark.parametrize(
    "body,field",
    [
        ({"box": {"lower": [0.0], "upper": [1.0, 1.0]}}, "box.lower"),
        ({"box": {"lower": [0.0, 2.0], "upper": [1.0, 1.0]}}, "box.lower[1]"),
        ({"box": {"lower": [0.0, "a"], "upper": [1.0, 1.0]}}, "box.lower[1]"),
        ({"budget_s": 0}, "budget_s"),
        ({"method": "guess"}, "method"),
        ({"output": 2}, "output"),
        ({"output": -1}, "output"),
        ({"fixed": {"nope": 1.0}}, "fixed.nope"),
        ({"fixed": {"x2": 9.0}}, "fixed.x2"),
    ],
)
def test_each_bad_request_is_a_422_naming_its_field(
    api: TestClient, net: str, body: dict[str, Any], field: str
) -> None:
    route = "optimize" if {"output", "fixed"} & set(body) else "bounds"
    r = api.post(f"/v1/models/{net}:{route}", json=body)
    assert r.status_code == 422, r.text
    assert field in [d["loc"] for d in r.json()["error"]["details"]], r.text


def test_a_non_finite_bound_of_the_box_is_a_422(api: TestClient, net: str) -> None:
    raw = '{"box": {"lower": [NaN, 0], "upper": [1, 1]}}'
    r = api.post(f"/v1/models/{net}:bounds", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "box.lower[0]" in r.text


def test_a_model_with_a_layer_the_bounds_cannot_pass_is_refused_by_name(api: TestClient, db: str) -> None:
    job_id = served(api, db, "unbounded", LAYERS, WEIGHTS)
    with session_scope(db) as s:
        spec = dict(s.scalars(select(Job.spec).where(Job.id == job_id)).one())
        spec["model"] = {**spec["model"], "layers": [LAYERS[0], {"type": "rnn", "units": 6}, LAYERS[2]]}
        s.execute(update(Job).where(Job.id == job_id).values(spec=spec))
    r = api.post("/v1/models/unbounded:bounds", json=QUICK)
    assert r.status_code == 422 and "layer 1 (rnn) has no relaxation yet" in r.json()["error"]["message"]
    assert api.post("/v1/models/nobody:bounds", json={}).status_code == 404
