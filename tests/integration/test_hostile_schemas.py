"""Hypothesis over the request schemas: any body is created safe or refused naming its field; one
request never stalls the others."""

from __future__ import annotations

import io
import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.jobs.models import Job
from tests.conftest import Service
from tests.integration.hostile import (
    count,
)

# -- hypothesis over the request schemas -------------------------------------------------------------

number = st.one_of(
    st.floats(), st.integers(-(10**30), 10**30), st.floats(-1e13, 1e13), st.text(max_size=3), st.booleans(), st.none()
)
layer = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["bump", "gaussian", "relu", ""]),
            "sigma_init": number,
            "a_init": number,
            "b_init": number,
            "c_init": number,
            "per_feature": st.one_of(st.booleans(), number),
        },
    ),
)
synthetic = st.fixed_dictionaries(
    {"kind": st.just("synthetic")},
    optional={
        "function": st.sampled_from(["bump", "gaussian", "cubic"]),
        "n": st.integers(-3, 10**7),
        "params": st.dictionaries(st.sampled_from(["sigma", "a", "b", "c", "mu"]), number, max_size=3),
        "x_range": st.lists(number, max_size=3),
        "noise_std": number,
        "seed": st.integers(-1, 2**64),
    },
)
rows = st.lists(st.one_of(number, st.lists(number, max_size=3)), max_size=5)
inline = st.fixed_dictionaries({"kind": st.just("inline"), "x": rows, "y": rows})
training = st.fixed_dictionaries(
    {},
    optional={
        "optimizer": st.sampled_from(["adam", "sgd", "lbfgs"]),
        "learning_rate": number,
        "epochs": st.integers(-1, 10**6),
        "batch_size": st.one_of(st.integers(-1, 10**7), number),
        "validation_split": number,
        "shuffle": number,
    },
)
job_body = st.fixed_dictionaries(
    {"data": st.one_of(synthetic, inline, st.just({}), number)},
    optional={
        "layer": st.one_of(layer, number),
        "training": training,
        "device": st.sampled_from(["auto", "cpu", "tpu"]),
        "model_name": st.one_of(st.text(max_size=12), st.from_regex(r"[0-9a-f]{16}", fullmatch=True)),
    },
)
TOP = ("layer", "data", "training", "device", "model_name", "body")
BRANCH_LABELS = ("float", "int", "list[", "function-", ".synthetic", ".inline", ".dataset", ".bump", ".gaussian")


def walk_numbers(value: Any) -> Iterator[float]:
    if isinstance(value, dict):
        for v in value.values():
            yield from walk_numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk_numbers(v)
    elif isinstance(value, float):
        yield value


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=job_body)
def test_any_job_body_is_created_safe_or_refused_naming_its_field(
    api: TestClient, db: str, body: dict[str, Any]
) -> None:
    before = count(db, Job)
    r = api.post("/v1/jobs", content=json.dumps(body), headers={"content-type": "application/json"})  # NaN too
    assert r.status_code in (201, 413, 422), r.text[:300]
    if r.status_code != 201:
        assert count(db, Job) == before
        for d in r.json()["error"]["details"]:
            assert d["loc"].split(".")[0].split("[")[0] in TOP, d
            assert not any(label in d["loc"] for label in BRANCH_LABELS), d
        return
    spec = r.json()["spec"]
    assert all(math.isfinite(v) and abs(v) <= 1e12 for v in walk_numbers(spec)), spec
    assert spec["training"]["learning_rate"] >= 1.1754943508222875e-38
    assert spec["data"]["kind"] in ("synthetic", "dataset") and "x" not in spec["data"]


# -- one request never stalls the others --------------------------------------------------------------


def test_healthz_answers_while_a_large_upload_is_parsed(tmp_path: Path) -> None:
    rows = 1_500_000
    a = np.random.default_rng(1).uniform(-1, 1, (rows, 2))
    buf = io.BytesIO()
    np.savetxt(buf, a, delimiter=",", fmt="%.9f", header="x,y", comments="")
    content = buf.getvalue()
    service = Service(f"sqlite:///{tmp_path}/h.db", workers=0)
    try:
        result: dict[str, Any] = {}

        def upload() -> None:
            with httpx.Client(base_url=service.base, timeout=60) as http:
                t = time.perf_counter()
                result["response"] = http.post("/v1/datasets", files={"file": ("big.csv", content)})
                result["seconds"] = time.perf_counter() - t

        thread = threading.Thread(target=upload)
        thread.start()
        stalls = []
        while thread.is_alive():
            t = time.perf_counter()
            assert service.http.get("/healthz").status_code == 200
            stalls.append(time.perf_counter() - t)
            time.sleep(0.02)
        thread.join()
        assert result["response"].status_code == 201 and result["response"].json()["n"] == rows
        # /healthz kept answering while the upload was parsed (how fast: bench/hostile.py prints it).
        took = f"{len(content) / 2**20:.0f} MiB upload took {result['seconds']:.1f} s"
        assert len(stalls) > 5, f"{took}; /healthz answered {len(stalls)} times meanwhile"
    finally:
        service.stop()
