"""Upgrades keep everything: a database written by the first release (7288e4e, its tree installed in
a virtual environment of its own) opens with this release, and every job, history row, prediction,
artifact, sweep, dataset and idempotency key answers as before, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import uuid
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text

from tests.conftest import ROOT, Service, answers, free_port, seed_job, wait_for

FIRST_RELEASE = "7288e4e"  # the first commit whose README quick start works
# pytest-timeout's limit holds the steps' own: archive 120 s, install 1,200 s, then per database
# the first release's serve, jobs and stop (~300 s) and this release's (~300 s).
pytestmark = [pytest.mark.deploy, pytest.mark.timeout(2400)]
KEY = "upgrade-retry"


@pytest.fixture(scope="module")
def first_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first release's `bumpfit` command, installed from its tree in a virtual environment of its own."""
    root = tmp_path_factory.mktemp("first-release")
    tree = subprocess.run(["git", "archive", FIRST_RELEASE], cwd=ROOT, capture_output=True, check=True, timeout=120)
    with tarfile.open(fileobj=io.BytesIO(tree.stdout)) as tar:
        tar.extractall(root / "src", filter="data")
    venv.create(root / "venv", with_pip=True)
    # As its README's quick start did: an editable install (its wheel did not carry the migrations yet).
    pip = [str(root / "venv" / "bin" / "pip"), "install", "-q", "-e", f"{root / 'src'}[worker]"]
    subprocess.run(pip, check=True, timeout=1200)
    return root / "venv" / "bin" / "bumpfit"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database that no release has touched yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'upgrade.db'}"
        return
    pg_admin = request.getfixturevalue("pg_admin_url")
    name = f"bumpfit_upgrade_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(pg_admin).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def first_job() -> dict[str, Any]:
    """The job submitted with an Idempotency-Key, retried after the upgrade."""
    return {**seed_job(n=2000, epochs=3), "model_name": "upgraded"}


def write_with_the_first_release(bumpfit: Path, url: str, workdir: Path) -> dict[str, Any]:
    """Serve `url` with the first release, submit jobs of each kind and a sweep, wait for them to
    end; returns their ids."""
    port = free_port()
    log = open(workdir / "first-release.log", "wb")  # noqa: SIM115
    cmd = [str(bumpfit), "serve", "--port", str(port), "--database-url", url, "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        wait_for(lambda: proc.poll() is None and answers(http), 120, "the first release to answer")
        x = [i / 50 - 1 for i in range(101)]
        csv = "x,y\n" + "".join(f"{v},{2.718281828 ** (-v * v * 4)}\n" for v in x)
        dataset = http.post("/v1/datasets", files={"file": ("bump.csv", csv.encode())}).json()["id"]
        keyed = http.post("/v1/jobs", json=first_job(), headers={"Idempotency-Key": KEY})
        assert keyed.status_code == 201, keyed.text
        jobs = [
            keyed.json()["id"],
            http.post("/v1/jobs", json={"data": {"kind": "inline", "x": x, "y": x}, "training": {"epochs": 2}}).json()[
                "id"
            ],
            http.post("/v1/jobs", json={"data": {"kind": "dataset", "id": dataset}, "training": {"epochs": 2}}).json()[
                "id"
            ],
        ]
        sweep = {"base": seed_job(n=2000, epochs=2), "points": [{"data.params.sigma": 0.3}, {"data.params.sigma": 0.6}]}
        sweep_id = http.post("/v1/sweeps", json=sweep).json()["id"]
        ended = ("succeeded", "failed", "cancelled")
        wait_for(lambda: http.get(f"/v1/sweeps/{sweep_id}").json()["done"], 240, "the first release's sweep")
        for job_id in jobs:
            wait_for(lambda j=job_id: http.get(f"/v1/jobs/{j}").json()["status"] in ended, 240, f"job {job_id}")
        jobs += [row["id"] for row in http.get(f"/v1/sweeps/{sweep_id}").json()["jobs"]]
        before = snapshot(http, jobs, sweep_id, dataset)
    finally:
        http.close()
        proc.terminate()
        proc.wait(60)
        log.close()
    return {"jobs": jobs, "sweep": sweep_id, "dataset": dataset, "before": before}


def snapshot(http: httpx.Client, jobs: list[str], sweep_id: str, dataset: str) -> dict[str, Any]:
    """What a client reads of them: each job's state, results, history, predictions and artifact;
    the sweep's rows; the dataset's description."""
    out: dict[str, Any] = {}
    for job_id in jobs:
        job = http.get(f"/v1/jobs/{job_id}").json()
        name, version = job["model"]["name"], job["model"]["version"]
        history = http.get(f"/v1/jobs/{job_id}/history").json()["history"]
        predict = http.post(f"/v1/models/{name}/versions/{version}:predict", json={"instances": [0.0, 0.3]})
        artifact = http.get(f"/v1/models/{name}/versions/{version}/artifact")
        out[job_id] = {
            "job": {k: job[k] for k in ("status", "params", "metrics", "model", "attempts", "error", "created_at")},
            "history": [(h["epoch"], h["loss"], h["params"]) for h in history],
            "predictions": predict.json()["predictions"],
            "artifact": (artifact.status_code, hashlib.sha256(artifact.content).hexdigest()),
        }
    sweep = http.get(f"/v1/sweeps/{sweep_id}").json()
    out["sweep"] = {
        "counts": sweep["counts"],
        "done": sweep["done"],
        "jobs": [(r["id"], r["status"]) for r in sweep["jobs"]],
    }
    ds = http.get(f"/v1/datasets/{dataset}").json()
    out["dataset"] = {k: ds[k] for k in ("id", "filename", "n", "features", "sha256")}
    return out


def kept(before: Any, after: Any, where: str = "") -> None:
    """`after` answers all that `before` did: the same values, and dicts may have gained keys (a
    field added since, such as a new metric)."""
    if isinstance(before, dict):
        assert isinstance(after, dict), where
        for k, v in before.items():
            assert k in after, f"{where}.{k} is gone"
            kept(v, after[k], f"{where}.{k}")
    elif isinstance(before, (list, tuple)):
        assert len(before) == len(after), where
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            kept(b, a, f"{where}[{i}]")
    else:
        assert before == after, f"{where}: {before!r} then {after!r}"


def test_a_database_of_the_first_release_answers_as_before_after_the_upgrade(
    first_release: Path, empty_url: str, tmp_path: Path
) -> None:
    written = write_with_the_first_release(first_release, empty_url, tmp_path)
    assert all(written["before"][j]["job"]["status"] == "succeeded" for j in written["jobs"]), written["before"]
    svc = Service(empty_url, workers=1, log=tmp_path / "serve.log")  # this release: migrates at start
    try:
        after = snapshot(svc.http, written["jobs"], written["sweep"], written["dataset"])
        kept(written["before"], after)
        retry = svc.http.post("/v1/jobs", json=first_job(), headers={"Idempotency-Key": KEY})
        assert (retry.status_code, retry.json()["id"]) == (200, written["jobs"][0])
        other = svc.http.post("/v1/jobs", json=seed_job(sigma=0.7), headers={"Idempotency-Key": KEY})
        assert other.status_code == 409
        new = svc.http.post("/v1/jobs", json=seed_job(n=2000, epochs=2)).json()["id"]
        assert svc.wait_job(new)["status"] == "succeeded"
    finally:
        svc.stop()
