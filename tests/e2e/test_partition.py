"""A host cut off from the others (`pytest -m deploy`): in the compose stack with three workers, the
worker training a job is disconnected from the network mid-job; another worker trains the job to
success; once reconnected, the cut-off worker's late writes are refused by the lease fence and it
goes back to work. One success, one model version, each epoch's history row once."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, seed_job, wait_for
from tests.e2e.test_compose import Stack, stack  # noqa: F401 - the fixture: a copy of the tree, Docker ready

# pytest-timeout's limit holds the fixture's steps (1,500 s) and the test's: build 1,200 s, keys
# 300 s, up 600 s, the job and its retry 900 s, the reconnected worker's next job 300 s.
pytestmark = [pytest.mark.deploy, pytest.mark.timeout(4800)]
LEASE = 20  # seconds: the cut-off worker loses its lease soon
EPOCHS = 30


def test_a_worker_cut_off_mid_job_loses_it_to_another_and_its_late_writes_are_refused(
    stack: Stack,  # noqa: F811
) -> None:
    shutil.copy(stack.root / ".env.example", stack.root / ".env")
    port = free_port()
    with open(stack.root / ".env", "a") as env:
        env.write(f"BUMPFIT_PORT={port}\nBUMPFIT_LEASE_SECONDS={LEASE}\nBUMPFIT_CPU_WORKERS=3\n")
    stack("build", timeout=1200)
    key = stack.new_key()
    stack("up", "-d", timeout=600)  # not --wait: three workers compiling at once can miss a health check
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Authorization": f"Bearer {key}"})

    def workers_up() -> bool:
        try:
            listed = http.get("/v1/workers").json()["workers"]
        except (httpx.TransportError, ValueError):
            return False
        return sum(w["status"] != "stopped" for w in listed) >= 3

    wait_for(workers_up, 600, f"three workers\n{stack.logs()}", every=2)

    def job(job_id: str) -> dict[str, Any]:
        return dict(http.get(f"/v1/jobs/{job_id}").json())

    long = http.post("/v1/jobs", json={**seed_job(n=200_000, epochs=EPOCHS), "model_name": "partitioned"}).json()["id"]
    wait_for(lambda: job(long)["progress"]["epoch"] >= 2, 300, "the job's second epoch", every=0.5)
    first = job(long)["worker"]
    host = first.rsplit(":", 1)[0]  # a container's hostname is its id's first 12 characters
    (container,) = [c for c in stack("ps", "-q", "worker").split() if c.startswith(host)]
    network = f"{stack.env['COMPOSE_PROJECT_NAME']}_default"
    subprocess.run(["docker", "network", "disconnect", network, container], check=True, timeout=60)
    try:
        wait_for(lambda: job(long)["worker"] not in (None, first), 300, "another worker to take the job", every=0.5)
    finally:
        subprocess.run(["docker", "network", "connect", network, container], check=True, timeout=60)
    done: dict[str, Any] = {}
    wait_for(lambda: done.update(job(long)) or done["status"] != "running", 600, f"the job to end\n{stack.logs()}")
    assert done["status"] == "succeeded" and done["worker"] != first and done["attempts"] == 2, done
    assert done["model"] == {"name": "partitioned", "version": 1}

    # The reconnected worker goes back to work: small jobs until one of them is its own.
    mine: list[str] = []

    def took_one() -> bool:
        j = http.post("/v1/jobs", json=seed_job(n=2000, epochs=1)).json()["id"]
        wait_for(lambda: job(j)["status"] == "succeeded", 120, f"job {j}", every=0.5)
        if job(j)["worker"] == first:
            mine.append(j)
        return bool(mine)

    wait_for(took_one, 300, "the reconnected worker to train a job", every=0)
    # Its late writes changed nothing: one success, one version, each epoch's row once.
    history = http.get(f"/v1/jobs/{long}/history").json()["history"]
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
    versions = http.get("/v1/models/partitioned").json()["versions"]
    assert [v["version"] for v in versions] == [1]
    final = job(long)
    assert (final["status"], final["params"], final["finished_at"]) == (
        "succeeded",
        done["params"],
        done["finished_at"],
    )
    http.close()
