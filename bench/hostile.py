"""Hostile and heavy requests against a real `bumpfit serve --workers 0` (SQLite): for each, the
answer, the time to answer, the service's peak memory growth (VmHWM, reset before each case
through /proc/PID/clear_refs) and the longest /healthz answer while it was processed.

    python bench/hostile.py
"""

from __future__ import annotations

import io
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.integration.hostile import bomb, many_members, npy, npz
from tests.service import Service

HEALTH_EVERY = 0.02  # seconds between /healthz probes


def proc_kb(pid: int, field: str) -> int:
    """A memory figure of the process from /proc, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class Prober(threading.Thread):
    """Probes /healthz continuously, remembering when each probe started and how long it took."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=base, timeout=30)
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            t = time.perf_counter()
            try:
                self.http.get("/healthz").raise_for_status()
            except httpx.HTTPError:
                if self.stop.is_set():
                    return
                raise
            self.samples.append((t, time.perf_counter() - t))
            time.sleep(HEALTH_EVERY)

    def longest(self, start: float, end: float) -> float:
        """The longest probe that overlapped [start, end]."""
        return max((d for t, d in list(self.samples) if t + d >= start and t <= end), default=0.0)


def csv_rows(rows: int, bad_last: bool = False) -> bytes:
    a = np.random.default_rng(0).uniform(-1, 1, (rows, 2))
    buf = io.BytesIO()
    np.savetxt(buf, a, delimiter=",", fmt="%.9f", header="x,y", comments="")
    return buf.getvalue() + (b"0.5,oops\n" if bad_last else b"")


def chunked_upload(total: int) -> Iterator[bytes]:
    """A multipart upload of `total` bytes of CSV, sent without Content-Length."""
    yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\nx,y\n'
    block = b"0.5,0.5\n" * (1 << 17)
    for _ in range(total >> 20):
        yield block
    yield b"\r\n--b--\r\n"


def cases(base: str, sweep_id: list[str]) -> list[tuple[str, Callable[[httpx.Client], httpx.Response]]]:
    """(name, request) for each case; files are built before the clock starts."""

    def upload(name: str, content: bytes) -> Callable[[httpx.Client], httpx.Response]:
        return lambda http: http.post("/v1/datasets", files={"file": (name, content)})

    def post_raw(path: str, raw: bytes) -> Callable[[httpx.Client], httpx.Response]:
        return lambda http: http.post(path, content=raw, headers={"content-type": "application/json"})

    forged = npz(
        {
            "x.npy": npy(f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({10**12},), }}"),
            "y.npy": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", bytes(4)),
        }
    )
    declared_gib = npz(
        {
            "x.npy": npy(f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({2**27},), }}"),
            "y.npy": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", bytes(4)),
        }
    )
    valid_npz = io.BytesIO()
    a = np.random.default_rng(0).uniform(-1, 1, (2_000_000, 2))
    np.savez(valid_npz, x=a[:, :1], y=a[:, 1:])  # 32 MB of float64, uncompressed
    x = np.random.default_rng(1).uniform(-1, 1, 200_000).round(6).tolist()
    inline = {"data": {"kind": "inline", "x": x, "y": x}, "training": {"epochs": 1}}
    job = {"data": {"kind": "synthetic", "n": 1000}, "training": {"epochs": 1}}
    out: list[tuple[str, Callable[[httpx.Client], httpx.Response]]] = [
        ("npz: header claims 10^12 rows", upload("f.npz", forged)),
        ("npz: header claims 1 GiB of float64", upload("g.npz", declared_gib)),
        ("npz: 10 values that inflate to 1 GiB", upload("b.npz", bomb(10, 1 << 30))),
        ("npz: zip directory of 500,000 members", upload("m.npz", many_members(500_000))),
        ("csv: one 60 MB line", upload("l.csv", b"1," * 30_000_000)),
        ("csv: unclosed quote, then 1M lines", upload("q.csv", b'x,y\n"1,2\n' + b"3,4\n" * 1_000_000)),
        ("csv: 2,000,001 rows (limit 2,000,000)", upload("r.csv", csv_rows(2_000_001))),
        ("csv: bad cell in the last of 1.5M rows", upload("c.csv", csv_rows(1_500_000, bad_last=True))),
        ("csv: 1.5M valid rows (healthz meanwhile)", upload("v.csv", csv_rows(1_500_000))),
        (
            "upload: 100 MB chunked, no Content-Length",
            lambda http: http.post(
                "/v1/datasets",
                content=chunked_upload(100 << 20),
                headers={"content-type": "multipart/form-data; boundary=b"},
            ),
        ),
        (
            "upload: declares Content-Length 1 TB",
            lambda http: raw(
                http,
                b"POST /v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: 1000000000000\r\n\r\n--b",
            ),
        ),
        ("json: 100,000 nested arrays", post_raw("/v1/jobs", b"[" * 100_000 + b"]" * 100_000)),
        (
            "json: a 5,000-digit integer",
            post_raw("/v1/jobs", b'{"data": {"kind": "synthetic", "n": 1' + b"0" * 5000 + b"}}"),
        ),
        ("json: sigma 1e400", post_raw("/v1/jobs", b'{"data": {"kind": "synthetic", "params": {"sigma": 1e400}}}')),
        (
            "json: predict with strings",
            lambda http: http.post("/v1/models/nope:predict", json={"instances": ["1", True]}),
        ),
        ("valid: 1.5M-row CSV (29 MB)", upload("v.csv", csv_rows(1_500_000))),
        ("valid: 2M-row npz (32 MB)", upload("v.npz", valid_npz.getvalue())),
        ("valid: job with 200,000 inline points", lambda http: http.post("/v1/jobs", json=inline)),
        ("valid: sweep of 1,000 jobs, 200,000 inline points", lambda http: _sweep(http, inline, sweep_id)),
        (
            "valid: list those 1,000 jobs",
            lambda http: http.get("/v1/jobs", params={"sweep_id": sweep_id[0], "limit": 1000}),
        ),
        (
            "valid: sweep of 10,000 synthetic jobs",
            lambda http: http.post("/v1/sweeps", json={"base": job, "grid": {"training.seed": list(range(10_000))}}),
        ),
    ]
    return out


