"""The JAX form of the engine (KERAS_BACKEND=jax): the engine's whole test file passes on it, it
learns what the TensorFlow form learns, and `bumpfit serve` runs its workers on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import workers.layers  # noqa: F401 - registers the layers for load_model
from tests.conftest import ROOT, Service, seed_job
from tests.unit.test_training import bump_member
from workers.engine import Member, train_group

JAX_ENV = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}

# Trains the same fused group as `members()` below on the JAX backend and prints its results.
ON_JAX = """
import json
from tests.e2e.test_jax import members
from workers.engine import train_group
print(json.dumps([{"params": r.params, "losses": [h["loss"] for h in r.history], "metrics": r.metrics,
                   "device": r.device} for r in train_group(members())]))
"""


@pytest.mark.heavy  # two network compiles on JAX, then 40 epochs: ~1 min on 2 cores
def test_a_network_member_learns_alone_what_it_learns_in_a_group_on_jax() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "heavy", "tests/unit/test_networks.py"],
        cwd=ROOT,
        env=JAX_ENV,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "2 passed" in run.stdout, run.stdout[-1000:]


def members() -> list[Member]:
    """Three bump jobs, each with its own data and initial sigma, trained as one fused group."""
    return [bump_member(s, n=6000, seed=i, job_id=f"b{i}", epochs=2) for i, s in enumerate((0.2, 0.5, 0.9))]


@pytest.mark.heavy  # minutes on 2 cores: .ci/run runs it after the README's command (pytest -m heavy)
def test_the_engine_tests_pass_on_the_jax_backend() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/unit/test_training.py",
            "tests/unit/test_shuffle.py",
            "tests/unit/test_stopping.py",
            "tests/unit/test_networks.py",
            "tests/integration/test_warmup.py::test_a_job_arriving_while_its_shape_is_warmed_uses_that_compile_and_learns_what_it_learns_alone",
        ],
        cwd=ROOT,
        env=JAX_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout


@pytest.mark.heavy  # 15-35 s on 2 slow cores; .ci/run runs it after the README's command (pytest -m heavy)
def test_jax_and_tensorflow_forms_learn_the_same_parameters() -> None:
    assert keras.backend.backend() == "tensorflow"
    run = subprocess.run(
        [sys.executable, "-c", ON_JAX], cwd=ROOT, env=JAX_ENV, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    on_jax = json.loads(run.stdout.strip().splitlines()[-1])
    on_tf = train_group(members())
    assert len(on_jax) == len(on_tf) == 3
    for j, t in zip(on_jax, on_tf, strict=True):
        assert abs(j["params"]["sigma"] - t.params["sigma"]) <= 1e-5
        assert j["losses"] == pytest.approx([h["loss"] for h in t.history], rel=1e-4)
        assert j["metrics"]["r2"] == pytest.approx(t.metrics["r2"], rel=1e-4)
        assert j["device"] == t.device == "CPU:0"


# A worker's start-up on JAX with the persistent compilation cache on, then one small job; prints
# the learned sigma and how many compiles the cache answered.
CACHED = """
import sys
import jax
from tests.unit.test_training import bump_member
from workers.engine import enable_compile_cache, train
hits = []
jax.monitoring.register_event_listener(lambda event, **_: hits.append(event == "/jax/compilation_cache/cache_hits"))
enable_compile_cache(sys.argv[1])
print(train(bump_member(0.5, n=300, epochs=1)).params["sigma"], sum(hits))
"""


@pytest.mark.heavy  # minutes on 2 cores: .ci/run runs it after the README's command (pytest -m heavy)
def test_the_jax_form_keeps_its_compiled_epochs_on_disk(tmp_path: Path) -> None:
    cache = tmp_path / "xla"
    runs = [
        subprocess.run(
            [sys.executable, "-c", CACHED, str(cache)],
            cwd=ROOT,
            env=JAX_ENV,
            capture_output=True,
            text=True,
            timeout=300,
        )
        for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-3000:]
    (sigma1, hits1), (sigma2, hits2) = (r.stdout.split()[-2:] for r in runs)
    assert int(hits2) > int(hits1)  # the second process loaded what the first compiled
    assert sigma1 == sigma2 and any(cache.iterdir())


@pytest.mark.heavy  # 15-35 s on 2 slow cores; .ci/run runs it after the README's command (pytest -m heavy)
@pytest.mark.slow
def test_serve_runs_its_workers_on_the_jax_backend(tmp_path: Path) -> None:
    svc = Service(f"sqlite:///{tmp_path}/jax.db", workers=1, log=tmp_path / "serve.log", env={"KERAS_BACKEND": "jax"})
    try:
        job = svc.wait_job(svc.http.post("/v1/jobs", json=seed_job(sigma=0.5, n=20000, epochs=3)).json()["id"])
        assert job["status"] == "succeeded", job["error"]
        assert abs(job["params"]["sigma"] - 0.5) < 1e-2 and job["device"] == "CPU:0"
        assert "keras backend jax" in svc.log_tail(200)
        blob = svc.http.get(f"/v1/models/{job['id']}/versions/1/artifact").content
        (tmp_path / "m.keras").write_bytes(blob)  # saved by JAX, opened here by TensorFlow
        layer = keras.saving.load_model(tmp_path / "m.keras").layers[0]
        assert float(keras.ops.convert_to_numpy(layer.sigma)[0]) == pytest.approx(job["params"]["sigma"], abs=1e-7)
    finally:
        svc.stop()
