"""TensorFlow Serving's REST API where it applies (formats, status, metadata, labels) and the
lifecycle (deleting jobs, versions and datasets; lists of sweeps and datasets; retention), on SQLite
and PostgreSQL. No worker runs: jobs are claimed and finished through the queue."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from app.datasets.models import Dataset
from app.http.auth import new_key
from app.jobs.models import Artifact, HistoryRow, Job
from app.main import create_app
from app.outbox.models import Delivery, OutboxEvent
from app.serving.models import ModelLabel
from app.settings import Settings
from app.store import lifecycle, queue
from app.store.db import session_scope, utcnow
from tests.conftest import seed_job


def error(resp: Any, status: int, field: str | None = None) -> str:
    assert resp.status_code == status, resp.text[:500]
    body = resp.json()["error"]
    assert set(body) == {"type", "message", "details"}
    if field is not None:
        assert field in body["message"], body
    return str(body["message"])


def count(url: str, model: Any) -> int:
    with session_scope(url, readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def trained(client: TestClient, url: str, sigmas: list[float], name: str = "bumpy", **spec: Any) -> list[str]:
    """Jobs of model `name` that succeeded with these sigmas, versions 1, 2, ... in order."""
    ids = []
    for sigma in sigmas:
        job_id = client.post("/v1/jobs", json={**seed_job(n=200), "model_name": name, **spec}).json()["id"]
        with session_scope(url) as s:
            token, jobs = queue.claim(s, "w:1", ("auto", "cpu"), 1, 60)
            assert [j.id for j in jobs] == [job_id]
            queue.add_epoch(
                s, token, {job_id: {"epoch": 1, "loss": 0.1, "val_loss": None, "seconds": 0.1, "params": {}}}
            )
        with session_scope(url) as s:
            assert queue.finish(
                s, job_id, token, params={"sigma": sigma}, metrics={"loss": 0.0}, artifact=b"keras-" + job_id.encode()
            )
        ids.append(job_id)
    return ids


# -- TensorFlow Serving's formats, status and metadata -------------------------------------------------


def test_row_and_columnar_formats_and_signature_name(client: TestClient, db_url: str) -> None:
    trained(client, db_url, [0.5])
    row = client.post("/v1/models/bumpy:predict", json={"instances": [0.1, 0.2]})
    assert row.status_code == 200 and set(row.json()) == {"predictions", "model", "version"}
    cols = client.post("/v1/models/bumpy:predict", json={"signature_name": "serving_default", "inputs": [0.1, 0.2]})
    assert cols.status_code == 200 and set(cols.json()) == {"outputs", "model", "version"}
    assert cols.json()["outputs"] == row.json()["predictions"]
    nested = client.post("/v1/models/bumpy/versions/1:predict", json={"inputs": [[0.1], [0.2]]}).json()
    assert nested["outputs"] == [[p] for p in row.json()["predictions"]]
    error(
        client.post("/v1/models/bumpy:predict", json={"signature_name": "other", "instances": [0.1]}),
        422,
        "signature_name",
    )
    error(client.post("/v1/models/bumpy:predict", json={"instances": [0.1], "inputs": [0.1]}), 422, "exactly one")
    error(client.post("/v1/models/bumpy:predict", json={}), 422, "exactly one")
    error(client.post("/v1/models/bumpy:predict", json={"inputs": [[0.1, 0.2], [0.3]]}), 422, "inputs")
    error(client.post("/v1/models/bumpy:predict", json={"inputs": ["a"]}), 422, "inputs[0]")


def test_model_status_and_metadata(client: TestClient, db_url: str) -> None:
    trained(client, db_url, [0.5, 0.6])
    model = client.get("/v1/models/bumpy").json()
    assert [v["version"] for v in model["versions"]] == [1, 2] and model["latest_version"] == 2  # kept as it was
    ok = {"error_code": "OK", "error_message": ""}
    assert model["model_version_status"] == [
        {"version": "2", "state": "AVAILABLE", "status": ok},
        {"version": "1", "state": "AVAILABLE", "status": ok},
    ]
    assert model["labels"] == {}
    assert client.get("/v1/models").json()["models"][0]["model_version_status"][0]["version"] == "2"
    one = client.get("/v1/models/bumpy/versions/1").json()
    assert one == {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}]}
    error(client.get("/v1/models/bumpy/versions/3"), 404, "version 3")
    meta = client.get("/v1/models/bumpy/metadata").json()
    assert meta["model_spec"] == {"name": "bumpy", "signature_name": "", "version": "2"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    dims = [{"size": "-1", "name": ""}, {"size": "1", "name": ""}]
    for tensor in (*sig["inputs"].values(), *sig["outputs"].values()):
        assert tensor["dtype"] == "DT_FLOAT" and tensor["tensor_shape"] == {"dim": dims, "unknown_rank": False}
    assert client.get("/v1/models/bumpy/versions/1/metadata").json()["model_spec"]["version"] == "1"
    error(client.get("/v1/models/nope/metadata"), 404, "nope")


def test_metadata_gives_the_feature_count(client: TestClient, db_url: str) -> None:
    data = {"kind": "inline", "x": [[0.1, 0.2, 0.3]] * 4, "y": [[0.1, 0.2, 0.3]] * 4}
    job_id = client.post("/v1/jobs", json={"data": data, "training": {"epochs": 1}}).json()["id"]
    with session_scope(db_url) as s:
        token, _ = queue.claim(s, "w:1", ("auto", "cpu"), 1, 60)
        queue.finish(s, job_id, token, params={"sigma": 0.5}, metrics={})
    sig = client.get(f"/v1/models/{job_id}/metadata").json()["metadata"]["signature_def"]["signature_def"]
    assert sig["serving_default"]["inputs"]["x"]["tensor_shape"]["dim"][1]["size"] == "3"


# -- labels ---------------------------------------------------------------------------------------------


def test_labels_set_move_predict_and_delete(client: TestClient, db_url: str) -> None:
    trained(client, db_url, [0.3, 0.7])
    r = client.put("/v1/models/bumpy/labels/stable", json={"version": 1})
    assert r.status_code == 200 and r.json()["version"] == 1 and r.json()["label"] == "stable"
    assert client.get("/v1/models/bumpy").json()["labels"] == {"stable": 1}
    assert client.get("/v1/models/bumpy/labels/stable").json()["version"] == 1
    v1 = client.post("/v1/models/bumpy/versions/1:predict", json={"instances": [0.2]}).json()["predictions"]
    v2 = client.post("/v1/models/bumpy/versions/2:predict", json={"instances": [0.2]}).json()["predictions"]
    assert v1 != v2
    via = client.post("/v1/models/bumpy/labels/stable:predict", json={"instances": [0.2]}).json()
    assert via["predictions"] == v1 and via["version"] == 1
    assert client.get("/v1/models/bumpy/labels/stable/metadata").json()["model_spec"]["version"] == "1"
    assert client.put("/v1/models/bumpy/labels/stable", json={"version": 2}).json()["version"] == 2  # moved
    via = client.post("/v1/models/bumpy/labels/stable:predict", json={"inputs": [0.2]}).json()
    assert via["outputs"] == v2 and via["version"] == 2
    assert client.delete("/v1/models/bumpy/labels/stable").status_code == 204
    assert client.get("/v1/models/bumpy").json()["labels"] == {}
    error(client.post("/v1/models/bumpy/labels/stable:predict", json={"instances": [0.2]}), 404, "stable")
    error(client.delete("/v1/models/bumpy/labels/stable"), 404, "stable")


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/models/bumpy/labels/stable", {"version": 9}, 422, "version: model 'bumpy' has no version 9"),
        ("/v1/models/bumpy/labels/stable", {"version": 0}, 422, "version"),
        ("/v1/models/bumpy/labels/stable", {"version": "1"}, 422, "version"),
        ("/v1/models/bumpy/labels/stable", {"version": 1, "x": 1}, 422, "x"),
        ("/v1/models/bumpy/labels/stable", {}, 422, "version"),
        ("/v1/models/bumpy/labels/1abc", {"version": 1}, 422, "label"),
        ("/v1/models/nope/labels/stable", {"version": 1}, 404, "nope"),
    ],
)
def test_bad_labels_are_refused_and_change_nothing(
    client: TestClient, db_url: str, path: str, body: Any, status: int, needle: str
) -> None:
    trained(client, db_url, [0.3])
    error(client.put(path, json=body), status, needle)
    assert count(db_url, ModelLabel) == 0


# -- deleting -------------------------------------------------------------------------------------------


def test_delete_a_finished_job_takes_its_history_artifact_and_version(client: TestClient, db_url: str) -> None:
    first, second = trained(client, db_url, [0.3, 0.7])
    queued = client.post("/v1/jobs", json=seed_job(n=200)).json()["id"]
    assert "queued" in error(client.delete(f"/v1/jobs/{queued}"), 409)
    client.put("/v1/models/bumpy/labels/stable", json={"version": 1})
    msg = error(client.delete(f"/v1/jobs/{first}"), 409, "stable")
    assert client.delete(f"/v1/jobs/{first}").json()["error"]["details"] == {
        "labels": [{"model": "bumpy", "label": "stable", "version": 1}]
    }
    assert "label" in msg and count(db_url, Job) == 3 and count(db_url, Artifact) == 2
    assert client.delete(f"/v1/jobs/{second}").status_code == 204
    assert count(db_url, Artifact) == 1 and count(db_url, HistoryRow) == 1
    error(client.get(f"/v1/jobs/{second}"), 404)
    error(client.delete(f"/v1/jobs/{second}"), 404)
    assert [v["version"] for v in client.get("/v1/models/bumpy").json()["versions"]] == [1]
    client.post(f"/v1/jobs/{queued}:cancel")
    assert client.delete(f"/v1/jobs/{queued}").status_code == 204


def test_delete_a_model_version_keeps_its_job_and_never_reuses_the_number(client: TestClient, db_url: str) -> None:
    first, second = trained(client, db_url, [0.3, 0.7])
    client.put("/v1/models/bumpy/labels/stable", json={"version": 2})
    msg = error(client.delete("/v1/models/bumpy/versions/2"), 409, "stable")
    assert msg.startswith("label(s) stable point at version 2 of model 'bumpy'; move or delete")
    client.delete("/v1/models/bumpy/labels/stable")
    assert client.delete("/v1/models/bumpy/versions/2").status_code == 204
    error(client.delete("/v1/models/bumpy/versions/2"), 404)
    error(client.get("/v1/models/bumpy/versions/2/artifact"), 404)
    error(client.put("/v1/models/bumpy/labels/stable", json={"version": 2}), 422, "version")
    job = client.get(f"/v1/jobs/{second}").json()
    assert job["status"] == "succeeded" and job["params"] == {"sigma": 0.7} and job["model"]["version"] is None
    assert len(client.get(f"/v1/jobs/{second}/history").json()["history"]) == 1
    model = client.get("/v1/models/bumpy").json()
    assert model["latest_version"] == 1 and [s["version"] for s in model["model_version_status"]] == ["1"]
    assert client.post("/v1/models/bumpy:predict", json={"instances": [0.1]}).json()["version"] == 1
    (third,) = trained(client, db_url, [0.9])
    assert client.get(f"/v1/jobs/{third}").json()["model"]["version"] == 3
    assert client.delete("/v1/models/bumpy/versions/1").status_code == 204
    assert client.delete(f"/v1/jobs/{first}").status_code == 204  # a job whose version went
    error(client.delete("/v1/models/bumpy/versions/0"), 422, "version")


def test_delete_a_dataset_only_when_no_queued_or_running_job_uses_it(client: TestClient, db_url: str) -> None:
    csv = b"x,y\n" + b"".join(f"{i / 10},{i / 20}\n".encode() for i in range(10))
    ds = client.post("/v1/datasets", files={"file": ("d.csv", io.BytesIO(csv), "text/csv")}).json()["id"]
    other = csv + b"1.0,0.5\n"  # not the same file: the same one would be stored once (issue 34)
    unused = client.post("/v1/datasets", files={"file": ("e.csv", io.BytesIO(other), "text/csv")}).json()["id"]
    job_id = client.post("/v1/jobs", json={"data": {"kind": "dataset", "id": ds}, "training": {"epochs": 1}}).json()[
        "id"
    ]
    msg = error(client.delete(f"/v1/datasets/{ds}"), 409, job_id)
    assert "queued or running" in msg
    with session_scope(db_url) as s:
        queue.claim(s, "w:1", ("auto", "cpu"), 1, 60)
    error(client.delete(f"/v1/datasets/{ds}"), 409, job_id)
    assert count(db_url, Dataset) == 2
    assert client.delete(f"/v1/datasets/{unused}").status_code == 204
    client.post(f"/v1/jobs/{job_id}:cancel")
    with session_scope(db_url) as s:
        s.execute(update(Job).where(Job.id == job_id).values(status="cancelled", finished_at=utcnow()))
    assert client.delete(f"/v1/datasets/{ds}").status_code == 204
    error(client.get(f"/v1/datasets/{ds}"), 404)
    error(client.delete(f"/v1/datasets/{ds}"), 404)
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    error(client.get(f"/v1/jobs/{job_id}/sample"), 404, f"dataset {ds!r}")


def test_inline_data_goes_with_the_last_job_that_uses_it(client: TestClient, db_url: str) -> None:
    inline = {"kind": "inline", "x": [0.1, 0.2, 0.3, 0.4], "y": [0.0, 0.1, 0.2, 0.3]}
    csv = b"x,y\n" + b"".join(f"{i / 10},{i / 20}\n".encode() for i in range(10))
    upload = client.post("/v1/datasets", files={"file": ("d.csv", io.BytesIO(csv), "text/csv")}).json()["id"]
    (alone,) = trained(client, db_url, [0.3], data=inline)
    (on_upload,) = trained(client, db_url, [0.4], data={"kind": "dataset", "id": upload})
    sweep = client.post(
        "/v1/sweeps", json={"base": {"data": inline}, "grid": {"training.seed": [1, 2]}}
    ).json()  # one dataset for the sweep
    listed = {d["id"]: d["inline"] for d in client.get("/v1/datasets").json()["datasets"]}
    assert sorted(listed.values()) == [False, True, True] and listed[upload] is False
    (mine,) = {client.get(f"/v1/jobs/{alone}").json()["spec"]["data"]["id"]}
    assert listed[mine] is True
    assert client.delete(f"/v1/jobs/{alone}").status_code == 204
    error(client.get(f"/v1/datasets/{mine}"), 404)
    assert client.delete(f"/v1/jobs/{on_upload}").status_code == 204  # an upload stays
    assert client.get(f"/v1/datasets/{upload}").status_code == 200
    first, second = sweep["jobs"]
    for job_id in (first, second):
        client.post(f"/v1/jobs/{job_id}:cancel")
    assert client.delete(f"/v1/jobs/{first}").status_code == 204
    assert count(db_url, Dataset) == 2  # the sweep's second job still uses its data
    assert client.delete(f"/v1/jobs/{second}").status_code == 204
    assert [d["id"] for d in client.get("/v1/datasets").json()["datasets"]] == [upload]


# -- lists ----------------------------------------------------------------------------------------------


def test_datasets_and_sweeps_are_listed_in_pages(client: TestClient) -> None:
    csv = b"x,y\n0.1,0.2\n0.3,0.%d\n"  # five different files: the same one would be stored once (issue 34)
    made = [
        client.post("/v1/datasets", files={"file": (f"{i}.csv", csv % i, "text/csv")}).json()["id"] for i in range(5)
    ]
    seen, token = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"page_token": token} if token else {})}
        page = client.get("/v1/datasets", params=params).json()
        seen += [d["id"] for d in page["datasets"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == made[::-1]
    error(client.get("/v1/datasets", params={"page_token": "junk"}), 422, "page_token")
    error(client.get("/v1/datasets", params={"limit": 0}), 422, "limit")
    sweeps = [
        client.post("/v1/sweeps", json={"base": seed_job(n=200), "grid": {"data.params.sigma": [0.1, 0.2]}}).json()[
            "id"
        ]
        for _ in range(3)
    ]
    first = client.get("/v1/sweeps", params={"limit": 2}).json()
    assert [s["id"] for s in first["sweeps"]] == sweeps[:0:-1]
    assert first["sweeps"][0]["counts"] == {"queued": 2} and first["sweeps"][0]["job_count"] == 2
    rest = client.get("/v1/sweeps", params={"page_token": first["next_page_token"]}).json()
    assert [s["id"] for s in rest["sweeps"]] == sweeps[:1] and rest["next_page_token"] is None
    assert rest["sweeps"][0]["done"] is False
    error(client.get("/v1/sweeps", params={"page_token": "2026-01-01T00:00:00~nothex"}), 422, "page_token")


# -- retention ------------------------------------------------------------------------------------------


def test_retention_removes_old_finished_jobs_that_no_label_keeps(client: TestClient, db_url: str) -> None:
    inline = {"kind": "inline", "x": [0.1, 0.2], "y": [0.0, 0.1]}
    old, kept, recent = trained(client, db_url, [0.3, 0.5, 0.7], data=inline)
    queued = client.post("/v1/jobs", json=seed_job(n=200)).json()["id"]
    client.put("/v1/models/bumpy/labels/prod", json={"version": 2})
    with session_scope(db_url) as s:
        long_ago = utcnow() - timedelta(days=40)
        s.execute(update(Job).where(Job.id.in_([old, kept, queued])).values(finished_at=long_ago, created_at=long_ago))
    with session_scope(db_url) as s:
        assert lifecycle.expire(s, 30) == 1
    assert {j["id"] for j in client.get("/v1/jobs").json()["jobs"]} == {kept, recent, queued}
    assert count(db_url, Artifact) == 2 and count(db_url, HistoryRow) == 2
    assert count(db_url, Dataset) == 2  # the expired job's inline data went with it
    with session_scope(db_url) as s:
        assert lifecycle.expire(s, 30) == 0


def test_retention_removes_old_events_that_no_target_waits_for(db_url: str) -> None:
    from workers.runner import Worker

    long_ago, now = utcnow() - timedelta(days=40), utcnow()
    events = {  # id: (written, its deliveries' statuses)
        "done-old": (long_ago, ["done"]),
        "dead-old": (long_ago, ["dead", "done"]),
        "bare-old": (long_ago, []),
        "waiting-old": (long_ago, ["done", "pending"]),  # a target still waits: kept
        "done-new": (now, ["done"]),
    }
    with session_scope(db_url) as s:
        for event_id, (written, statuses) in events.items():
            s.add(OutboxEvent(id=event_id, type="job.succeeded", subject="j", payload={}, created_at=written))
            s.flush()
            s.add_all(Delivery(event_id=event_id, target=f"webhook:{i}", status=st) for i, st in enumerate(statuses))
    Worker(Settings(database_url=db_url, retention_days=30)).housekeep()
    with session_scope(db_url) as s:
        assert set(s.scalars(select(OutboxEvent.id))) == {"waiting-old", "done-new"}
        assert sorted(s.scalars(select(Delivery.event_id))) == ["done-new", "waiting-old", "waiting-old"]
        assert lifecycle.expire_events(s, 30) == 0


def test_labels_and_deletes_need_an_admin_key(db_url: str) -> None:
    read, read_entry = new_key("read")
    submit, submit_entry = new_key("submit")
    admin, admin_entry = new_key("admin")
    settings = Settings(database_url=db_url, api_keys=f"{read_entry},{submit_entry},{admin_entry}")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {submit}"}) as client:
        (job_id,) = trained(client, db_url, [0.4])
        as_reader = {"Authorization": f"Bearer {read}"}
        for method, path, body in (
            ("PUT", "/v1/models/bumpy/labels/stable", {"version": 1}),
            ("DELETE", "/v1/models/bumpy/versions/1", None),
            ("DELETE", f"/v1/jobs/{job_id}", None),
        ):
            error(client.request(method, path, json=body, headers=as_reader), 403, "submit")
            error(client.request(method, path, json=body), 403, "needs 'admin'")  # the submit key, since issue 34
        assert client.get("/v1/models/bumpy/metadata", headers=as_reader).status_code == 200
        assert client.get("/v1/models/bumpy").json()["labels"] == {} and count(db_url, Job) == 1
        as_admin = {"Authorization": f"Bearer {admin}"}
        r = client.put("/v1/models/bumpy/labels/stable", json={"version": 1}, headers=as_admin)
        assert r.status_code == 200, r.text
