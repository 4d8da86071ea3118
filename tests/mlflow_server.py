"""A real MLflow tracking server for the tests, in a virtual environment of its own (created once
under ~/.cache/bumpfit-tests, reused after), on SQLite with artifacts served through it; and
`read_back`, which reads what it holds with MlflowClient in that environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port, wait_for

MLFLOW = "mlflow==3.17.2"
VENV = Path(os.environ.get("BUMPFIT_TEST_MLFLOW_VENV", Path.home() / ".cache/bumpfit-tests/mlflow-venv"))


def python() -> Path:
    """The environment's interpreter, made (MLflow installed) if it is not there yet."""
    exe = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if not marker.exists() or marker.read_text() != MLFLOW:
        venv.create(VENV, with_pip=True, clear=not exe.exists())
        subprocess.run([str(exe), "-m", "pip", "install", "-q", MLFLOW], check=True, timeout=900)
        marker.write_text(MLFLOW)
    return exe


class MlflowServer:
    """`mlflow server` on a SQLite file and an artifacts folder under `root`; stop() and start()
    again keep both (an outage, not a new server)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "mlflow.log"

    def start(self) -> None:
        exe = python()
        cmd = [
            str(exe), "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        out = open(self.log, "ab")  # noqa: SIM115 - the process owns it
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.root)
        wait_for(self.up, 120, "mlflow server to answer", every=0.5)

    def up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


READ_BACK = r"""
import base64, json, sys
from mlflow import MlflowClient
uri, model = sys.argv[1], sys.argv[2]
c = MlflowClient(uri)
exp = c.get_experiment_by_name("bumpfit")
out = {"runs": {}, "parents": {}}
for run in c.search_runs([exp.experiment_id], max_results=1000):
    tags = run.data.tags
    if "bumpfit.sweep_run" in tags:
        out["parents"][run.info.run_id] = {"sweep": tags["bumpfit.sweep_run"], "status": run.info.status}
        continue
    job = tags["bumpfit.job_id"]
    history = {k: [[m.step, m.value] for m in sorted(c.get_metric_history(run.info.run_id, k), key=lambda m: m.step)]
               for k in run.data.metrics}
    path = c.download_artifacts(run.info.run_id, "model/model.keras")
    out["runs"].setdefault(job, []).append({
        "status": run.info.status, "params": run.data.params, "tags": tags, "history": history,
        "keras": base64.b64encode(open(path, "rb").read()).decode(),
    })
registered = c.get_registered_model(model)
versions = {v.version: v.tags for v in c.search_model_versions(f"name='{model}'")}
out["aliases"] = {a: versions[str(v)].get("bumpfit.version") for a, v in registered.aliases.items()}
out["versions"] = sorted(int(t["bumpfit.version"]) for t in versions.values())
print(json.dumps(out))
"""


def read_back(url: str, model: str) -> Any:
    """Every run, its params, tags, metric histories and `.keras` bytes, and the model's aliases
    (label -> bumpfit version), as MlflowClient reads them."""
    done = subprocess.run(
        [str(python()), "-c", READ_BACK, url, model], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":  # `python -m tests.mlflow_server`: make the environment ahead of time
    print(python(), file=sys.stderr)
