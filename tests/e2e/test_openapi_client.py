"""A client generated from /openapi.json by a standard generator (openapi-python-client) runs a whole
lifecycle against a real `bumpfit serve` with API keys: upload a CSV, train on it, wait, read the
history, predict; and it sees the documented 401 and 403."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.conftest import Service
from tests.integration.test_security import READ, READ_ENTRY, SUBMIT, SUBMIT_ENTRY

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
        env={"BUMPFIT_API_KEYS": f"{READ_ENTRY},{SUBMIT_ENTRY}"},
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
    assert api is not None
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
    assert datasets is not None

    submit = importlib.import_module("bumpfit_client.api.jobs.jobs_submit")
    request = models.JobRequest.from_dict(
        {"data": {"kind": "dataset", "id": ds.id}, "training": {"epochs": 2, "seed": 1}, "model_name": "gen-client"}
    )
    job = submit.sync(client=client, body=request)
    assert isinstance(job, models.JobOut), job
    assert jobs is not None

    get = importlib.import_module("bumpfit_client.api.jobs.jobs_get")
    deadline = time.monotonic() + 120
    while (job := get.sync(job.id, client=client)).status.value not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, service.log_tail()
        time.sleep(0.2)
    assert job.status.value == "succeeded", (job.to_dict(), service.log_tail())

    history = importlib.import_module("bumpfit_client.api.jobs.jobs_get_history").sync(job.id, client=client)
    assert isinstance(history, models.History) and len(history.history) == 2
    assert history.history[-1].epoch == 2

    predict = importlib.import_module("bumpfit_client.api.models.models_predict_latest")
    out = predict.sync("gen-client", client=client, body=models.PredictRequest.from_dict({"instances": [0.0, 0.9]}))
    assert isinstance(out, models.PredictResponse), out
    assert out.model == "gen-client" and out.version == 1 and len(out.predictions) == 2
    assert serving is not None

    artifact = importlib.import_module("bumpfit_client.api.models.models_get_artifact")
    assert artifact.sync_detailed("gen-client", 1, client=client).status_code == 200


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
