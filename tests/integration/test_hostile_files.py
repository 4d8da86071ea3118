"""Hostile and careless files: forged .npy headers, compression bombs, odd encodings and line
endings. Each gets a 4xx that names the problem and stores nothing."""

from __future__ import annotations

import codecs
import io
import tracemalloc
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.datasets import uploads
from app.datasets.models import Dataset
from app.main import create_app
from app.settings import Settings
from tests.integration.hostile import (
    LIMITS,
    bomb,
    count,
    error,
    good_y,
    many_members,
    npy,
    npz,
)

# -- hand-made files ----------------------------------------------------------------------------


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
        "4-D",  # x may be sequences (n, timesteps, features), not more
        npz(
            {
                "x.npy": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2, 2), }", bytes(64)),
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
    ("one column without a header", b"1\n2\n", 422, "CSV needs columns x..., y..."),
    ("a header naming a column twice", b"a,a\n1,2\n", 422, "names a column twice"),
    ("too many features", b",".join([b"1"] * 8194) + b"\n", 413, "features, more than the limit 4096"),
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
