"""A worker's start-up warm-up: which shapes it picks from the database, and a job that arrives
while its shape is being warmed."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app.store.db import session_scope
from tests.integration.test_queue import claim, submit
from tests.integration.training import upload_npz
from tests.unit.test_training import bump_member
from workers import warmup
from workers.engine import Member, factory, step
from workers.engine.group import Group
from workers.engine.step import signature

NET = [{"type": "dense", "units": 4}, {"type": "bump", "sigma_init": 0.3}, {"type": "dense", "units": 2}]
NET_X = [[i / 50, 1 - i / 50, (i % 3) / 3] for i in range(50)]  # 50 rows of 3 features, 10 for validation
NET_Y = [[i / 50, (i % 2) / 2] for i in range(50)]  # 2 target columns
NET_TRAINING = {"epochs": 2, "batch_size": 16, "validation_split": 0.2}


def network_job(seed: int) -> dict[str, Any]:
    """A network request on inline data (NET_X, NET_Y)."""
    data = {"kind": "inline", "x": NET_X, "y": NET_Y}
    return {"model": {"layers": NET}, "data": data, "training": {**NET_TRAINING, "seed": seed}}


def test_the_shapes_warmed_are_the_latest_most_frequent_then_the_default_jobs(client: TestClient, db_url: str) -> None:
    submit(client, 3)  # seed_job: n 20000, batch 32
    claim(db_url)  # a group of 3: compiled for K = 4
    submit(client, 1, training={"batch_size": 64, "seed": 1})
    claim(db_url)
    submit(client, 2)
    claim(db_url)  # a group of 2: K = 2
    submit(client, 4)
    claim(db_url)  # K = 4 again
    submit(client, 1)  # queued, never started: not counted
    with session_scope(db_url) as s:
        shapes = warmup.shapes(s, "CPU:0", 4)
        assert warmup.shapes(s, "CPU:0", 1) == shapes[:1]
    assert [(sig.k, sig.batch, sig.n_train) for sig in shapes] == [(4, 32, 20000), (2, 32, 20000), (1, 64, 20000)] + [
        (1, 32, 100_000)  # the default job's, counted last
    ]  # K 4 twice, then the later of two used once
    assert all(sig.device == "CPU:0" and sig.layer_type == "bump" for sig in shapes)


def test_an_empty_database_warms_the_default_job_shape(db_url: str) -> None:
    with session_scope(db_url) as s:
        (sig,) = warmup.shapes(s, "CPU:0", 3)
    assert (sig.layer_type, sig.k, sig.n_train, sig.n_val, sig.batch, sig.optimizer, sig.loss) == (
        "bump",
        1,
        100_000,
        0,
        32,
        "adam",
        "mse",
    )


def test_a_job_arriving_while_its_shape_is_warmed_uses_that_compile_and_learns_what_it_learns_alone() -> None:
    member = bump_member(0.4, n=5000, seed=3)
    alone = Group([member], "CPU:0").run(None)[0]
    factory._CACHE.clear()
    sig = signature(member.spec, 1, 5000, 1, "CPU:0")
    warmed: list[step.Compiled] = []
    thread = threading.Thread(target=lambda: warmed.append(factory.compiled_for(sig, warm=True)))
    thread.start()
    group = Group([member], "CPU:0")  # waits for the warm-up's compile when it got there first
    result = group.run(None)[0]
    thread.join()
    assert warmed == [group.model] and list(factory._CACHE) == [sig]  # built once, shared
    assert result.params == alone.params and result.metrics == alone.metrics
    assert [r["loss"] for r in result.history] == [r["loss"] for r in alone.history]


def test_a_cpu_worker_on_a_small_host_does_not_warm_up_while_a_gpu_worker_does(db_url: str) -> None:
    stopping = threading.Event()
    assert warmup.start(db_url, "CPU:0", 3, stopping, cores=2) is None  # its compile would slow the first jobs
    assert warmup.worth_warming("GPU:0", 2) and warmup.worth_warming("CPU:0", 8)
    thread = warmup.start(db_url, "CPU:0", 1, stopping, cores=8)
    assert thread is not None
    stopping.set()
    thread.join(120)


def test_network_groups_are_warmed_with_their_architecture_and_data_shape(client: TestClient, db_url: str) -> None:
    ids = [client.post("/v1/jobs", json=network_job(seed)).json()["id"] for seed in (1, 2)]
    claim(db_url)  # the two networks: one group, K = 2
    submit(client, 1)
    claim(db_url)  # then a single layer, later: first among shapes used once
    with session_scope(db_url) as s:
        shapes = warmup.shapes(s, "CPU:0", 4)
    spec = client.get(f"/v1/jobs/{ids[0]}").json()["spec"]
    assert shapes[1] == signature(spec, 2, 50, 3, "CPU:0", 2)
    net = shapes[1]
    assert (net.layer_type, net.k, net.n_train, net.n_val, net.features, net.targets) == ("network", 2, 40, 10, 3, 2)
    assert [sig.layer_type for sig in shapes] == ["bump", "network", "bump"]  # the default job's last


def test_a_network_shape_warmed_is_the_compile_its_group_trains_with() -> None:
    layers = [{"activation": "linear", "use_bias": True, **lay} for lay in NET]
    training = {"optimizer": "adam", "learning_rate": 0.01, "loss": "mse", "metrics": [], "shuffle": True}
    spec = {
        "model": {"layers": layers, "outputs": 2},
        "data": {"kind": "dataset", "id": "d", "n": 50, "features": 3, "outputs": 2},
        "training": {**training, **NET_TRAINING, "seed": 3, "early_stopping": None},
    }
    factory._CACHE.clear()
    sig = signature(spec, 1, 50, 3, "CPU:0", 2)
    warmup.warm(sig)
    assert list(factory._CACHE) == [sig]
    group = Group([Member("n", spec, np.array(NET_X, np.float32), np.array(NET_Y, np.float32))], "CPU:0")
    assert group.model is factory._CACHE[sig]  # not compiled again
    result = group.run(None)[0]
    assert result.error is None and len(result.history) == 2 and len(result.params["bump_1"]["sigma"]) == 4


def test_a_recurrent_shape_is_warmed_with_its_timesteps_and_is_the_compile_its_group_trains_with(
    client: TestClient, db_url: str
) -> None:
    x = np.random.default_rng(0).normal(size=(40, 6, 2)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0)[:, None].astype(np.float32)
    layers = [{"type": "rnn", "units": 3, "gate": {"type": "pulse"}}, {"type": "dense", "units": 1}]
    body = {"model": {"layers": layers}, "data": {"kind": "dataset", "id": upload_npz(client, x, y)}}
    job_id = client.post("/v1/jobs", json={**body, "training": {**NET_TRAINING, "seed": 1}}).json()["id"]
    claim(db_url)
    with session_scope(db_url) as s:
        sig = warmup.shapes(s, "CPU:0", 4)[0]
    spec = client.get(f"/v1/jobs/{job_id}").json()["spec"]
    assert sig == signature(spec, 1, 40, 2, "CPU:0", 1, 6) and sig.layer_type == "network"
    factory._CACHE.clear()
    warmup.warm(sig)
    group = Group([Member(job_id, spec, x, y)], "CPU:0")
    assert list(factory._CACHE) == [sig] and group.model is factory._CACHE[sig]  # not compiled again
    result = group.run(None)[0]
    assert result.error is None and len(result.history) == 2 and len(result.params["rnn_1"]["width"]) == 3
