"""Early stopping as Keras's EarlyStopping does it, per member of a fused group (this file also runs
on JAX: tests/e2e/test_jax.py)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from typing import Any

import keras
import numpy as np
import pytest

from app.model import data
from tests.unit.test_training import spec
from workers.engine import Group, Member, train, train_group

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


def test_members_that_stop_early_are_handed_over_as_they_stop_with_their_final_results() -> None:
    members = [stopping_member(0.3, "a", 1), stopping_member(1.2, "b", 2, patience=6), stopping_member(0.8, "c", 3)]
    handed: list[tuple[int, int, dict[int, Any]]] = []  # (epoch handed over, epochs the others ran, results)
    seen: list[int] = []

    def on_epoch(report: Any) -> None:
        seen.append(report.epoch)

    def on_done(done: dict[int, Any]) -> None:
        handed.append((seen[-1], len(seen), {k: (r.stopped_epoch, r.params, r.metrics) for k, r in done.items()}))

    results = train_group(members, on_epoch, artifacts=True, on_done=on_done)
    plain = train_group(members)
    assert handed and all(epoch == ran for epoch, ran, _ in handed)  # at the end of the epoch they stopped in
    given = {k: v for _, _, done in handed for k, v in done.items()}
    assert sorted(given) == [k for k, r in enumerate(plain) if r.stopped_epoch is not None and r.stopped_epoch < 40]
    for k, (stopped_epoch, params, metrics) in given.items():
        assert results[k].stopped and results[k].artifact is not None  # settled by the caller, artifact made
        assert (stopped_epoch, params, metrics) == (plain[k].stopped_epoch, plain[k].params, plain[k].metrics)
        assert [epoch for epoch, _, done in handed if k in done] == [stopped_epoch]
    assert len(seen) == max(len(r.history) for r in plain)


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
