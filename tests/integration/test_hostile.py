"""Hostile and careless clients: hand-made files (forged .npy headers, compression bombs, odd
encodings and line endings), huge numbers, wrong types, every job state on every route, and
hypothesis over the request schemas. Each gets a 4xx that names the field and the problem, and
stores nothing; nothing gets a 5xx; one request never stalls the others."""

from __future__ import annotations

import codecs
import io
import json
import logging
import math
import struct
import tempfile
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from app import migrate, queue
from app.datasets import uploads
from app.datasets.models import Dataset
from app.db import session_scope, utcnow
from app.jobs.models import Job, JobStatus
from app.main import create_app
from app.settings import Settings
from tests.conftest import Service, seed_job

LIMITS = uploads.Limits(max_bytes=64 << 20, max_points=2_000_000, max_features=64)

CANCELLED, FAILED = JobStatus.CANCELLED, JobStatus.FAILED


def count(url: str, model: Any) -> int:
    with session_scope(url, readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def error(resp: Any, status: int) -> str:
    """The error message of a contract error response with this status."""
    assert resp.status_code == status, resp.text[:500]
    body = resp.json()["error"]
    assert set(body) == {"type", "message", "details"}
    return str(body["message"])


@pytest.fixture(scope="module")
def db() -> str:
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'hostile.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="module")
def api(db: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=db))) as c:
        yield c


# -- hand-made files ----------------------------------------------------------------------------


def npy(header: str, data: bytes = b"", magic: bytes = b"\x93NUMPY\x01\x00") -> bytes:
    """A .npy file written by hand, so its header can say anything."""
    text = header.encode("latin-1")
    pad = 64 - (len(magic) + 2 + len(text) + 1) % 64
    return magic + struct.pack("<H", len(text) + pad + 1) + text + b" " * pad + b"\n" + data


def npz(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def good_y(n: int = 10) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(n, dtype=np.float32))
    return buf.getvalue()


