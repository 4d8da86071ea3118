"""Keras layers and the training engine: serialization, learning the seed's sigma, diagnostics,
and fused training that gives each job exactly the result it would have alone."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from app.model import data, families
from tests.conftest import ROOT
from workers.engine import EpochReport, Member, save_artifact, train, train_group
from workers.engine.backend import BACKEND
from workers.layers import BumpLayer, GaussianLayer, build_model


def spec(layer: dict[str, Any] | None = None, **training: Any) -> dict[str, Any]:
    """A filled-in job spec, as the API stores it."""
    t = {
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "epochs": 3,
        "batch_size": 32,
        "loss": "mse",
        "validation_split": 0.0,
        "shuffle": True,
        "seed": 5,
        **training,
    }
    return {"layer": layer or {"type": "bump", "sigma_init": None, "per_feature": False}, "training": t}


def bump_member(
    sigma: float, n: int = 20000, seed: int = 1, x_range: tuple[float, float] = (-1, 1), job_id: str = "j", **kw: Any
) -> Member:
    x, y = data.synthetic("bump", {"sigma": sigma}, n, x_range, 0.0, seed)
    return Member(job_id, spec(**kw), x, y)


@pytest.mark.parametrize(
    "layer_cls,params", [(BumpLayer, {"sigma": [0.3, 0.7]}), (GaussianLayer, {"a": [1.5], "b": [2.0], "c": [0.1]})]
)
def test_keras_file_round_trip_predicts_identically(tmp_path: Path, layer_cls: type, params: dict) -> None:
    per_feature = len(next(iter(params.values()))) > 1
    kind = "bump" if layer_cls is BumpLayer else "gaussian"
    model = build_model(kind, 2, params, per_feature)
    x = np.random.default_rng(0).uniform(-2, 2, (500, 2)).astype(np.float32)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    ref = families.evaluate(np, kind, x, {k: np.float32(v) for k, v in params.items()})
    np.testing.assert_allclose(model.predict(x, verbose=0), ref, rtol=2e-6, atol=1e-37)
    assert isinstance(loaded.layers[0], layer_cls)
    assert loaded.layers[0].get_config() == model.layers[0].get_config()


def test_layer_keeps_sigma_non_negative_and_config_round_trips() -> None:
    layer = BumpLayer(per_feature=True, sigma_initializer="ones")
    clone = BumpLayer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    layer.build((None, 3))
    assert layer.sigma.shape == (3,)
    assert keras.ops.convert_to_numpy(layer.sigma.constraint(np.array([-1.0, 2.0], np.float32))).tolist() == [0.0, 2.0]


@pytest.mark.parametrize("sigma,epochs,n", [(0.3, 3, 20000), (0.9, 3, 20000), (2.5, 5, 50000)])
def test_learns_the_seeds_sigma(sigma: float, epochs: int, n: int) -> None:
    result = train(bump_member(sigma, n=n, epochs=epochs))
    assert result.error is None and not result.warnings
    assert abs(result.params["sigma"] - sigma) < 1e-2
    assert len(result.history) == epochs and result.metrics["r2"] > 0.99
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_seed_broken_case_wide_inputs_and_large_sigma_stays_finite() -> None:
    # sigma 4 with x in [-3, 3]: the seed's code produced inf losses and NaN sigma here
    result = train(bump_member(4.0, n=50000, x_range=(-3, 3), epochs=5))
    assert result.error is None
    assert all(np.isfinite(h["loss"]) for h in result.history)
    assert abs(result.params["sigma"] - 4.0) < 1e-2


def test_tiny_sigma_init_is_diagnosed_with_the_fix() -> None:
    result = train(bump_member(0.5, epochs=2, layer={"type": "bump", "sigma_init": 1e-6, "per_feature": False}))
    assert result.error is None and np.isfinite(result.params["sigma"])
    assert result.warnings and result.warnings[0]["parameter"] == "sigma"
    assert "sigma_init" in result.warnings[0]["message"]


def test_zero_gradient_epoch_is_reported() -> None:
    result = train(bump_member(0.5, epochs=1, layer={"type": "bump", "sigma_init": 0.0, "per_feature": False}))
    assert result.params["sigma"] == 0.0
    assert result.warnings[0]["type"] == "zero_gradient"


def gaussian_member(lr: float, job_id: str = "g", seed: int = 3) -> Member:
    x, y = data.synthetic("gaussian", {"a": 2.0, "b": 3.0, "c": 0.2}, 4000, (-1, 1), 0.0, seed)
    layer = {"type": "gaussian", "a_init": 1.0, "b_init": 1.0, "c_init": 0.0, "per_feature": False}
    return Member(job_id, spec(layer, learning_rate=lr, epochs=3, seed=seed), x, y)


def test_divergence_fails_naming_epoch_and_parameters() -> None:
    # Adam's steps of about 1e38 overflow float32 within the first epoch, whatever the row order
    # (at 1e30 whether a batch makes the parameters NaN depends on the order)
    result = train(gaussian_member(lr=1e38))
    assert result.error is not None and result.error["type"] == "diverged"
    assert "epoch 1" in result.error["message"] and "'a'" in result.error["message"]


def test_same_seed_same_result() -> None:
    a, b = train(bump_member(0.4, epochs=1)), train(bump_member(0.4, epochs=1))
    assert a.params == b.params and a.history[0]["loss"] == b.history[0]["loss"]


def test_partial_batches_and_validation_split() -> None:
    result = train(
        bump_member(
            0.5,
            n=1000,
            batch_size=64,
            validation_split=0.2,
            epochs=2,
            layer={"type": "bump", "sigma_init": 0.3, "per_feature": False},
        )
    )
    assert result.history[1]["val_loss"] is not None
    assert set(result.metrics) == {"loss", "mae", "r2", "val_loss", "val_mae", "val_r2"}


def test_fused_jobs_learn_exactly_what_they_learn_alone() -> None:
    members = [
        Member(str(i), spec(seed=10 + i, epochs=2), *data.synthetic("bump", {"sigma": s}, 8000, (-1, 1), 0.0, i))
        for i, s in enumerate([0.2, 0.6, 1.5])
    ]
    fused = train_group(members)
    for m, f in zip(members, fused, strict=True):
        alone = train(m)
        assert abs(alone.params["sigma"] - f.params["sigma"]) <= 1e-5
        np.testing.assert_allclose([h["loss"] for h in f.history], [h["loss"] for h in alone.history], rtol=1e-4)


def test_one_diverging_or_cancelled_member_does_not_touch_the_others() -> None:
    members = [
        gaussian_member(0.01, "ok1", 1),
        gaussian_member(0.01, "bad", 2),
        gaussian_member(0.01, "ok2", 3),
        gaussian_member(0.01, "cancel", 4),
    ]
    members[1].y = members[1].y * np.float32(1e20)  # its squared error overflows float32: loss inf
    alone = [train(members[0]), train(members[2])]
    seen: list[EpochReport] = []

    def on_epoch(report: EpochReport) -> list[int]:
        seen.append(report)
        return [3]  # cancel the last member at its first epoch boundary

    fused = train_group(members, on_epoch)
    assert fused[1].error is not None and fused[1].error["type"] == "diverged"
    assert 1 in seen[0].errors and 1 not in seen[1].rows
    assert fused[3].stopped and len(fused[3].history) == 1 and 3 not in seen[1].rows
    for f, a in zip((fused[0], fused[2]), alone, strict=True):
        assert f.error is None and not f.stopped
        for k in ("a", "b", "c"):
            assert abs(f.params[k] - a.params[k]) <= 1e-5


def test_artifacts_saved_one_after_another_each_hold_their_own_parameters(tmp_path: Path) -> None:
    # the export model is reused between saves: no job may get another job's values; each archive is
    # whole (every member's CRC and size right: the weights' are written over the template's)
    for i, sigma in enumerate((0.25, 0.75, 0.5)):
        path = tmp_path / f"{i}.keras"
        path.write_bytes(save_artifact(bump_member(sigma, n=100), {"sigma": sigma}))
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None
            assert archive.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        layer = keras.saving.load_model(path).layers[0]
        assert keras.ops.convert_to_numpy(layer.sigma).tolist() == [np.float32(sigma)]


def test_a_per_feature_gaussian_artifact_predicts_what_the_api_computes(tmp_path: Path) -> None:
    # the archive is Keras's own for the shape, with this job's values written into its weights
    params = {"a": [1.5, 0.5], "b": [2.0, 0.25], "c": [-0.1, 0.3]}
    x = np.linspace(-2, 2, 40, dtype=np.float32).reshape(20, 2)
    member = Member("g", {"layer": {"type": "gaussian", "per_feature": True}}, x, x)
    path = tmp_path / "g.keras"
    path.write_bytes(save_artifact(member, params))
    model = keras.saving.load_model(path)
    expected = families.evaluate(np, "gaussian", x, {k: np.float32(v) for k, v in params.items()})
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.predict(x, verbose=0)), expected, rtol=1e-6)


# A new worker process on TensorFlow with the compilation cache on, then one small job.
XLA_CACHED = """
import sys
from workers.engine import enable_compile_cache, train
from tests.unit.test_training import bump_member
enable_compile_cache(sys.argv[1])
print(train(bump_member(0.5, n=300, epochs=1)).params["sigma"])
"""


# What TensorFlow's persistent XLA cache logs (TF_CPP_VMODULE) when it compiles and saves an epoch,
# and when it loads one that an earlier process compiled.
XLA_COMPILED, XLA_LOADED = "Serializing and saving cache entry", "Loading cached entry for"


@pytest.mark.skipif(BACKEND != "tensorflow", reason="XLA's cache for TensorFlow; tests/e2e/test_jax.py has JAX's")
@pytest.mark.heavy  # minutes on 2 cores: .ci/run runs it after the README's command (pytest -m heavy)
def test_a_new_tensorflow_worker_loads_epochs_compiled_by_an_earlier_one(tmp_path: Path) -> None:
    def run() -> tuple[str, int, int]:
        r = subprocess.run(
            [sys.executable, "-c", XLA_CACHED, str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "TF_CPP_VMODULE": "device_executable_persistor=3"},
        )
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout.split()[-1], r.stderr.count(XLA_COMPILED), r.stderr.count(XLA_LOADED)

    (sigma1, compiled1, loaded1), (sigma2, compiled2, loaded2) = run(), run()
    assert compiled1 >= 1 and loaded1 == 0  # the first process compiled its epochs (and saved them)
    assert compiled2 == 0 and loaded2 == compiled1  # the second compiled nothing: it loaded each one
    assert sigma1 == sigma2


def test_a_job_request_dumped_whole_trains_as_one_layer() -> None:
    """A spec dumped from a JobRequest with its defaults (`model: null`, as the benches make it) is a
    single layer's job, not a network's."""
    from app.jobs.schemas import JobRequest

    request = {"data": {"kind": "synthetic"}, "training": {"epochs": 1, "seed": 3}}
    dumped = JobRequest.model_validate(request).model_dump(mode="json")
    assert dumped["model"] is None
    x, y = data.synthetic("bump", {"sigma": 0.5}, 2000, (-1, 1), 0.0, 1)
    (result,) = train_group([Member("j", dumped, x, y)])
    assert not result.error and set(result.params) == {"sigma"}
