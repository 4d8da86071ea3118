"""A normal install, as a new user makes it: the wheel with the worker extra in a fresh virtual
environment, then `bumpfit serve` from an empty directory runs a job (`pytest -m deploy`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, answers, free_port, seed_job, wait_for

# pytest-timeout's limit holds the sum of the steps' own limits (wheel 300 s, install 900 s, serve,
# job and stop 360 s).
pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]


@pytest.mark.timeout(1800)  # pip installs TensorFlow into the fresh environment
def test_the_wheel_installs_and_serves_a_job_from_an_empty_directory(tmp_path: Path) -> None:
    # `python -m build`: the sdist, then the wheel built from the sdist (so both carry everything).
    # .ci/run builds them once and names the folder in BUMPFIT_DIST.
    dist = Path(os.environ.get("BUMPFIT_DIST") or tmp_path / "dist")
    if "BUMPFIT_DIST" not in os.environ:
        subprocess.run([sys.executable, "-m", "build", "-q", "--outdir", dist, ROOT], check=True, timeout=600)
    (wheel,) = dist.glob("bumpfit-*.whl")
    (sdist,) = dist.glob("bumpfit-*.tar.gz")
    with tarfile.open(sdist) as tar:  # the migrations travel in the sdist as files, not as a link
        names = tar.getnames()
    assert any("/app/migrations/versions/0001" in n for n in names) and any(n.endswith("/README.md") for n in names)
    venv.create(tmp_path / "venv", with_pip=True)  # no system site-packages: only what the wheel asks for
    bin_ = tmp_path / "venv" / "bin"
    subprocess.run([bin_ / "pip", "install", "-q", f"{wheel}[worker]"], check=True, timeout=900)
    python = bin_ / "python"

    # Nothing the wheel installs shadows a library, and the migrations are inside the package.
    probe = "import alembic, app.store.migrate as m; print(alembic.__file__); print(m.SCRIPTS)"
    found = subprocess.run(
        [python, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    site = str(tmp_path / "venv" / "lib")
    assert found[0].startswith(site) and found[0].endswith("alembic/__init__.py")
    assert found[1].startswith(site) and Path(found[1], "versions").is_dir()

    empty = tmp_path / "empty"
    empty.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [bin_ / "bumpfit", "serve", "--port", str(port)],
        cwd=empty,
        stdout=open(tmp_path / "serve.log", "wb"),
        stderr=subprocess.STDOUT,
    )  # noqa: SIM115
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        return answers(http, "/readyz")

    try:
        wait_for(ready, 120, "bumpfit serve to be ready")
        job_id = http.post("/v1/jobs", json=seed_job(n=5000, epochs=3)).json()["id"]
        job: dict = {}
        wait_for(
            lambda: job.update(http.get(f"/v1/jobs/{job_id}").json()) or job["status"] == "succeeded",
            180,
            f"job {job_id} to succeed ({job.get('status')})",
        )
        assert abs(job["params"]["sigma"] - 0.5) < 1e-2
        predictions = http.post(f"/v1/models/{job_id}:predict", json={"instances": [0.0]}).json()["predictions"]
        assert predictions == [pytest.approx(0.3679, abs=1e-3)]  # exp(-sigma / sigma) at x = 0
    finally:
        http.close()
        proc.terminate()
        assert proc.wait(60) == 0
    assert {p.name for p in empty.iterdir()} <= {"bumpfit.db", "bumpfit.db-wal", "bumpfit.db-shm"}
