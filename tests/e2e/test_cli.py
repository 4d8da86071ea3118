"""The `bumpfit` client commands against a real running service (HTTP, one worker, SQLite)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from app.cli import main
from app.store import queue
from app.store.db import session_scope
from tests.conftest import ROOT, Service


def run(service: Service, *args: str) -> Result:
    """`bumpfit ARGS --url SERVICE` in process."""
    return CliRunner().invoke(main, [*args, "--url", service.base], catch_exceptions=False)


SMALL = ["--n", "5000", "--epochs", "2", "--data-seed", "1", "--seed", "2"]


def test_submit_watch_get_predict_and_jobs(service: Service) -> None:
    submitted = run(service, "submit", "--sigma", "0.3", *SMALL)
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.strip()
    assert len(job_id) == 16

    watched = run(service, "watch", job_id)
    assert watched.exit_code == 0, watched.output
    assert f"{job_id} succeeded sigma=" in watched.stdout
    assert "2/2" in watched.stderr  # the progress bar

    job = json.loads(run(service, "get", job_id).stdout)
    assert job["status"] == "succeeded" and job["spec"]["data"]["params"]["sigma"] == 0.3
    assert job["spec"]["training"]["epochs"] == 2 and job["spec"]["data"]["n"] == 5000
    sigma = job["params"]["sigma"]

    predicted = run(service, "predict", job_id, "0", "-0.1", "0.9")
    assert predicted.exit_code == 0, predicted.output
    ys = [float(line) for line in predicted.stdout.split()]
    expected = [math.exp(-1), math.exp(-sigma / (sigma - 0.01)), 0.0]
    assert ys == pytest.approx(expected, rel=1e-5, abs=1e-7)

    table = run(service, "jobs")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if job_id in line)
    assert "succeeded" in row and "bump" in row and "2/2" in row and f"{sigma:.6g}" in row


def test_submit_from_a_file_with_flags_on_top_and_watch(service: Service, tmp_path: Path) -> None:
    body = {
        "data": {
            "kind": "synthetic",
            "function": "gaussian",
            "params": {"a": 1, "b": 4, "c": 0.1},
            "n": 5000,
            "seed": 3,
        },
        "layer": {"type": "gaussian"},
        "training": {"epochs": 5, "learning_rate": 0.01},
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(body))
    out = run(service, "submit", "--file", str(path), "--epochs", "2", "--model-name", "gauss-cli", "--json", "--watch")
    assert out.exit_code == 0, out.output
    job = json.loads(out.stdout[: out.stdout.rindex("}") + 1])
    assert job["spec"]["training"] == {**job["spec"]["training"], "epochs": 2, "learning_rate": 0.01}
    assert job["spec"]["layer"]["type"] == "gaussian" and job["model"]["name"] == "gauss-cli"
    assert "succeeded a=" in out.stdout
    assert run(service, "predict", "gauss-cli", "--version", "1", "0.1").exit_code == 0


def test_sweep_from_sigmas_and_watch_it_by_sweep_id(service: Service) -> None:
    out = run(service, "sweep", "--sigmas", "0.2,0.4", *SMALL)
    assert out.exit_code == 0, out.output
    first, *job_ids = out.stdout.split("\n")[:3]
    sweep_id = first.split()[1].rstrip(":")
    assert first == f"sweep {sweep_id}: 2 jobs"
    watched = run(service, "watch", sweep_id)
    assert watched.exit_code == 0, watched.output
    for job_id in job_ids:
        assert f"{job_id} succeeded sigma=" in watched.stdout
    table = run(service, "jobs", "--sweep", sweep_id)
    assert sorted(
        line.split()[1] for line in table.stdout.splitlines() if line.split()[1:2] in ([j] for j in job_ids)
    ) == sorted(job_ids)


def test_cancel_and_watch_exits_nonzero(service: Service) -> None:
    job_id = run(service, "submit", "--n", "2000", "--epochs", "20000").stdout.strip()
    assert run(service, "cancel", job_id).exit_code == 0
    watched = run(service, "watch", job_id)
    assert watched.exit_code == 1
    assert f"{job_id} cancelled" in watched.stdout
    again = run(service, "cancel", job_id)
    assert again.exit_code == 1 and "already finished (cancelled)" in again.stderr


def test_api_errors_are_printed_as_the_api_phrased_them(service: Service) -> None:
    expected = service.http.post("/v1/jobs", json={"data": {"kind": "synthetic", "params": {"sigma": -1}}})
    message = expected.json()["error"]["message"]
    bad = run(service, "submit", "--sigma", "-1")
    assert bad.exit_code == 1
    assert bad.stderr.strip() == f"Error: {message}"
    missing = run(service, "get", "nope")
    assert missing.exit_code == 1 and missing.stderr.strip() == "Error: no job with id 'nope'"
    unknown_model = run(service, "predict", "nope", "0.1")
    assert unknown_model.exit_code == 1 and "no model 'nope'" in unknown_model.stderr
    usage = run(service, "sweep")
    assert usage.exit_code == 2 and "--sigmas" in usage.stderr


def test_real_command_uses_bumpfit_url_and_exits_nonzero(service: Service) -> None:
    def bumpfit(*args: str, url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "BUMPFIT_URL": url},
            timeout=60,
        )

    ok = bumpfit("jobs", "--limit", "1", url=service.base)
    assert ok.returncode == 0, ok.stderr
    bad = bumpfit("submit", "--n", "0", url=service.base)
    assert bad.returncode == 1
    api = service.http.post("/v1/jobs", json={"data": {"kind": "synthetic", "n": 0}}).json()
    assert bad.stderr.strip() == f"Error: {api['error']['message']}"
    assert "data" in api["error"]["message"] and "n" in api["error"]["message"]
    down = bumpfit("jobs", url="http://127.0.0.1:9")
    assert down.returncode == 1 and "cannot reach bumpfit at http://127.0.0.1:9" in down.stderr


def test_models_labels_deletes_and_lists(service: Service, tmp_path: Path) -> None:
    ids = []
    for sigma in ("0.3", "0.6"):
        out = run(service, "submit", "--sigma", sigma, "--model-name", "cli-bump", *SMALL)
        assert out.exit_code == 0, out.output
        ids.append(out.stdout.strip())
    assert run(service, "watch", *ids).exit_code == 0
    # Trained in one group or two, the versions follow the group's order: put ids in version order.
    ids.sort(key=lambda i: json.loads(run(service, "get", i).stdout)["model"]["version"])
    labelled = run(service, "label", "cli-bump", "stable", "1")
    assert labelled.exit_code == 0 and labelled.stdout.strip() == "cli-bump stable -> version 1"
    via_label = run(service, "predict", "cli-bump", "--label", "stable", "0.1")
    via_version = run(service, "predict", "cli-bump", "--version", "1", "0.1")
    assert via_label.exit_code == 0 and via_label.stdout == via_version.stdout
    listed = run(service, "models")
    assert listed.exit_code == 0 and "stable=1" in next(x for x in listed.stdout.splitlines() if "cli-bump" in x)
    versions = run(service, "models", "cli-bump")
    assert "stable" in next(x for x in versions.stdout.splitlines() if ids[0] in x)
    refused = run(service, "delete", ids[0])
    assert refused.exit_code == 1 and "stable" in refused.stderr
    assert run(service, "unlabel", "cli-bump", "stable").exit_code == 0
    assert run(service, "delete", ids[0]).stdout.strip() == f"{ids[0]} deleted"
    assert run(service, "get", ids[0]).exit_code == 1
    assert run(service, "delete-version", "cli-bump", "2").exit_code == 0
    assert json.loads(run(service, "get", ids[1]).stdout)["model"]["version"] is None
    assert run(service, "models", "cli-bump").exit_code == 1  # no versions left

    csv = tmp_path / "d.csv"
    csv.write_text("x,y\n0.1,0.2\n0.3,0.4\n")
    ds = service.http.post("/v1/datasets", files={"file": ("d.csv", csv.read_bytes(), "text/csv")}).json()["id"]
    assert ds in run(service, "datasets").stdout
    assert run(service, "delete-dataset", ds).stdout.strip() == f"{ds} deleted"
    assert ds not in run(service, "datasets").stdout
    created = run(service, "sweep", "--sigmas", "0.2,0.4", *SMALL).stdout.split()[1].rstrip(":")
    sweeps = run(service, "sweeps")
    assert sweeps.exit_code == 0 and created in sweeps.stdout


def test_jobs_lists_a_network_job_with_its_layers_and_learned_params(service: Service) -> None:
    body = {
        "model": {"layers": [{"type": "dense", "units": 3}, {"type": "bump"}, {"type": "dense", "units": 1}]},
        "data": {"kind": "inline", "x": [[i / 10, 1 - i / 10] for i in range(10)], "y": [[i / 20] for i in range(10)]},
        "training": {"epochs": 2},
        "device": "gpu",  # the service's CPU worker leaves it queued: the test settles it
    }
    job_id = service.http.post("/v1/jobs", json=body).json()["id"]
    with session_scope(service.database_url) as s:
        token, claimed = queue.claim(s, "test:1", ("gpu",), 1, 60)
        assert [j.id for j in claimed] == [job_id]
        params = {"bump_1": {"sigma": [0.4, 0.5, 0.7]}}
        queue.succeed_many(s, token, {job_id: {"params": params, "metrics": {"loss": 0.25}, "warnings": []}})
    table = run(service, "jobs")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if job_id in line)
    assert "succeeded" in row and "dense-bump-dense" in row and "0.25" in row
    assert "bump_1.sigma=median 0.5 in [0.4, 0.7] (3 units)" in row


def test_bounds_and_optimize_ask_a_served_model_what_it_can_output(service: Service) -> None:
    """`bumpfit bounds` and `bumpfit optimize` against the service: a single bump layer's range over
    a box is exact (its peak e^-1 at 0, its least value at the box's end farthest from 0), and the
    best input's value is what `bumpfit predict` gives for it."""
    job_id = run(service, "submit", "--sigma", "0.5", "--model-name", "cli-bounds", *SMALL).stdout.strip()
    job = service.wait_job(job_id)
    assert job["status"] == "succeeded", job
    sigma = job["params"]["sigma"]
    box = ["--lower", "-0.3", "--upper", "0.4"]

    answer = run(service, "bounds", "cli-bounds", *box, "--json")
    assert answer.exit_code == 0, answer.output
    (out,) = json.loads(answer.stdout)["outputs"]
    least = math.exp(-sigma / (sigma - 0.16))  # at x = 0.4
    assert out["lower"] == pytest.approx(least, abs=1e-5) and out["lower"] <= least
    assert out["upper"] == pytest.approx(math.exp(-1), abs=1e-5) and out["upper"] >= math.exp(-1) - 1e-7
    table = run(service, "bounds", "cli-bounds", *box)
    assert table.exit_code == 0 and "(exact)" in table.stdout, table.output

    found = run(service, "optimize", "cli-bounds", *box, "--min", "--json")
    assert found.exit_code == 0, found.output
    best = json.loads(found.stdout)
    assert best["goal"] == "min" and best["x"] == pytest.approx([0.4]) and 0 <= best["gap"] <= 1e-5
    predicted = float(run(service, "predict", "cli-bounds", str(best["x"][0])).stdout)
    assert best["value"] == pytest.approx(predicted, rel=1e-6)

    bad = run(service, "bounds", "cli-bounds", "--lower", "-0.3")
    assert bad.exit_code != 0 and "give both --lower and --upper" in bad.output


def test_optimize_holds_the_inputs_fixed_by_name(service: Service) -> None:
    """Seed 002's two-input question: the best x2 for a fixed x1, on a network the service trained."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(200, 2))
    body = {
        "model": {"layers": [{"type": "dense", "units": 8, "activation": "tanh"}, {"type": "dense", "units": 1}]},
        "data": {"kind": "inline", "x": x.tolist(), "y": (x[:, :1] * x[:, 1:]).tolist()},
        "training": {"epochs": 2, "seed": 0},
        "model_name": "cli-optimize",
    }
    job = service.wait_job(service.http.post("/v1/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded", job

    found = run(service, "optimize", "cli-optimize", "--fix", "x1=0.5", "--lower", "-1,-1", "--upper", "1,1", "--json")
    assert found.exit_code == 0, found.output
    best = json.loads(found.stdout)
    assert best["x"][0] == 0.5 and -1 <= best["x"][1] <= 1 and best["gap"] >= 0
    predicted = service.http.post("/v1/models/cli-optimize:predict", json={"instances": [best["x"]]}).json()
    assert best["value"] == pytest.approx(predicted["predictions"][0], rel=1e-5, abs=1e-6)
    shown = run(service, "optimize", "cli-optimize", "--fix", "x1=0.5")
    assert shown.exit_code == 0 and shown.stdout.startswith("x ") and "gap" in shown.stdout, shown.output

    bad = run(service, "optimize", "cli-optimize", "--fix", "x1")
    assert bad.exit_code != 0 and "'x1' is not NAME=VALUE" in bad.output
