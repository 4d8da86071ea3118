"""The queue's SQL on SQLite and PostgreSQL: atomic claims, fencing, reaping, model versions."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from app.jobs.models import Job
from app.model import functions
from app.ops import totals
from app.ops.models import JobTotal
from app.store import queue
from app.store.db import session_scope
from app.sweeps.models import Sweep
from tests.conftest import seed_job


def submit(client: TestClient, n: int = 1, **kw: Any) -> list[str]:
    return [client.post("/v1/jobs", json={**seed_job(sigma=0.1 + i / 100), **kw}).json()["id"] for i in range(n)]


def claim(
    url: str, limit: int = 100, devices: tuple[str, ...] = ("auto", "cpu"), lease: float = 60, worker: str = "w:1"
) -> tuple[str, list[Job]]:
    with session_scope(url) as s:
        token, jobs = queue.claim(s, worker, devices, limit, lease)
        s.expunge_all()
    return token, jobs


def job(url: str, job_id: str) -> Job:
    with session_scope(url) as s:
        row = s.scalar(select(Job).where(Job.id == job_id))
        s.expunge_all()
    assert row is not None
    return row


def test_claim_takes_fusable_jobs_in_order_and_counts_attempts(client: TestClient, db_url: str) -> None:
    ids = submit(client, 3)
    other = submit(client, 1, training={"epochs": 2, "seed": 1})  # different fuse key
    token, jobs = claim(db_url)
    assert [j.id for j in jobs] == ids
    assert all(j.status == "running" and j.attempts == 1 and j.lease_token == token for j in jobs)
    _, rest = claim(db_url)
    assert [j.id for j in rest] == other
    assert claim(db_url)[1] == []


def test_claim_respects_device_and_limit(client: TestClient, db_url: str) -> None:
    gpu = submit(client, 1, device="gpu")
    cpu = submit(client, 2)
    assert claim(db_url, devices=("auto", "cpu"), limit=1)[1][0].id == cpu[0]
    assert [j.id for j in claim(db_url, devices=("auto", "gpu"))[1]] == [gpu[0]]


def test_concurrent_claims_never_take_a_job_twice(client: TestClient, db_url: str) -> None:
    ids = set(submit(client, 30))
    taken: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while True:
            _, jobs = claim(db_url, limit=2, worker=name)
            if not jobs:
                return
            with lock:
                taken.extend(j.id for j in jobs)

    threads = [threading.Thread(target=worker, args=(f"w:{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == sorted(ids)


def test_an_epoch_written_again_after_a_commit_that_landed_keeps_one_history_row(
    client: TestClient, db_url: str
) -> None:
    ids = submit(client, 3)
    token, _ = claim(db_url)
    with session_scope(db_url) as s:
        queue.cancel(s, ids[2])  # asked to stop: still held, its flag comes back
    row = {"epoch": 1, "loss": 0.1, "val_loss": None, "params": {"sigma": 0.3}, "seconds": 0.1}
    with session_scope(db_url) as s:
        assert queue.add_epoch(s, token, {ids[0]: row}) == {ids[0]: False}
    again = {"epoch": 1, "loss": 0.1, "val_loss": None, "params": {"sigma": 0.31}, "seconds": 0.1}
    with session_scope(db_url) as s:  # the retry: ids[0]'s row landed, the others' did not
        written = queue.add_epoch(s, token, {i: again for i in [*ids, "lost"]}, again=True)
    assert written == {ids[0]: False, ids[1]: False, ids[2]: True}
    histories = [client.get(f"/v1/jobs/{i}/history").json()["history"] for i in ids]
    assert [[(h["epoch"], h["params"]) for h in rows] for rows in histories] == [
        [(1, {"sigma": 0.3})],
        [(1, {"sigma": 0.31})],
        [(1, {"sigma": 0.31})],
    ]
    assert [job(db_url, i).progress_epoch for i in ids] == [1, 1, 1]


def test_lost_lease_fences_every_write(client: TestClient, db_url: str) -> None:
    (job_id,) = submit(client)
    old, _ = claim(db_url, lease=0.01)
    time.sleep(0.05)
    with session_scope(db_url) as s:
        assert queue.reap(s)["requeued"] == 1
    new, _ = claim(db_url, worker="w:2")
    row = {"epoch": 1, "loss": 0.1, "val_loss": None, "params": {"sigma": 0.3}, "seconds": 0.1}
    with session_scope(db_url) as s:
        assert queue.add_epoch(s, old, {job_id: row}) == {}
        assert not queue.finish(s, job_id, old, "succeeded", params={"sigma": 9.0})
        assert queue.succeed_many(s, old, {job_id: {"params": {"sigma": 9.0}, "metrics": {}, "warnings": []}}) == set()
        assert not queue.heartbeat(s, old, 60)
        assert queue.heartbeat(s, new, 60) == {job_id: False}
        assert queue.add_epoch(s, new, {job_id: row}) == {job_id: False}
    j = job(db_url, job_id)
    assert j.status == "running" and j.attempts == 2 and j.worker == "w:2" and j.params == {"sigma": 0.3}
    assert len(client.get(f"/v1/jobs/{job_id}/history").json()["history"]) == 1


def test_reaper_fails_after_max_attempts_and_honours_cancel(client: TestClient, db_url: str) -> None:
    crashing, cancelled = submit(client, 2)
    with session_scope(db_url) as s:
        s.execute(update(Job).where(Job.id == crashing).values(max_attempts=2))
    for _ in range(2):
        claim(db_url, lease=0.01, limit=1)
        time.sleep(0.05)
        with session_scope(db_url) as s:
            queue.reap(s)
    failed = job(db_url, crashing)
    assert failed.status == "failed" and failed.attempts == 2 and failed.error["type"] == "worker_lost"
    claim(db_url, lease=0.01)
    client.post(f"/v1/jobs/{cancelled}:cancel")
    time.sleep(0.05)
    with session_scope(db_url) as s:
        assert queue.reap(s)["cancelled"] == 1
    assert job(db_url, cancelled).status == "cancelled"


def test_hand_back_does_not_count_the_attempt(client: TestClient, db_url: str) -> None:
    (job_id,) = submit(client)
    token, _ = claim(db_url)
    with session_scope(db_url) as s:
        assert queue.hand_back(s, job_id, token)
    j = job(db_url, job_id)
    assert j.status == "queued" and j.attempts == 0 and j.lease_token is None


def finish(url: str, job_id: str, params: dict[str, Any]) -> None:
    with session_scope(url) as s:
        token = s.scalar(select(Job.lease_token).where(Job.id == job_id))
        assert queue.finish(s, job_id, str(token), "succeeded", params=params, metrics={"loss": 0.0})


def test_model_versions_and_predictions(client: TestClient, db_url: str) -> None:
    named = [client.post("/v1/jobs", json={**seed_job(), "model_name": "edge"}).json()["id"] for _ in range(2)]
    claim(db_url)
    finish(db_url, named[1], {"sigma": 0.5})
    finish(db_url, named[0], {"sigma": 0.25})
    model = client.get("/v1/models/edge").json()
    assert [(v["version"], v["job_id"]) for v in model["versions"]] == [(1, named[1]), (2, named[0])]
    x = [0.0, 0.1, -0.3, 0.45, 2.0]
    latest = client.post("/v1/models/edge:predict", json={"instances": x}).json()
    v1 = client.post("/v1/models/edge/versions/1:predict", json={"instances": [[v] for v in x]}).json()
    assert latest["version"] == 2 and v1["version"] == 1
    np.testing.assert_allclose(latest["predictions"], functions.bump(np, np.float32(x), np.float32(0.25)), rtol=1e-6)
    assert np.asarray(v1["predictions"]).shape == (5, 1)
    np.testing.assert_allclose(
        np.ravel(v1["predictions"]), functions.bump(np, np.float32(x), np.float32(0.5)), rtol=1e-6
    )
    assert client.get("/v1/models").json()["models"][0]["latest_version"] == 2
    bad = client.post("/v1/models/edge:predict", json={"instances": [[1, 2], [3]]})
    assert bad.status_code == 422 and "ragged" in bad.json()["error"]["message"]
    assert client.post("/v1/models/edge:predict", json={"instances": []}).status_code == 422
    assert client.post("/v1/models/edge/versions/9:predict", json={"instances": [1]}).status_code == 404


def test_a_groups_epochs_and_successes_take_as_many_statements_whatever_its_size(
    client: TestClient, db_url: str
) -> None:
    from sqlalchemy import event

    from app.store.db import engine_for

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.extend([statement] * (len(parameters) if executemany else 1))  # the driver runs each set

    engine = engine_for(db_url)
    used = []
    for size, model in ((2, "small"), (40, "large")):
        ids = submit(client, size, model_name=model)
        token, _ = claim(db_url)
        rows = {
            j: {"epoch": 1, "loss": 0.5, "val_loss": None, "params": {"sigma": i / 10}, "seconds": 0.1}
            for i, j in enumerate(ids)
        }
        done = {
            j: {
                "params": {"sigma": i / 10},
                "metrics": {"r2": 0.9},
                "warnings": [],
                "artifact": b"k" * (i + 1),
                "stopped_epoch": None,
            }
            for i, j in enumerate(ids)
        }
        event.listen(engine, "before_cursor_execute", count)
        try:
            with session_scope(db_url) as s:
                assert queue.add_epoch(s, token, rows) == {j: False for j in ids}
            with session_scope(db_url) as s:
                assert queue.succeed_many(s, token, done) == set(ids)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        used.append(len(statements))
        statements.clear()
        versions = client.get("/v1/models/" + model).json()
        jobs = [job(db_url, j) for j in ids]
        assert [j.model_version for j in jobs] == list(range(1, size + 1))  # submission order
        assert [j.params for j in jobs] == [{"sigma": i / 10} for i in range(size)]
        assert all(j.status == "succeeded" and j.metrics == {"r2": 0.9} and j.warnings == [] for j in jobs)
        history = client.get(f"/v1/jobs/{ids[-1]}/history").json()["history"]
        assert [(h["epoch"], h["loss"], h["params"]) for h in history] == [(1, 0.5, {"sigma": (size - 1) / 10})]
        artifact = client.get(f"/v1/models/{model}/versions/{size}/artifact")
        assert versions and artifact.status_code == 200 and artifact.content == b"k" * size
    assert used[0] == used[1]  # 40 jobs: no more executions than 2


def test_a_large_sweep_is_submitted_in_as_many_statements_as_a_small_one(client: TestClient, db_url: str) -> None:
    from sqlalchemy import event

    from app.store.db import engine_for

    executions: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        executions.append(len(parameters) if executemany else 1)

    engine = engine_for(db_url)
    used = []
    for size in (2, 300):
        body = {
            "base": seed_job(),
            "points": [{"data.params.sigma": 0.1 + i / 1000, "training.seed": i} for i in range(size)],
        }
        event.listen(engine, "before_cursor_execute", count)
        try:
            r = client.post("/v1/sweeps", json=body)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert r.status_code == 201, r.text
        used.append(sum(executions))
        executions.clear()
        rows = client.get(f"/v1/sweeps/{r.json()['id']}").json()["jobs"]
        assert [row["id"] for row in rows] == r.json()["jobs"]  # in point order
        assert [row["point"]["training.seed"] for row in rows] == list(range(size))
        assert all(row["status"] == "queued" for row in rows)
    assert used[0] == used[1]
    assert len(claim(db_url, limit=1000)[1]) == 302  # both sweeps' jobs are queued, one fuse key


def test_models_are_listed_page_by_page_by_name(client: TestClient, db_url: str) -> None:
    names = [f"model-{i:02d}" for i in range(5)]
    for name in names:
        submit(client, 1, model_name=name)
    token, jobs = claim(db_url)
    with session_scope(db_url) as s:
        done = {"params": {"sigma": 0.5}, "metrics": {}, "warnings": []}
        assert len(queue.succeed_many(s, token, {j.id: done for j in jobs})) == 5
    seen, page_token, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"page_token": page_token} if page_token else {})}
        page = client.get("/v1/models", params=params).json()
        seen += [m["name"] for m in page["models"]]
        pages += 1
        page_token = page["next_page_token"]
        if page_token is None:
            break
    assert seen == names and pages == 3
    assert client.get("/v1/models").json()["next_page_token"] is None  # one page of 50 holds them
    bad = client.get("/v1/models", params={"page_token": "%%%"})
    assert bad.status_code == 422 and "page_token" in bad.text


def test_a_sweep_inserted_chunk_by_chunk_keeps_its_order_and_a_bad_point_creates_nothing(
    client: TestClient, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.sweeps import service

    monkeypatch.setattr(service, "CHUNK", 128)  # 300 points: three chunks
    points: list[dict[str, Any]] = [{"training.seed": i} for i in range(300)]
    bad = client.post("/v1/sweeps", json={"base": seed_job(), "points": [*points[:299], {"training.epochs": 0}]})
    assert bad.status_code == 422 and "points[299]" in bad.json()["error"]["message"]
    assert client.get("/v1/sweeps").json()["sweeps"] == [] and client.get("/v1/jobs").json()["jobs"] == []
    r = client.post("/v1/sweeps", json={"base": seed_job(), "points": points})
    assert r.status_code == 201
    rows = client.get(f"/v1/sweeps/{r.json()['id']}").json()["jobs"]
    assert [row["id"] for row in rows] == r.json()["jobs"] and [row["point"]["training.seed"] for row in rows] == list(
        range(300)
    )


def test_a_sweeps_stride_samples_every_kth_job_over_the_whole_sweep_and_pages(client: TestClient) -> None:
    points: list[dict[str, Any]] = [{"training.seed": i} for i in range(25)]
    sweep = client.post("/v1/sweeps", json={"base": seed_job(), "points": points}).json()
    path = f"/v1/sweeps/{sweep['id']}"
    sample = client.get(path, params={"stride": 4}).json()
    assert [r["id"] for r in sample["jobs"]] == sweep["jobs"][::4] and sample["next_page_token"] is None
    assert sample["counts"] == {"queued": 25}  # counts stay the whole sweep's
    first = client.get(path, params={"stride": 4, "limit": 5}).json()
    rest = client.get(path, params={"stride": 4, "limit": 5, "page_token": first["next_page_token"]}).json()
    assert [r["point"]["training.seed"] for r in first["jobs"] + rest["jobs"]] == list(range(0, 25, 4))
    assert rest["next_page_token"] is None
    assert client.get(path, params={"stride": 1}).json()["jobs"] == client.get(path).json()["jobs"]
    for bad in (0, -1, "x", 10**7):
        r = client.get(path, params={"stride": bad})
        assert r.status_code == 422 and "stride" in r.json()["error"]["message"], r.text


def test_a_finished_sweeps_answer_is_kept_and_never_sent_once_a_job_of_it_changes(
    client: TestClient, db_url: str
) -> None:
    from app.sweeps import service

    sweep = client.post("/v1/sweeps", json={"base": seed_job(), "points": [{"training.seed": i} for i in range(4)]})
    sweep_id, ids = sweep.json()["id"], sweep.json()["jobs"]
    path = f"/v1/sweeps/{sweep_id}"
    answers: service.Answers = client.app.state.sweep_answers  # type: ignore[attr-defined]

    def version() -> int:
        with session_scope(db_url) as s:
            return int(s.scalar(select(Sweep.answer_version).where(Sweep.id == sweep_id)) or 0)

    claim(db_url)
    for i, job_id in enumerate(ids[:3]):
        finish(db_url, job_id, {"sigma": 0.1 * i})
    assert not client.get(path).json()["done"] and answers.get(sweep_id, version(), 10_000) is None  # rows change
    finish(db_url, ids[3], {"sigma": 0.3})
    first = client.get(path)
    assert first.json()["done"] and first.json()["counts"] == {"succeeded": 4}
    assert answers.get(sweep_id, version(), 10_000) == first.content  # kept as sent
    answers.put(sweep_id, version(), b'{"kept": true}', 4)
    assert client.get(path).json() == {"kept": True}  # and sent from there
    assert client.get(path, params={"limit": 4}).json() == {"kept": True}  # still every row in one answer
    assert len(client.get(path, params={"limit": 3}).json()["jobs"]) == 3  # a page is built
    assert len(client.get(path, params={"stride": 2}).json()["jobs"]) == 2
    # A finished job of the sweep deleted (here, or through another API process): never the kept answer.
    assert client.delete(f"/v1/jobs/{ids[0]}").status_code == 204
    after = client.get(path).json()
    assert [r["id"] for r in after["jobs"]] == ids[1:] and after["counts"] == {"succeeded": 3}
    assert client.get(path).json() == after
    with session_scope(db_url) as s:  # a finished job changed in place (a model version deleted) also counts
        s.execute(update(Job).where(Job.id == ids[1]).values(params={"sigma": 0.9}))
    assert client.get(path).json()["jobs"][0]["params"] == {"sigma": 0.9}
    # An answer built from rows read before a change, kept after it, is never sent.
    with session_scope(db_url, readonly=True) as s:
        stale = service.Answers(2**20)
        service.get(s, sweep_id, 10_000, answers=stale)
    assert client.delete(f"/v1/jobs/{ids[1]}").status_code == 204
    client.app.state.sweep_answers = stale  # type: ignore[attr-defined]
    assert [r["id"] for r in client.get(path).json()["jobs"]] == ids[2:]


def test_metrics_read_totals_the_database_keeps_as_jobs_change(client: TestClient, db_url: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def metrics() -> dict[tuple[str, str], float]:
        text = client.get("/metrics").text
        return {
            (s.name, s.labels.get("state", s.labels.get("le", ""))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    ids = submit(client, 4)
    token, _ = claim(db_url)
    row = {"epoch": 1, "loss": 0.1, "val_loss": None, "params": {"sigma": 0.3}, "seconds": 0.1}
    with session_scope(db_url) as s:
        queue.add_epoch(s, token, {job_id: row for job_id in ids})
        queue.succeed_many(s, token, {j: {"params": {"sigma": 0.3}, "metrics": {}, "warnings": []} for j in ids[:2]})
        queue.fail(s, ids[2], token, {"type": "training_error", "message": "x"})
    submit(client, 1)
    m = metrics()
    assert m[("bumpfit_jobs", "succeeded")] == 2 and m[("bumpfit_jobs", "failed")] == 1
    assert m[("bumpfit_jobs", "running")] == 1 and m[("bumpfit_jobs", "queued")] == 1
    assert m[("bumpfit_queue_depth", "")] == 1 and m[("bumpfit_epochs_trained", "")] == 4
    assert (
        m[("bumpfit_job_duration_seconds_count", "")] == 3 and m[("bumpfit_job_duration_seconds_bucket", "+Inf")] == 3
    )
    assert m[("bumpfit_job_duration_seconds_bucket", "1800")] == 3  # each took well under a second
    assert 0 <= m[("bumpfit_job_duration_seconds_sum", "")] < 60
    assert client.delete(f"/v1/jobs/{ids[0]}").status_code == 204  # a deleted job leaves the totals
    m = metrics()
    assert m[("bumpfit_jobs", "succeeded")] == 1 and m[("bumpfit_job_duration_seconds_count", "")] == 2
    assert m[("bumpfit_epochs_trained", "")] == 3
    with session_scope(db_url) as s:  # a job ended long ago: its duration's bucket, once
        finished = s.scalars(select(Job.finished_at).where(Job.id == ids[1])).one()
        s.execute(update(Job).where(Job.id == ids[1]).values(started_at=finished - timedelta(seconds=45)))
    m = metrics()
    assert [m[("bumpfit_job_duration_seconds_bucket", le)] for le in ("30", "60", "+Inf")] == [1, 2, 2]
    assert 45 <= m[("bumpfit_job_duration_seconds_sum", "")] < 60
    assert kept_totals(db_url) == recounted(db_url)


def kept_totals(url: str) -> dict[str, float]:
    """The totals the triggers kept, keys at 0 left out."""
    with session_scope(url, readonly=True) as s:
        return {k: round(v, 6) for k, v in s.execute(select(JobTotal.key, JobTotal.value)).tuples() if v}


def recounted(url: str) -> dict[str, float]:
    """The same totals counted from the jobs table as it is."""
    with session_scope(url, readonly=True) as s:
        dialect = s.get_bind().dialect.name
        rows = text(f"SELECT key, SUM(amount) FROM ({totals.contributions('jobs', dialect)}) AS c GROUP BY key")
        return {k: round(float(v), 6) for k, v in s.execute(rows).tuples() if v}
