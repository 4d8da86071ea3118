"""A worker's start-up warm-up: which shapes it picks from the database, and a job that arrives
while its shape is being warmed."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from app.db import session_scope
from tests.integration.test_queue import claim, submit
from tests.unit.test_training import bump_member
from workers import warmup
from workers.engine import factory, step
from workers.engine.group import Group, signature


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
