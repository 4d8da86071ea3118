"""The compose stack for real (`pytest -m deploy`; `.ci/run` runs it): the README's quick start in a
copy of the tree, jobs over the published port, a worker killed mid-job, `down` and `up` again."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, free_port, seed_job, wait_for

# pytest-timeout's limit holds the sum of the steps' own limits: the fixture's 1,500 s (ensure-docker,
# stand-in images, down) and the test's 3,540 s (build, keys, up, jobs, down, up again).
pytestmark = [pytest.mark.deploy, pytest.mark.timeout(5400)]
# ensure-docker, stand-in-images (no registry here): beside the checkout, or beside the folder of
# worktrees that holds it.
SHARED_DOCKER = next(
    (p / "shared" / "docker" for p in ROOT.parents if (p / "shared" / "docker").is_dir()),
    ROOT.parent / "shared" / "docker",
)


class Stack:
    """`docker compose` in a copy of the tree, under a project name of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "COMPOSE_PROJECT_NAME": f"bumpfit-test-{uuid.uuid4().hex[:6]}"}

    def __call__(self, *args: str, timeout: float = 600) -> str:
        r = subprocess.run(
            ["docker", "compose", *args], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert r.returncode == 0, f"docker compose {' '.join(args)}: {r.stderr[-3000:]}\n{self.logs()}"
        return r.stdout

    def logs(self) -> str:
        r = subprocess.run(
            ["docker", "compose", "logs", "--tail", "30"],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return r.stdout[-6000:]

    def new_key(self) -> str:
        """A new submit key, its hash appended to `.env` as the compose quick start does; the key itself."""
        keys = subprocess.run(
            "docker compose run --rm --no-deps -T api keys new --scope submit --dotenv >> .env",
            shell=True,
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert keys.returncode == 0, keys.stderr
        return keys.stderr.strip().rsplit(" ", 1)[-1]

    def container(self, service: str) -> str:
        return self("ps", "-q", service).strip()

    def inspect(self, service: str, fmt: str) -> str:
        return subprocess.run(
            ["docker", "inspect", "-f", fmt, self.container(service)], capture_output=True, text=True, check=True
        ).stdout.strip()


def timed(what: str, timings: dict[str, float], fn: Any, *args: Any, **kw: Any) -> Any:
    start = time.monotonic()
    try:
        return fn(*args, **kw)
    finally:
        timings[what] = round(time.monotonic() - start, 1)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The tree (tracked and untracked, not ignored files) copied as a user's clone, Docker ready."""
    if SHARED_DOCKER.is_dir():
        subprocess.run([SHARED_DOCKER / "ensure-docker"], check=True, timeout=600)
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        pytest.fail("docker compose is not available") if os.environ.get("CI") else pytest.skip("no docker compose")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in files:
        src, dst = ROOT / name, tmp_path / "bumpfit" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        elif src.is_file():
            shutil.copy2(src, dst)
    if SHARED_DOCKER.is_dir():  # real images where a registry answers, local stand-ins elsewhere
        subprocess.run([SHARED_DOCKER / "stand-in-images"], cwd=tmp_path / "bumpfit", check=True, timeout=600)
    s = Stack(tmp_path / "bumpfit")
    yield s
    s("down", "-v", "--remove-orphans", timeout=300)


def test_the_readme_quick_start_gives_a_stack_that_trains_survives_kills_and_restarts(stack: Stack) -> None:
    timings: dict[str, float] = {}
    # The README's steps, verbatim but for a free port and a short lease (so the killed job comes back soon).
    shutil.copy(stack.root / ".env.example", stack.root / ".env")
    port = free_port()
    with open(stack.root / ".env", "a") as env:
        env.write(f"BUMPFIT_PORT={port}\nBUMPFIT_LEASE_SECONDS=5\n")
    timed("build", timings, stack, "build", timeout=1200)
    key = stack.new_key()
    assert key.startswith("bf_") and key not in (stack.root / ".env").read_text()  # only the hash is stored
    timed("up --wait", timings, stack, "up", "-d", "--wait", timeout=600)

    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Authorization": f"Bearer {key}"})
    assert httpx.get(f"http://127.0.0.1:{port}/v1/jobs").status_code == 401  # keys on, even on loopback

    def wait_job(job_id: str, timeout: float) -> dict[str, Any]:
        job: dict[str, Any] = {}
        wait_for(
            lambda: (
                job.update(http.get(f"/v1/jobs/{job_id}").json())
                or job["status"] in ("succeeded", "failed", "cancelled")
            ),
            timeout,
            f"job {job_id} to end\n{stack.logs()}",
            every=0.5,
        )
        return job

    seed = http.post("/v1/jobs", json=seed_job(n=20000, epochs=3)).json()["id"]
    job = timed("seed job", timings, wait_job, seed, 120)
    assert job["status"] == "succeeded" and abs(job["params"]["sigma"] - 0.5) < 1e-2
    before = http.post(f"/v1/models/{seed}:predict", json={"instances": [0.0, 0.3]}).json()["predictions"]
    assert before[0] == pytest.approx(0.3679, abs=1e-3)

    # Kill the worker's process mid-job (as a crash would); its restart policy brings it back, the
    # job's lease lapses and the job runs again to success.
    long = http.post("/v1/jobs", json=seed_job(sigma=0.3, n=1_000_000, epochs=40)).json()["id"]
    wait_for(
        lambda: http.get(f"/v1/jobs/{long}").json()["progress"]["epoch"] >= 1,
        120,
        "the long job's first epoch",
        every=0.2,
    )
    pid = stack.inspect("worker", "{{.State.Pid}}")
    subprocess.run(["kill", "-9", pid], check=True)
    job = timed("killed job", timings, wait_job, long, 300)
    assert job["status"] == "succeeded" and job["attempts"] == 2 and abs(job["params"]["sigma"] - 0.3) < 1e-2
    assert int(stack.inspect("worker", "{{.RestartCount}}")) >= 1

    # down, then up: the volumes keep every job, its history and its model.
    http.close()
    timed("down", timings, stack, "down", timeout=300)
    timed("up again", timings, stack, "up", "-d", "--wait", timeout=600)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Authorization": f"Bearer {key}"})
    jobs = {j["id"]: j for j in http.get("/v1/jobs").json()["jobs"]}
    assert {seed, long} <= set(jobs) and all(jobs[j]["status"] == "succeeded" for j in (seed, long))
    assert len(http.get(f"/v1/jobs/{long}/history").json()["history"]) == 40
    assert http.post(f"/v1/models/{seed}:predict", json={"instances": [0.0, 0.3]}).json()["predictions"] == before
    http.close()
    print(f"compose timings (s): {timings}")
