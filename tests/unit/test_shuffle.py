"""The row order computed on the device, K buckets, and a job's result independent of its group (this
file also runs on JAX: tests/e2e/test_jax.py)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


import keras
import numpy as np
import pytest

from app.model import data
from tests.unit.test_training import bump_member, spec
from workers.engine import Group, Member, bucket, factory, shuffle, train, train_group
from workers.layers import build_model


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
    factory._CACHE.clear()
    groups = [Group([bump_member(0.5, n=500, seed=i, job_id=str(i)) for i in range(k)], "CPU:0") for k in (8, 5)]
    assert groups[0].model is groups[1].model and groups[1].sig.k == 8 and len(factory._CACHE) == 1
    result = groups[1].run(None)  # the last group loaded; its three padding members are not results
    assert len(result) == 5 and all(r.error is None and r.metrics["r2"] is not None for r in result)


def test_a_cpu_draws_each_members_order_on_the_host_from_its_own_keys_and_the_epoch() -> None:
    keys = np.stack([shuffle.draw_keys(np.random.default_rng(s)) for s in range(3)])
    orders = shuffle.HostOrders(keys, np.array([1, 1, 0], np.int32), 1000, epochs=2)
    first = orders.get(1)
    assert orders.ahead is not None and orders.ahead[0] == 2  # the second is drawn ahead, in the thread
    second = orders.get(2)
    assert orders.ahead is None  # and nothing past the last epoch
    orders.close()
    assert first.shape == (3, 1000) and first.dtype == np.int32
    assert all(np.array_equal(np.sort(row), np.arange(1000)) for row in (*first, *second))
    np.testing.assert_array_equal(first[0], shuffle.host_order(keys[0], 1, 1000))  # its keys and epoch alone
    np.testing.assert_array_equal(second[1], shuffle.host_order(keys[1], 2, 1000))
    np.testing.assert_array_equal(first[2], np.arange(1000))  # shuffle off: the rows in order
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[0], second[0])
    assert shuffle.on_host("CPU:0") and not shuffle.on_host("GPU:0")


def test_a_cpu_epoch_visits_the_rows_in_the_hosts_order() -> None:
    # batch 1 and SGD: the learned sigma depends on the order; a plain Keras loop over the rows in
    # the host's order for epochs 1 and 2 learns what the engine learns
    x, y = data.synthetic("bump", {"sigma": 0.4}, 40, (-1, 1), 0.0, 2)
    job = spec({"type": "bump", "sigma_init": 0.8, "per_feature": False}, optimizer="sgd", learning_rate=0.2)
    job["training"].update(batch_size=1, epochs=2, seed=11)
    group = Group([Member("a", job, x, y)], "CPU:0")
    assert group.model.orders is not None
    keys = group.model.orders.keys[0]
    learned = group.run(None)[0].params["sigma"]
    model = build_model("bump", 1, {"sigma": [0.8]}, False)
    model.compile(optimizer=keras.optimizers.SGD(0.2), loss="mse")
    for epoch in (1, 2):
        order = shuffle.host_order(keys, epoch, 40)
        model.fit(x[order], y[order], batch_size=1, epochs=1, shuffle=False, verbose=0)
    reference = float(np.ravel(model.layers[-1].get_weights()[0])[0])
    assert learned == pytest.approx(reference, abs=1e-5)
    assert learned != pytest.approx(0.8, abs=1e-3)  # it learned something
