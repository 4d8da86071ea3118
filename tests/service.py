"""What the tests and the benches share: a real `bumpfit serve` process (Service), free ports, the
readiness probe, polling and the seed's job. Needs the base install alone (no pytest), so benches run
with the `worker` extra."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(http: httpx.Client, path: str = "/healthz") -> bool:
    """True once the API behind `http` answers `path` with 200 (False while it is not listening yet)."""
    try:
        return http.get(path).status_code == 200
    except httpx.TransportError:
        return False


class Service:
    """A real `bumpfit serve` process and an HTTP client for it."""

    def __init__(self, url: str, workers: int, env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.database_url = url
        self.log = log
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--port",
                str(self.port),
                "--database-url",
                url,
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=self.base, timeout=30)
        wait_for(lambda: self._up(), 60, "the API to answer /healthz")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"bumpfit serve exited with {self.proc.returncode}")
        return answers(self.http)

    def wait_job(
        self, job_id: str, timeout: float = 120, until: tuple[str, ...] = ("succeeded", "failed", "cancelled")
    ) -> Any:
        """Poll the job until its status is one of `until`; return the job resource."""
        job: dict[str, Any] = {}

        def done() -> bool:
            r = self.http.get(f"/v1/jobs/{job_id}")
            assert r.status_code == 200, f"GET /v1/jobs/{job_id}: {r.status_code} {r.text}\n{self.log_tail()}"
            job.update(r.json())
            return job["status"] in until

        wait_for(done, timeout, f"job {job_id} to reach {until}")
        return job

    def log_tail(self, lines: int = 40) -> str:
        """The end of the service's log, for failure messages."""
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_for(cond: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    """Poll `cond` until true, or fail the test naming what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def seed_job(sigma: float = 0.5, n: int = 20000, epochs: int = 3, **training: Any) -> dict[str, Any]:
    """The seed's job at a smaller n: synthetic bump data on [-1, 1], batch 32, Adam 1e-3."""
    return {
        "data": {"kind": "synthetic", "function": "bump", "params": {"sigma": sigma}, "n": n, "seed": 1},
        "training": {"epochs": epochs, "seed": 2, **training},
    }