def bomb(claimed: int, inflated: int) -> bytes:
    """x.npy claims `claimed` float32 values but inflates to `inflated` bytes of zeros."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as f:
            f.write(npy(f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({claimed},), }}"))
            zeros = bytes(1 << 20)
            for _ in range(inflated >> 20):
                f.write(zeros)
        zf.writestr("y.npy", good_y(claimed))
    return buf.getvalue()


def many_members(n: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            zf.writestr(f"m{i}", b"")
    return buf.getvalue()


REFUSED_NPZ = [
    (
        "forged shape",
        npz({"x.npy": npy(f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({10**12},), }}"), "y.npy": good_y()}),
        413,
        "x has 1000000000000 rows, more than the limit",
    ),
    (
        "forged 2-D shape",
        npz({"x.npy": npy(f"{{'descr': '<f8', 'fortran_order': False, 'shape': (10, {10**9}), }}"), "y.npy": good_y()}),
        413,
        "features, more than the limit",
    ),
    (
        "over the upload limit once inflated",
        npz({"x.npy": npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2000000, 8), }"), "y.npy": good_y()}),
        413,
        "more than the upload limit",
    ),
    (
        "object dtype",
        npz({"x.npy": npy("{'descr': '|O', 'fortran_order': False, 'shape': (3,), }"), "y.npy": good_y(3)}),
        422,
        "plain integers or floats",
    ),
    (
        "structured dtype",
        npz({"x.npy": npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }"), "y.npy": good_y(3)}),
        422,
        "plain integers or floats",
    ),
    (
        "code in the header",
        npz({"x.npy": npy("__import__('os').system('true')"), "y.npy": good_y()}),
        422,
        "no valid .npy header",
    ),
    (
        "3-D",
        npz(
            {
                "x.npy": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", bytes(32)),
                "y.npy": good_y(),
            }
        ),
        422,
        "1-D (n) or 2-D",
    ),
    (
        "truncated data",
        npz({"x.npy": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }", bytes(8)), "y.npy": good_y()}),
        422,
        "truncated",
    ),
    ("compression bomb", bomb(10, 64 << 20), 422, "more data than its header declares"),
    ("zip directory bomb", many_members(20_000), 422, "members"),
    ("missing y", npz({"x.npy": good_y()}), 422, "needs arrays 'x' and 'y'"),
    ("not a zip", b"PK\x03\x04 but nothing else", 422, "not a readable .npz"),
    ("rows differ", npz({"x.npy": good_y(4), "y.npy": good_y(5)}), 422, "x has 4 rows but y has 5"),
    (
        "infinite value",
        npz(
            {
                "x.npy": npy(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", np.array([1, np.inf], "<f4").tobytes()
                ),
                "y.npy": good_y(2),
            }
        ),
        422,
        "file x[1][0]: NaN or infinite",
    ),
    (
        "float64 beyond the data range",
        npz(
            {
                "x.npy": npy(
                    "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", np.array([1, 1e300]).tobytes()
                ),
                "y.npy": good_y(2),
            }
        ),
        422,
        "within +-1e+12",
    ),
]


@pytest.mark.parametrize("name,content,status,needle", REFUSED_NPZ, ids=[c[0] for c in REFUSED_NPZ])
def test_hostile_npz_is_refused_from_its_headers_in_bounded_memory(
    api: TestClient, db: str, name: str, content: bytes, status: int, needle: str
) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(Exception) as exc:
            uploads.parse("d.npz", content, LIMITS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert needle in str(exc.value)
    assert peak < 8 << 20, f"{name}: {peak / 2**20:.1f} MiB allocated to refuse it"
    before = count(db, Dataset)
    assert needle in error(api.post("/v1/datasets", files={"file": ("d.npz", content)}), status)
    assert count(db, Dataset) == before


def test_npz_written_by_numpy_in_any_layout_is_read_exactly(api: TestClient) -> None:
    x = np.arange(12, dtype=">f8").reshape(6, 2)  # big-endian, and Fortran order below
    for arrays in (
        {"x": x, "y": np.asfortranarray(x * 2)},
        {"x": np.arange(5, dtype=np.int16), "y": np.arange(5, dtype=np.uint8)},
    ):
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        got = uploads.parse("whatever.bin", buf.getvalue(), LIMITS)  # recognised by its zip magic
        for a, b in zip(got, arrays.values(), strict=True):
            np.testing.assert_array_equal(a, np.asarray(b, dtype=np.float32).reshape(len(b), -1))
        assert api.post("/v1/datasets", files={"file": ("d.npz", buf.getvalue())}).status_code == 201


XY = [[0.5, 0.25], [-1.0, 0.0], [2.0, 1e-3]]


def utf16(text: str) -> bytes:
    return codecs.BOM_UTF16_LE + text.encode("utf-16-le")


def savetxt(**kwargs: Any) -> bytes:
    buf = io.BytesIO()
    np.savetxt(buf, np.array(XY), **kwargs)
    return buf.getvalue()


ACCEPTED_CSV = [
    ("unix", b"x,y\n0.5,0.25\n-1,0\n2,1e-3\n"),
    ("windows", b"x,y\r\n0.5,0.25\r\n-1,0\r\n2,1e-3\r\n"),
    ("old mac", b"x,y\r0.5,0.25\r-1,0\r2,1e-3\r"),
    ("no header, no final newline", b"0.5,0.25\n-1,0\n2,1e-3"),
    ("UTF-8 BOM (Excel)", codecs.BOM_UTF8 + b"x,y\r\n0.5,0.25\r\n-1,0\r\n2,1e-3\r\n"),
    ("UTF-16 tab-separated (Excel's Unicode text)", utf16("x\ty\r\n0.5\t0.25\r\n-1\t0\r\n2\t0.001\r\n")),
    ("quoted cells", b'"x","y"\n"0.5","0.25"\n"-1"," 0 "\n"2","1e-3"\n'),
    ("semicolons", b"x;y\n0.5;0.25\n-1;0\n2;0.001\n"),
    ("blank lines and spreadsheet's empty rows", b"\n\nx,y\n0.5,0.25\n\n-1,0\n2,1e-3\n,\n , \n\n\n"),
    ("numpy.savetxt default (spaces, %.18e)", savetxt()),
    ("numpy.savetxt with a header comment", savetxt(delimiter=",", header="x,y", footer="end")),
    ("comments", b"# exported by a tool\nx,y\n# a note\n0.5,0.25\n-1,0\n2,1e-3\n"),
]


@pytest.mark.parametrize("name,content", ACCEPTED_CSV, ids=[c[0] for c in ACCEPTED_CSV])
def test_csv_as_tools_write_it_is_read_exactly(api: TestClient, name: str, content: bytes) -> None:
    x, y = uploads.parse("d.csv", content, LIMITS)
    np.testing.assert_array_equal(np.hstack([x, y]), np.array(XY, dtype=np.float32))
    r = api.post("/v1/datasets", files={"file": ("d.csv", content)})
    assert r.status_code == 201 and (r.json()["n"], r.json()["features"]) == (3, 1), r.text


REFUSED_CSV = [
    ("a word in a cell", b"x,y\n1,2\n3,abc\n", 422, "file row 3, column 2 (y): must be a number, not 'abc'"),
    ("an empty cell", b"x,y\n1,2\n3,\n", 422, "file row 3, column 2 (y): must be a number, not ''"),
    ("a comma decimal", b"x;y\n1;2,5\n", 422, "file row 2, column 2 (y): must be a number, not '2,5'"),
    ("NaN", b"x,y\n1,nan\n", 422, "file row 2, column 2 (y): NaN or infinite"),
    ("overflows float32", b"x,y\n1e39,1\n", 422, "file row 2, column 1 (x): values must lie within +-1e+12"),
    ("a huge number", b"x,y\n1,1" + b"0" * 400 + b"\n", 422, "row 2, column 2 (y)"),
    ("ragged", b"x,y\n1,2\n3\n", 422, "file row 3: has 1 columns"),
    ("latin-1", b"x,y\n1,2\n\xe9,1\n", 422, "not UTF-8 text"),
    ("one endless line", b"1," * 2_000_000, 422, "file row 1: is longer than"),
    ("an unclosed quote", b'x,y\n1,2\n"3,4\n' + b"5,6\n" * 100_000, 422, "file row 3: is not valid CSV"),
    ("a cell over two lines", b'x,y\n1,"2\n3"\n', 422, "file row 2: has a quote that is not closed"),
    ("only a header", b"x,y\n\n", 422, "no data rows"),
    ("columns that are not x and y", b"a,b\n1,2\n", 422, "CSV needs columns x..., y..."),
    ("too many features", b",".join([b"1"] * 130) + b"\n", 413, "features, more than the limit 64"),
    ("binary", bytes(range(256)) * 100, 422, "file"),
]


@pytest.mark.parametrize("name,content,status,needle", REFUSED_CSV, ids=[c[0] for c in REFUSED_CSV])
def test_bad_csv_names_the_row_and_column_and_stores_nothing(
    api: TestClient, db: str, name: str, content: bytes, status: int, needle: str
) -> None:
    before = count(db, Dataset)
    assert needle in error(api.post("/v1/datasets", files={"file": ("d.csv", content)}), status)
    assert count(db, Dataset) == before


def test_row_limit_is_enforced_while_reading(db: str) -> None:
    with TestClient(create_app(Settings(database_url=db, max_points=1000))) as c:
        content = b"x,y\n" + b"0.5,0.5\n" * 5000
        assert "more than 1000 data rows" in error(c.post("/v1/datasets", files={"file": ("d.csv", content)}), 413)


def test_the_upload_limit_is_reachable_through_the_body_limit(db: str) -> None:
    with TestClient(create_app(Settings(database_url=db, max_body_bytes=1000, max_upload_bytes=20_000))) as c:
        content = b"x,y\n" + b"0.5,0.5\n" * 2000  # 16 kB: over the body limit, under the upload limit
        assert c.post("/v1/datasets", files={"file": ("d.csv", content)}).status_code == 201
        assert "upload limit of 20000" in error(c.post("/v1/datasets", files={"file": ("d.csv", content * 2)}), 413)
        part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n\r\nx,y\n'
        chunked = c.post(
            "/v1/datasets",
            content=iter([part] + [b"0.5,0.5\n" * 4000] * 3),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert "larger than the limit of 85536 bytes" in error(chunked, 413)
        body = {"data": {"kind": "inline", "x": [0.5] * 300, "y": [0.5] * 300}}
        assert "larger than the limit of 1000 bytes" in error(c.post("/v1/jobs", json=body), 413)


# -- numbers and types ----------------------------------------------------------------------------

BAD_NUMBERS = [
    ({"data": {"kind": "synthetic", "params": {"sigma": 1e300}}}, "data.params.sigma"),
    ({"data": {"kind": "synthetic", "function": "gaussian", "params": {"a": -1e13}}}, "data.params.a"),
    ({"data": {"kind": "synthetic", "x_range": [-1e30, 1e30]}}, "data.x_range[0]"),
    ({"data": {"kind": "synthetic", "x_range": [1.0, 1.00000001]}}, "same number in float32"),
    ({"data": {"kind": "synthetic", "x_range": ["0", 1]}}, "data.x_range[0]: Input should be a valid number"),
    ({"data": {"kind": "synthetic", "noise_std": 1e20}}, "data.noise_std"),
    ({"data": {"kind": "synthetic", "n": True}}, "data.n"),
    ({"data": {"kind": "synthetic"}, "training": {"learning_rate": 1e-39}}, "training.learning_rate: must be at least"),
    ({"data": {"kind": "synthetic"}, "training": {"learning_rate": "0.1"}}, "training.learning_rate"),
    ({"data": {"kind": "synthetic"}, "layer": {"sigma_init": 1e200}}, "layer.sigma_init"),
    ({"data": {"kind": "synthetic"}, "layer": {"type": "gaussian", "b_init": -1}}, "layer.b_init"),
    ({"data": {"kind": "inline", "x": [1, "2"], "y": [1, 2]}}, "data.x[1]: Input should be a valid number"),
    ({"data": {"kind": "inline", "x": [[1, False]], "y": [[1, 2]]}}, "data.x[0][1]"),
    ({"data": {"kind": "inline", "x": [1, 2], "y": [1, 1e13]}}, "data.y[1]"),
    ({"data": {"kind": "synthetic"}, "layer": {"type": "relu"}}, "layer: needs type 'bump' or 'gaussian'"),
    ({"data": {"kind": "telepathy"}}, "data: needs kind 'synthetic', 'inline' or 'dataset'"),
    ({"data": {}}, "data: needs kind 'synthetic', 'inline' or 'dataset'"),
    ({"data": {"kind": "synthetic"}, "layer": None}, "layer: needs type 'bump' or 'gaussian'"),
]


@pytest.mark.parametrize("body,needle", BAD_NUMBERS)
def test_numbers_must_stay_numbers_within_float32_safe_ranges(
    api: TestClient, db: str, body: dict, needle: str
) -> None:
    before = count(db, Job)
    assert needle in error(api.post("/v1/jobs", json=body), 422)
    assert count(db, Job) == before


@pytest.mark.parametrize(
    "raw",
    [
        '{"data": {"kind": "synthetic", "params": {"sigma": 1e400}}}',
        '{"data": {"kind": "synthetic", "n": 1' + "0" * 5000 + "}}",
        "[" * 100_000 + "]" * 100_000,
        '{"data": "\\ud800"}',
        "\xff\xfe",
    ],
)
def test_unparseable_json_is_a_4xx(api: TestClient, raw: str) -> None:
    r = api.post("/v1/jobs", content=raw.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and set(r.json()["error"]) == {"type", "message", "details"}, r.text[:300]


def test_an_empty_layer_is_a_bump(api: TestClient) -> None:
    r = api.post("/v1/jobs", json={"data": {"kind": "synthetic", "n": 10}, "layer": {}})
    assert r.status_code == 201 and r.json()["spec"]["layer"] == {
        "type": "bump",
        "sigma_init": None,
        "per_feature": False,
    }


def test_sweep_errors_name_the_request_field_not_union_branches(api: TestClient) -> None:
    r = api.post("/v1/sweeps", json={"base": {"data": {"kind": "synthetic"}}, "points": [{"data.n": "x"}]})
    assert error(r, 422) == "points[0]: data.n: Input should be a valid integer"
    r = api.post(
        "/v1/sweeps",
        json={"base": {"data": {"kind": "inline", "x": [1, "a"], "y": [1, 2]}}, "grid": {"training.epochs": [1, 2]}},
    )
    assert error(r, 422).startswith("base.data.x[1]: Input should be a valid number")


def succeeded(url: str, job_id: str, params: dict[str, Any], version: int = 1) -> None:
    """Mark a job succeeded as a worker would, without training it."""
    with session_scope(url) as s:
        s.execute(update(Job).where(Job.id == job_id).values(status="succeeded", params=params, model_version=version))


def test_predict_takes_json_numbers_only(api: TestClient, db: str) -> None:
    job = api.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
    succeeded(db, job, {"sigma": 0.5})
    for instances, needle in (
        (["0.1"], "instances[0]"),
        ([True], "instances[0]"),
        ([[0.1, "x"]], "instances[0]"),
        ([1e300], "instances[0]: values must fit in float32"),
        ([], "non-empty"),
    ):
        assert needle in error(api.post(f"/v1/models/{job}:predict", json={"instances": instances}), 422)
    r = api.post(f"/v1/models/{job}:predict", json={"instances": [0, 0.5, 3.4e38]})
    assert r.status_code == 200 and r.json()["predictions"][1:] == [0.0, 0.0]


def test_a_model_name_cannot_take_over_another_jobs_model(api: TestClient, db: str) -> None:
    victim = api.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
    succeeded(db, victim, {"sigma": 0.25})
    r = api.post("/v1/jobs", json={**seed_job(n=100), "model_name": victim})
    assert "has the format of a job id" in error(r, 422)
    # a row stored before the rule: the job-id name still serves only that job's own model
    thief = api.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
    with session_scope(db) as s:
        s.execute(update(Job).where(Job.id == thief).values(model_name=victim))
    succeeded(db, thief, {"sigma": 0.75}, version=2)
    model = api.get(f"/v1/models/{victim}").json()
    assert [v["job_id"] for v in model["versions"]] == [victim]
    assert api.post(f"/v1/models/{victim}:predict", json={"instances": [0.0]}).json()["predictions"] == [
        pytest.approx(math.exp(-1), rel=1e-6)
    ]


# -- errors nobody expected -------------------------------------------------------------------------


def test_an_unexpected_error_is_a_json_500_with_a_request_id(
    api: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from app.jobs import service

    def boom(*_: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "list_jobs", boom)
    with caplog.at_level(logging.ERROR, logger="bumpfit.api"):
        r = api.get("/v1/jobs")
    request_id = r.headers["x-request-id"]
    assert r.status_code == 500 and r.json()["error"]["type"] == "internal_error"
    assert r.json()["error"]["details"] == {"request_id": request_id} and request_id in r.json()["error"]["message"]
    assert "secret internals" not in r.text and "Traceback" not in r.text
    record = next(rec for rec in caplog.records if getattr(rec, "request_id", None) == request_id)
    assert record.exc_info and "secret internals" in str(record.exc_info[1])


# -- every route, every state -------------------------------------------------------------------------


def make_states(url: str, client: TestClient) -> dict[str, str]:
    """One job in each state a job can be in, as the workers and the reaper leave them."""
    ids = {
        s: client.post("/v1/jobs", json=seed_job(n=200, sigma=0.1 * (i + 1))).json()["id"]
        for i, s in enumerate(("cancelled", "diverged", "reclaimed", "running", "queued"))
    }
    inline = client.post("/v1/jobs", json={"data": {"kind": "inline", "x": [0.1, 0.2, 0.3], "y": [1, 2, 3]}})
    ids["inline"] = inline.json()["id"]
    client.post(f"/v1/jobs/{ids['cancelled']}:cancel")
    with session_scope(url) as s:
        token, _ = queue.claim(s, "w:1", ("auto", "cpu"), 3, 60)  # diverged, reclaimed, running
    with session_scope(url) as s:
        nan, inf = float("nan"), float("inf")
        for epoch, loss, sigma in ((1, 0.5, 0.2), (2, inf, nan), (3, nan, inf)):
            assert ids["diverged"] in queue.add_epoch(
                s,
                token,
                {
                    ids["diverged"]: {
                        "epoch": epoch,
                        "loss": loss,
                        "val_loss": nan,
                        "seconds": 0.1,
                        "params": {"sigma": sigma},
                    }
                },
            )
        assert ids["running"] in queue.add_epoch(
            s,
            token,
            {ids["running"]: {"epoch": 1, "loss": 0.1, "val_loss": None, "seconds": 0.1, "params": {"sigma": 0.3}}},
        )
        queue.finish(
            s,
            ids["diverged"],
            token,
            FAILED,
            params={"sigma": nan},
            error={"type": "diverged", "message": "training diverged in epoch 2"},
        )
        s.execute(update(Job).where(Job.id == ids["reclaimed"]).values(lease_expires_at=utcnow() - timedelta(1)))
    with session_scope(url) as s:
        queue.reap(s)
    return ids


def test_every_route_answers_for_a_job_in_every_state(db_url: str) -> None:
    with TestClient(create_app(Settings(database_url=db_url))) as client:
        ids = make_states(db_url, client)
        statuses = {k: client.get(f"/v1/jobs/{v}").json()["status"] for k, v in ids.items()}
        assert statuses == {
            "cancelled": CANCELLED,
            "diverged": FAILED,
            "reclaimed": "queued",
            "running": "running",
            "queued": "queued",
            "inline": "queued",
        }
        for state, job_id in ids.items():
            for path in ("", "/history", "/plot.svg", "/sample?size=10"):
                r = client.get(f"/v1/jobs/{job_id}{path}")
                assert r.status_code == 200, (state, path, r.text[:300])
            if statuses[state] in ("cancelled", "failed"):
                events = client.get(f"/v1/jobs/{job_id}/events").text
                assert events.startswith("event: progress") and "event: end" in events
        history = client.get(f"/v1/jobs/{ids['diverged']}/history").json()["history"]
        assert [(h["loss"], h["params"]["sigma"]) for h in history] == [(0.5, 0.2), (None, None), (None, None)]
        assert client.get(f"/v1/jobs/{ids['diverged']}").json()["params"] == {"sigma": None}
        svg = client.get(f"/v1/jobs/{ids['diverged']}/plot.svg").text
        assert "failed, epoch 3/3" in svg and "<polyline" in svg


def test_events_of_an_unfinished_job_start_at_once(db: str) -> None:
    service = Service(db, workers=0)
    try:
        job = service.http.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
        with service.http.stream("GET", f"/v1/jobs/{job}/events", timeout=5) as r:
            first = next(r.iter_lines())
        assert r.status_code == 200 and first == "event: progress"
    finally:
        service.stop()


# -- data stored once ---------------------------------------------------------------------------------


def test_inline_data_is_stored_once_and_jobs_reference_it(api: TestClient, db: str) -> None:
    x = np.random.default_rng(0).uniform(-1, 1, 2000)
    y = np.exp(-x * x)
    base = {"data": {"kind": "inline", "x": x.tolist(), "y": y.tolist()}, "training": {"epochs": 1}}
    before = count(db, Dataset)
    r = api.post("/v1/sweeps", json={"base": base, "grid": {"training.seed": list(range(1000))}})
    assert r.status_code == 201, r.text[:300]
    assert count(db, Dataset) == before + 1
    listing = api.get("/v1/jobs", params={"sweep_id": r.json()["id"], "limit": 1000})
    assert len(listing.json()["jobs"]) == 1000 and len(listing.content) < 1_000_000
    data = {j["spec"]["data"]["id"] for j in listing.json()["jobs"]}
    assert len(data) == 1 and listing.json()["jobs"][0]["spec"]["data"] == {
        "kind": "dataset",
        "id": data.pop(),
        "n": 2000,
        "features": 1,
    }
    assert api.get(f"/v1/sweeps/{r.json()['id']}").json()["request"]["base"]["data"]["kind"] == "dataset"
    sample = api.get(f"/v1/jobs/{r.json()['jobs'][0]}/sample", params={"size": 5000}).json()
    np.testing.assert_array_equal(sample["x"], x.astype(np.float32))
    np.testing.assert_array_equal(sample["y"], y.astype(np.float32))
    bad = {"base": {**base, "data": {**base["data"], "y": [1.0]}}, "grid": {"training.seed": [1, 2]}}
    assert "x has 2000 rows but y has 1" in error(api.post("/v1/sweeps", json=bad), 422)
    assert count(db, Dataset) == before + 1


def test_workers_load_a_referenced_dataset_as_the_inline_arrays(api: TestClient, db: str) -> None:
    pytest.importorskip("keras")
    from workers.runner import load_member

    x, y = [[0.1, 0.2], [0.3, 0.4]], [[1.0, 2.0], [3.0, 4.5]]
    job_ids = api.post(
        "/v1/sweeps", json={"base": {"data": {"kind": "inline", "x": x, "y": y}}, "grid": {"training.seed": [1, 2]}}
    ).json()["jobs"]
    single = api.post("/v1/jobs", json={"data": {"kind": "inline", "x": x, "y": y}}).json()["id"]
    cache: dict[str, Any] = {}
    with session_scope(db, readonly=True) as s:
        for job_id in [*job_ids, single]:
            member = load_member(s, s.scalar(select(Job).where(Job.id == job_id)), Settings(), cache)
            np.testing.assert_array_equal(member.x, np.array(x, dtype=np.float32))
            np.testing.assert_array_equal(member.y, np.array(y, dtype=np.float32))
    assert len(cache) == 2  # the sweep's one dataset, read once, and the single job's


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
        took = f"{len(content) / 2**20:.0f} MiB upload took {result['seconds']:.1f} s"
        assert len(stalls) > 5 and max(stalls) < 0.5, f"{took}; longest /healthz {max(stalls):.2f} s"
    finally:
        service.stop()