def raw(http: httpx.Client, request: bytes) -> httpx.Response:
    """Send bytes no HTTP client would (a Content-Length that the body never reaches)."""
    with socket.create_connection((http.base_url.host, http.base_url.port or 80), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return httpx.Response(int(head.split()[1]), content=body)


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def _sweep(http: httpx.Client, base: dict[str, Any], sweep_id: list[str]) -> httpx.Response:
    r = http.post("/v1/sweeps", json={"base": base, "grid": {"training.seed": list(range(1000))}})
    sweep_id.append(r.json().get("id", ""))
    return r


def answer(r: httpx.Response) -> str:
    """The status and the gist of the body."""
    try:
        body = r.json()
    except ValueError:
        return f"{r.status_code} {r.text[:60]!r}"
    if isinstance(body.get("error"), dict):
        return f"{r.status_code} {body['error']['message'][:90]}"
    if "jobs" in body and isinstance(body["jobs"], list):
        return f"{r.status_code} {len(body['jobs'])} jobs, {len(r.content) / 1e6:.2f} MB"
    return f"{r.status_code} " + ", ".join(f"{k}={body[k]}" for k in ("id", "n") if k in body)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        svc = Service(f"sqlite:///{tmp}/hostile.db", workers=0, env={"BUMPFIT_LOG_LEVEL": "warning"})
        serve, base = svc.proc, svc.base
        http = httpx.Client(base_url=base, timeout=120)  # the heavy cases take longer than svc.http waits
        prober = Prober(base)
        try:
            prober.start()
            sweep_id: list[str] = []
            print(f"{'case':<52} {'answer':<80} {'s':>6} {'+MB':>6} {'healthz':>8}")
            for name, request in cases(base, sweep_id):
                rss = proc_kb(serve.pid, "VmRSS")
                Path(f"/proc/{serve.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
                start = time.perf_counter()
                try:
                    r = request(http)
                    got = answer(r)
                except httpx.HTTPError as exc:  # the server may close a connection it refused early
                    got = f"connection: {type(exc).__name__}"
                end = time.perf_counter()
                time.sleep(0.1)  # a probe that started during the case finishes
                grown = (proc_kb(serve.pid, "VmHWM") - rss) / 1024
                print(
                    f"{name:<52} {got:<80} {end - start:>6.2f} {grown:>6.0f} "
                    f"{prober.longest(start, end) * 1000:>6.0f}ms",
                    flush=True,
                )
        finally:
            prober.stop.set()
            http.close()
            svc.stop()


if __name__ == "__main__":
    main()
