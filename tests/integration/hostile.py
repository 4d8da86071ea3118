"""Shared pieces of the hostile-input tests (tests/integration/test_hostile_*.py) and
bench/hostile.py: error checks and hand-made files (the `db` and `api` fixtures are in conftest.py)."""

from __future__ import annotations

import io
import struct
import zipfile
from typing import Any

import numpy as np
from sqlalchemy import func, select

from app.datasets import uploads
from app.jobs.models import JobStatus
from app.store.db import session_scope

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
