"""A client generated from /openapi.json by a standard generator (openapi-python-client) runs a whole
lifecycle against a real `bumpfit serve` with API keys: upload a CSV, train on it, wait, read the
typed job (spec, params, metrics), history and metadata, predict, run a sweep built from typed
points and read its typed rows, read a failed job's error; and it sees the documented 401 and 403."""

from __future__ import annotations

import importlib
import io
import json
import os
import pkgutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, update

from app.datasets.models import Dataset
from app.jobs.models import Job
from app.store.db import session_scope
from tests.conftest import Service
from tests.integration.test_security import READ, READ_ENTRY, SUBMIT, SUBMIT_ENTRY

if not os.environ.get("CI"):  # CI installs the test extra (.ci/run): there a missing generator is a failure
    pytest.importorskip("openapi_python_client")
# The dashboard's plot is an SVG: the generator's types have no image/*, so it is read as bytes.
CONFIG = {
    "project_name_override": "bumpfit_client",
    "content_type_overrides": {"image/svg+xml": "application/octet-stream"},
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("openapi-client")
    svc = Service(
        f"sqlite:///{tmp / 'bumpfit.db'}",
        workers=1,
        # CPU workers only, whatever the host: a job asking for a GPU waits (the failed-job test).
        env={"BUMPFIT_API_KEYS": f"{READ_ENTRY},{SUBMIT_ENTRY}", "BUMPFIT_WORKER_DEVICE": "cpu"},
        log=tmp / "serve.log",
    )
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def client_pkg(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`openapi-python-client generate` on the running service's document, imported."""
    out = tmp_path_factory.mktemp("generated")
    (out / "openapi.json").write_text(service.http.get("/openapi.json").text)
    (out / "config.json").write_text(json.dumps(CONFIG))
    r = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", "openapi.json", "--meta", "none"]
        + ["--config", "config.json", "--output-path", "bumpfit_client"],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Warning" not in r.stdout + r.stderr, r.stdout + r.stderr  # every operation generated
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("bumpfit_client")
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == "bumpfit_client" or m.startswith("bumpfit_client.")]:
            del sys.modules[name]


def test_generated_client_runs_a_whole_lifecycle(service: Service, client_pkg: Any) -> None:
    api = importlib.import_module("bumpfit_client.api")
    models = importlib.import_module("bumpfit_client.models")
    types = importlib.import_module("bumpfit_client.types")
    datasets, jobs, serving = (
        importlib.import_module(f"bumpfit_client.api.{t}") for t in ("datasets", "jobs", "models")
    )
    # Every operation of the document, under its tag, has its module in the generated client.
    document = service.http.get("/openapi.json").json()
    for tag, package in (("datasets", datasets), ("jobs", jobs), ("models", serving)):
        operations = {
            op["operationId"] for item in document["paths"].values() for op in item.values() if tag in op["tags"]
        }
        generated = {m.name for m in pkgutil.iter_modules(package.__path__)}
        assert operations and operations <= generated, (tag, operations - generated)
    assert {m.name for m in pkgutil.iter_modules(api.__path__)} >= {"datasets", "jobs", "models"}
    client = client_pkg.AuthenticatedClient(base_url=service.base, token=SUBMIT, raise_on_unexpected_status=True)

    x = np.linspace(-1, 1, 400)
    y = np.exp(-4 * x * x)
    csv = "x,y\n" + "".join(f"{a:.17g},{b:.17g}\n" for a, b in zip(x.tolist(), y.tolist(), strict=True))
    upload = importlib.import_module("bumpfit_client.api.datasets.datasets_upload")
    ds = upload.sync(
        client=client,
        body=models.BodyDatasetsUpload(
            file=types.File(payload=io.BytesIO(csv.encode()), file_name="bump.csv", mime_type="text/csv")
        ),
    )
    assert isinstance(ds, models.DatasetOut), ds
    assert (ds.filename, ds.n, ds.features) == ("bump.csv", 400, 1)

    submit = importlib.import_module("bumpfit_client.api.jobs.jobs_submit")
    request = models.JobRequest.from_dict(
        {"data": {"kind": "dataset", "id": ds.id}, "training": {"epochs": 2, "seed": 1}, "model_name": "gen-client"}
    )
    job = submit.sync(client=client, body=request)
    assert isinstance(job, models.JobOut), job
    assert job.status.value in ("queued", "running") and job.model.name == "gen-client"

    get = importlib.import_module("bumpfit_client.api.jobs.jobs_get")
    deadline = time.monotonic() + 120
    while (job := get.sync(job.id, client=client)).status.value not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, service.log_tail()
        time.sleep(0.2)
    assert job.status.value == "succeeded", (job.to_dict(), service.log_tail())

    # The resource's fields are typed all the way down.
    assert isinstance(job.spec, models.JobSpec) and isinstance(job.spec.data, models.DatasetDataSpec)
    assert job.spec.data.id == ds.id and job.spec.data.n == 400 and job.spec.data.features == 1
    assert isinstance(job.spec.layer, models.BumpLayerSpec) and job.spec.training.seed == 1
    sigma = job.params["sigma"]
    assert isinstance(sigma, float) and 0 < sigma < 1
    assert isinstance(job.metrics, models.Metrics) and isinstance(job.metrics.r2, float)
    assert job.error is None and job.warnings == []

    history = importlib.import_module("bumpfit_client.api.jobs.jobs_get_history").sync(job.id, client=client)
    assert isinstance(history, models.History) and len(history.history) == 2
    assert history.history[-1].epoch == 2 and history.history[-1].params["sigma"] == sigma

    metadata = importlib.import_module("bumpfit_client.api.models.models_get_metadata").sync(
        "gen-client", client=client
    )
    assert isinstance(metadata, models.Metadata) and metadata.model_spec.version == "1"
    signature = metadata.metadata.signature_def.signature_def["serving_default"]
    assert [d.size for d in signature.inputs["x"].tensor_shape.dim] == ["-1", "1"]

    predict = importlib.import_module("bumpfit_client.api.models.models_predict_latest")
    out = predict.sync("gen-client", client=client, body=models.PredictRequest.from_dict({"instances": [0.0, 0.9]}))
    assert isinstance(out, models.PredictResponse), out
    assert out.model == "gen-client" and out.version == 1 and len(out.predictions) == 2
    assert out.predictions[0] > out.predictions[1]  # the bump's peak is at 0

    artifact = importlib.import_module("bumpfit_client.api.models.models_get_artifact")
    assert artifact.sync_detailed("gen-client", 1, client=client).status_code == 200


def test_generated_client_types_sweeps_and_errors(service: Service, client_pkg: Any) -> None:
    models = importlib.import_module("bumpfit_client.models")
    types = importlib.import_module("bumpfit_client.types")
    sweeps = {n: importlib.import_module(f"bumpfit_client.api.sweeps.sweeps_{n}") for n in ("create", "get")}
    jobs = {n: importlib.import_module(f"bumpfit_client.api.jobs.jobs_{n}") for n in ("submit", "get")}
    upload = importlib.import_module("bumpfit_client.api.datasets.datasets_upload")
    client = client_pkg.AuthenticatedClient(base_url=service.base, token=SUBMIT, raise_on_unexpected_status=True)

    def dataset(name: str) -> str:
        x = np.linspace(-1, 1, 200)
        csv = "x,y\n" + "".join(f"{a!r},{b!r}\n" for a, b in zip(x.tolist(), np.exp(-4 * x * x).tolist(), strict=True))
        file = types.File(payload=io.BytesIO(csv.encode()), file_name=name, mime_type="text/csv")
        return str(upload.sync(client=client, body=models.BodyDatasetsUpload(file=file)).id)

    # A sweep from the typed template and points; its rows and echoed request come back typed.
    data = dataset("sweep.csv")
    base = models.JobTemplate.from_dict({"data": {"kind": "dataset", "id": data}, "training": {"epochs": 1, "seed": 2}})
    body = models.SweepRequest(base=base, points=[models.SweepPoint(layer_sigma_init=s) for s in (0.05, 0.5)])
    created = sweeps["create"].sync(client=client, body=body)
    deadline = time.monotonic() + 120
    while not (sweep := sweeps["get"].sync(created.id, client=client)).done:
        assert time.monotonic() < deadline, service.log_tail()
        time.sleep(0.2)
    assert [row.point.layer_sigma_init for row in sweep.jobs] == [0.05, 0.5]
    assert all(row.status == "succeeded" and isinstance(row.params["sigma"], float) for row in sweep.jobs)
    assert all(isinstance(row.metrics, models.Metrics) and row.error is None for row in sweep.jobs)
    assert sweep.request.base.data.id == data and sweep.request.grid is None

    # A failed job's error: a job asking for a GPU waits (the workers are CPU-only); its dataset is
    # removed behind the API's back, then the job is let through, and the worker fails it.
    gone = dataset("gone.csv")
    request = models.JobRequest.from_dict({"data": {"kind": "dataset", "id": gone}, "device": "gpu"})
    waiting = jobs["submit"].sync(client=client, body=request)
    with session_scope(service.database_url) as s:
        s.execute(delete(Dataset).where(Dataset.id == gone))
        s.execute(update(Job).where(Job.id == waiting.id).values(device_request="auto"))
    deadline = time.monotonic() + 60
    while (failed := jobs["get"].sync(waiting.id, client=client)).status.value in ("queued", "running"):
        assert time.monotonic() < deadline, service.log_tail()
        time.sleep(0.2)
    assert failed.status.value == "failed" and isinstance(failed.error, models.JobError)
    assert failed.error.type_ == "bad_input" and gone in failed.error.message


def test_generated_client_sees_401_and_403(service: Service, client_pkg: Any) -> None:
    models = importlib.import_module("bumpfit_client.models")
    listing = importlib.import_module("bumpfit_client.api.jobs.jobs_list")
    anonymous = client_pkg.Client(base_url=service.base)
    r = listing.sync_detailed(client=anonymous)
    assert r.status_code == 401 and isinstance(r.parsed, models.ErrorResponse)
    assert r.parsed.error.type_ == "unauthorized"

    reader = client_pkg.AuthenticatedClient(base_url=service.base, token=READ)
    assert isinstance(listing.sync(client=reader), models.JobList)
    submit = importlib.import_module("bumpfit_client.api.jobs.jobs_submit")
    body = models.JobRequest.from_dict({"data": {"kind": "synthetic", "function": "bump", "n": 100}})
    r = submit.sync_detailed(client=reader, body=body)
    assert r.status_code == 403 and isinstance(r.parsed, models.ErrorResponse)
    assert r.parsed.error.type_ == "forbidden"
