"""Keras layers and the training engine: serialization, learning the seed's sigma, diagnostics,
and fused training that gives each job exactly the result it would have alone."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from app import data, functions
from tests.conftest import ROOT
from workers.engine import EpochReport, Group, Member, bucket, save_artifact, shuffle, step, train, train_group
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
    ref = functions.evaluate(np, kind, x, {k: np.float32(v) for k, v in params.items()})
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
    # the export model is reused between saves: no job may get another job's values
    for i, sigma in enumerate((0.25, 0.75, 0.5)):
        path = tmp_path / f"{i}.keras"
        path.write_bytes(save_artifact(bump_member(sigma, n=100), {"sigma": sigma}))
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
    expected = functions.evaluate(np, "gaussian", x, {k: np.float32(v) for k, v in params.items()})
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.predict(x, verbose=0)), expected, rtol=1e-6)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 31, 32, 33, 100, 1000, 4097, 65537])
def test_each_members_row_order_is_a_permutation_the_backend_computes_as_numpy_does(n: int) -> None:
    # this file also runs on JAX (tests/e2e/test_jax.py): NumPy, TensorFlow and JAX give the same orders
    keys = np.stack([shuffle.draw_keys(np.random.default_rng(s)) for s in range(4)])
    order = shuffle.permutation(keys, 3, n)
    assert all(np.array_equal(np.sort(row), np.arange(n)) for row in order)
    ops = keras.ops
    positions = ops.convert_to_tensor(np.broadcast_to(np.arange(n, dtype=np.int32), (4, n)))
    epoch_keys = shuffle.epoch_keys(ops, ops.convert_to_tensor(keys), ops.convert_to_tensor(np.int32(3)))
    flags = ops.convert_to_tensor(np.array([1, 1, 1, 0], np.int32))
    on_backend = ops.convert_to_numpy(shuffle.row_order(ops, epoch_keys, positions, n, flags))
    np.testing.assert_array_equal(on_backend[:3], order[:3])
    np.testing.assert_array_equal(on_backend[3], np.arange(n))  # shuffle off: the rows in order
    if n >= 100:  # orders differ between members and between epochs
        assert not np.array_equal(order[0], order[1])
        assert not np.array_equal(order[0], shuffle.permutation(keys, 4, n)[0])


def test_a_jobs_result_does_not_depend_on_the_group_it_is_fused_into() -> None:
    def job(i: int) -> Member:
        return Member(
            f"j{i}",
            spec(seed=100 + i, epochs=2),
            *data.synthetic("bump", {"sigma": 0.2 + 0.1 * i}, 3000, (-1, 1), 0.0, i),
        )

    alone = train(job(0))
    for group in ([job(0), job(1), job(2)], [job(3), job(4), job(0), job(5), job(6), job(7)]):  # K 3 and 6: 4 and 8
        fused = train_group(group)[[m.id for m in group].index("j0")]
        assert abs(fused.params["sigma"] - alone.params["sigma"]) <= 1e-6
        np.testing.assert_allclose([h["loss"] for h in fused.history], [h["loss"] for h in alone.history], rtol=1e-5)
        assert fused.metrics == pytest.approx(alone.metrics, rel=1e-5)


def test_groups_of_nearby_sizes_share_one_compiled_step() -> None:
    assert [bucket(k) for k in (1, 2, 3, 37, 60, 64, 65, 1024, 1025, 10000)] == [
        1,
        2,
        4,
        64,
        64,
        64,
        128,
        1024,
        2048,
        10240,
    ]
    step._CACHE.clear()
    groups = [Group([bump_member(0.5, n=500, seed=i, job_id=str(i)) for i in range(k)], "CPU:0") for k in (8, 5)]
    assert groups[0].model is groups[1].model and groups[1].sig.k == 8 and len(step._CACHE) == 1
    result = groups[1].run(None)  # the last group loaded; its three padding members are not results
    assert len(result) == 5 and all(r.error is None and r.metrics["r2"] is not None for r in result)


# A new worker process on TensorFlow with the compilation cache on, then one small job.
XLA_CACHED = """
import sys
from workers.engine import enable_compile_cache, train
from tests.unit.test_training import bump_member
enable_compile_cache(sys.argv[1])
print(train(bump_member(0.5, n=300, epochs=1)).params["sigma"])
"""


@pytest.mark.skipif(BACKEND != "tensorflow", reason="XLA's cache for TensorFlow; tests/e2e/test_jax.py has JAX's")
def test_a_new_tensorflow_worker_loads_epochs_compiled_by_an_earlier_one(tmp_path: Path) -> None:
    def run() -> tuple[str, set[str]]:
        r = subprocess.run(
            [sys.executable, "-c", XLA_CACHED, str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout.split()[-1], {p.name for p in (tmp_path / "tensorflow").iterdir()}

    (sigma1, files1), (sigma2, files2) = run(), run()
    assert files1 and files2 == files1  # the second process compiled nothing new: it loaded the first's
    assert sigma1 == sigma2


# -- early stopping: Keras's EarlyStopping per member ---------------------------------------------


class _Model:
    """What keras.callbacks.EarlyStopping reads of a model: stop_training and the weights."""

    def __init__(self) -> None:
        self.stop_training, self.weights = False, [np.zeros(1)]

    def get_weights(self) -> list[np.ndarray]:
        return self.weights

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.weights = weights


def keras_early_stopping(losses: list[float], **settings: Any) -> tuple[int | None, int | None]:
    """(the epoch Keras stops after, the epoch whose weights it restores), counted from 1."""
    callback = keras.callbacks.EarlyStopping(monitor="loss", mode="min", **settings)
    model = _Model()
    callback.set_model(model)
    callback.on_train_begin()
    stopped = None
    for epoch, loss in enumerate(losses):
        model.weights = [np.array([epoch + 1.0])]
        callback.on_epoch_end(epoch, {"loss": loss})
        if model.stop_training:
            stopped = epoch + 1
            break
    callback.on_train_end()
    restored = int(model.weights[0][0]) if settings.get("restore_best_weights") else None
    return stopped, restored


@pytest.mark.parametrize(
    "settings",
    [
        {"patience": 0},
        {"patience": 2},
        {"patience": 3, "min_delta": 0.05},
        {"patience": 1, "min_delta": 0.5},
        {"patience": 2, "start_from_epoch": 3},
        {"patience": 0, "start_from_epoch": 20},
        {"patience": 2, "restore_best_weights": True},
        {"patience": 1, "restore_best_weights": True, "start_from_epoch": 2},
        {"patience": 4, "restore_best_weights": True, "min_delta": 0.1},
    ],
)
def test_patience_min_delta_and_start_from_epoch_stop_where_keras_stops(settings: dict[str, Any]) -> None:
    from workers.engine.stopping import Stopper

    losses = [5.0, 4.0, 3.9, 3.95, 3.0, 2.98, 2.97, 3.5, 3.4, 2.96, 4.0, 4.1, 4.2, 4.3]
    stopper = Stopper(**{"restore_best_weights": False, **settings})
    stopped = None
    for epoch, loss in enumerate(losses, start=1):
        if stopper.update(epoch, {"loss": loss, "params": {"sigma": float(epoch)}}):
            stopped = epoch
            break
    expected_stop, expected_restore = keras_early_stopping(losses, **settings)
    assert stopped == expected_stop
    restore = stopper.restore
    assert (restore["params"]["sigma"] if restore else None) == expected_restore


def stopping_member(
    sigma: float, job_id: str, seed: int, epochs: int = 40, early: dict[str, Any] | None = None, **kw: Any
) -> Member:
    early = {"monitor": "loss", "min_delta": 1e-5, "patience": 2, "restore_best_weights": True, "start_from_epoch": 0}
    x, y = data.synthetic("bump", {"sigma": sigma}, 2000, (-1.5, 1.5), 0.0, seed)
    return Member(job_id, spec(seed=seed, epochs=epochs, early_stopping={**early, **kw}), x, y)


def test_early_stopping_ends_a_job_before_its_epochs_with_its_best_epoch() -> None:
    member = stopping_member(0.6, "j", 3, min_delta=0.0)
    member.spec["training"]["learning_rate"] = (
        0.05  # Adam then wanders about the optimum: the last epoch is not the best
    )
    result = train(member)
    stopped = result.stopped_epoch
    assert stopped is not None and 3 <= stopped < 40 and len(result.history) == stopped
    best = min(result.history, key=lambda h: h["loss"])
    assert result.params == best["params"]  # restore_best_weights: the best epoch's parameters ...
    assert stopped - best["epoch"] == 2  # ... patience epochs before the last one run
    assert result.metrics["loss"] == pytest.approx(best["loss"], rel=0.2)  # evaluated on those parameters
    member.spec["training"]["early_stopping"]["restore_best_weights"] = False
    last = train(member)
    assert last.stopped_epoch == stopped and last.params == last.history[-1]["params"] != result.params
    assert last.metrics["loss"] > result.metrics["loss"]


def test_a_member_that_stops_keeps_its_parameters_while_the_others_go_on() -> None:
    members = [
        stopping_member(0.3, "a", 1),
        stopping_member(1.2, "b", 2, patience=6),
        stopping_member(0.8, "c", 3, restore_best_weights=False),
    ]
    members.append(Member("d", spec(seed=4, epochs=40), *data.synthetic("bump", {"sigma": 0.5}, 2000, (-1, 1), 0, 4)))
    fused = train_group(members)
    assert fused[3].stopped_epoch is None and len(fused[3].history) == 40  # no early stopping: every epoch
    assert len({f.stopped_epoch for f in fused[:3]}) > 1  # members stopped at different epochs
    for m, f in zip(members, fused, strict=True):
        alone = train(m)
        assert f.stopped_epoch == alone.stopped_epoch and len(f.history) == len(alone.history)
        assert f.params == pytest.approx(alone.params, abs=1e-6)
        assert f.metrics == pytest.approx(alone.metrics, rel=1e-5)
        np.testing.assert_allclose([h["loss"] for h in f.history], [h["loss"] for h in alone.history], rtol=1e-5)


def test_a_stopped_member_is_frozen_on_the_device() -> None:
    members = [stopping_member(0.6, "a", 3, restore_best_weights=False), stopping_member(1.5, "b", 5, patience=30)]
    group = Group(members, "CPU:0")
    results = group.run(None)
    assert results[0].stopped_epoch is not None and results[1].stopped_epoch is None  # b ran every epoch
    on_device = float(keras.ops.convert_to_numpy(group.layer.sigma)[0].ravel()[0])
    assert on_device == pytest.approx(results[0].history[-1]["params"]["sigma"], abs=0)


def test_val_loss_is_monitored_when_asked() -> None:
    x, y = data.synthetic("bump", {"sigma": 0.6}, 3000, (-1.5, 1.5), 0.0, 3)
    early = {
        "monitor": "val_loss",
        "min_delta": 0.0,
        "patience": 1,
        "restore_best_weights": True,
        "start_from_epoch": 0,
    }
    result = train(Member("v", spec(seed=3, epochs=40, validation_split=0.2, early_stopping=early), x, y))
    best = min(result.history, key=lambda h: h["val_loss"])
    assert result.stopped_epoch == best["epoch"] + 1 and result.params == best["params"]
