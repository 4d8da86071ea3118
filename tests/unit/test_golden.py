"""The seed's single-layer job trains to the same parameters, history and metrics as the code
before the one-path engine (issue 31): a golden file written by that code, compared to 1e-6."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from app.jobs.schemas import JobRequest
from app.model import data
from workers.engine import Member, train

GOLDEN = Path(__file__).parent / "golden" / "single_layer_jobs.json"
# The README's first job (the seed's sigma = 0.5) with its seeds fixed, 4,000 noisy points and a
# sigma that starts far off, so that the history is still moving; and a gaussian.
REQUESTS = {
    "bump": {
        "layer": {"type": "bump", "sigma_init": 0.05},
        "data": {"kind": "synthetic", "params": {"sigma": 0.5}, "n": 4000, "noise_std": 0.05, "seed": 7},
        "training": {"epochs": 3, "seed": 11, "validation_split": 0.2},
    },
    "gaussian": {
        "layer": {"type": "gaussian"},
        "data": {
            "kind": "synthetic",
            "function": "gaussian",
            "params": {"a": 1.5, "b": 2.0, "c": 0.3},
            "n": 3000,
            "seed": 3,
        },
        "training": {"epochs": 2, "seed": 5, "learning_rate": 0.01, "batch_size": 64},
    },
}


def trained(request: dict[str, Any]) -> dict[str, Any]:
    """Train a single-layer job as a worker would and return what it stores."""
    spec = JobRequest.model_validate(request).model_dump(mode="json")
    d = spec["data"]
    x, y = data.synthetic(d["function"], d["params"], d["n"], tuple(d["x_range"]), d["noise_std"], d["seed"])
    spec.pop("model", None)
    result = train(Member("golden", spec, x, y))
    history = [{k: v for k, v in row.items() if k not in ("seconds", "timestamp")} for row in result.history]
    return {"params": result.params, "history": history, "metrics": result.metrics}


def close(a: Any, b: Any, path: str = "") -> None:
    """Assert two JSON values equal, numbers to 1e-6 (relative or absolute)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: lengths differ"
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            close(u, v, f"{path}[{i}]")
    elif isinstance(a, float | int) and not isinstance(a, bool) and a is not None:
        assert b == pytest.approx(a, rel=1e-6, abs=1e-6), f"{path}: {b} != {a}"
    else:
        assert a == b, f"{path}: {b!r} != {a!r}"


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_single_layer_job_matches_the_golden_file(name: str) -> None:
    close(json.loads(GOLDEN.read_text())[name], trained(REQUESTS[name]))


if __name__ == "__main__":  # python -m tests.unit.test_golden --write: the golden file from this code
    if "--write" in sys.argv:
        golden = {name: trained(request) for name, request in REQUESTS.items()}
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
