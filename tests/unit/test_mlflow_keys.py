"""How a job becomes MLflow params and metric keys (app/outbox/mlflow.py); the export itself runs
against a real server in tests/e2e/test_mlflow.py."""

from __future__ import annotations

from app.outbox.runs import PARAM_CHARS, flatten, numbers


def test_the_spec_becomes_dotted_string_params() -> None:
    spec = {"layer": {"type": "bump", "sigma_init": None}, "training": {"epochs": 3, "metrics": ["mae"]}}
    assert flatten(spec) == {
        "layer.type": "bump",
        "layer.sigma_init": "null",
        "training.epochs": "3",
        "training.metrics": '["mae"]',
    }
    assert len(flatten({"x": "a" * 10_000})["x"]) == PARAM_CHARS


def test_learned_parameters_become_metric_keys_per_feature() -> None:
    assert numbers({"sigma": 0.5}) == {"sigma": 0.5}
    assert numbers({"sigma": [0.1, 0.2]}) == {"sigma.0": 0.1, "sigma.1": 0.2}
    assert numbers({"bump_1": {"sigma": [0.3]}}) == {"bump_1.sigma.0": 0.3}
