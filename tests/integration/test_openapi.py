"""The OpenAPI document: bearer scheme and 401/403 on guarded routes, a binary upload, typed bodies
with no free-form object left, answers of jobs ended every way that conform to it, short unique
operation ids; /docs and /redoc load only assets the app serves itself."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from pydantic import BaseModel
from sqlalchemy import delete, update

from app.datasets.models import Dataset
from app.errors import is_v2
from app.http.auth import is_open
from app.jobs import resource
from app.jobs import schemas as jobs
from app.jobs.models import Job
from app.main import create_app
from app.settings import Settings
from app.store import migrate, queue
from app.store.db import session_scope, utcnow
from tests.integration.test_security import READ_ENTRY, SUBMIT_ENTRY


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'api.db'}"
    migrate.upgrade(url)
    with TestClient(create_app(Settings(database_url=url, api_keys=f"{READ_ENTRY},{SUBMIT_ENTRY}"))) as c:
        yield c


@pytest.fixture(scope="module")
def doc(secured: TestClient) -> dict[str, Any]:
    r = secured.get("/openapi.json")  # open, even with keys configured
    assert r.status_code == 200
    return dict(r.json())


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def test_bearer_scheme_and_401_403_on_guarded_routes(doc: dict[str, Any]) -> None:
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"],
    }
    guarded = 0
    for path, method, op in operations(doc):
        if is_open(path):
            assert "security" not in op and "401" not in op["responses"], path
            continue
        guarded += 1
        error = {"$ref": "#/components/schemas/" + ("V2Error" if is_v2(path) else "ErrorResponse")}
        assert op["security"] == [{"bearer": []}], (method, path)
        assert op["responses"]["401"]["content"]["application/json"]["schema"] == error, (method, path)
        if method != "get":  # a read key may GET anything: only writes can be refused for scope
            assert op["responses"]["403"]["content"]["application/json"]["schema"] == error, (method, path)
    assert guarded >= 15
    assert {"/healthz", "/readyz", "/metrics"} <= set(doc["paths"])
    body = doc["components"]["schemas"]["ErrorResponse"]
    assert body["required"] == ["error"]


def test_the_upload_is_a_binary_file(doc: dict[str, Any]) -> None:
    content = doc["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]
    ref = content["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    field = doc["components"]["schemas"][ref]["properties"]["file"]
    assert field["type"] == "string" and field["format"] == "binary"
    assert field["contentMediaType"] == "application/octet-stream"


def test_operation_ids_are_short_and_unique(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+_[a-z_]+", i) and len(i) <= 32 for i in ids), ids
    assert {"jobs_submit", "jobs_get", "jobs_list", "datasets_upload", "models_predict_latest"} <= set(ids)


def test_bodies_are_typed(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        for status, response in op["responses"].items():
            for media, content in response.get("content", {}).items():
                schema = content.get("schema")
                assert schema, (method, path, status, media)
                if media == "application/json" and status.startswith("2"):
                    assert "$ref" in schema, (method, path, status)  # a named model, not a bare object
        body = op.get("requestBody", {}).get("content", {})
        for content in body.values():
            assert "$ref" in content["schema"], (method, path)


# Schemas that stay free-form, each for a reason. Every other object has typed properties or typed
# additionalProperties, and every other value a type.
FREE_FORM = {
    # Its shape follows the error's kind: per-field `{loc, msg}` lists (422, 413), `{point, error}`
    # for a sweep's point, `{request_id}` (500), the job, state, labels or jobs in the way (409). Its
    # description says so; clients read `type` and `message`, which are typed.
    "#/components/schemas/ErrorBody/properties/details",
}
TYPED = {"type", "$ref", "anyOf", "oneOf", "allOf", "const", "enum", "properties", "additionalProperties", "items"}


def free_form(doc: dict[str, Any]) -> set[str]:
    """Where a request or response schema, followed through its references, holds an object without
    properties or typed additionalProperties, or a value of no type at all."""
    found: set[str] = set()
    seen: set[str] = set()

    def walk(node: Any, where: str) -> None:
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                walk(doc["components"]["schemas"][name], f"#/components/schemas/{name}")
            return
        extra = node.get("additionalProperties", True)
        if (node.get("type") == "object" and not node.get("properties") and extra in (True, {})) or not TYPED & set(
            node
        ):
            found.add(where)
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for i, sub in enumerate(node.get(key, [])):
                walk(sub, f"{where}/{key}/{i}")
        for key in ("items", "additionalProperties"):
            walk(node.get(key), f"{where}/{key}")
        for name, sub in node.get("properties", {}).items():
            walk(sub, f"{where}/properties/{name}")

    for path, method, op in operations(doc):
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            walk(content["schema"], f"{method} {path} body {media}")
        for status, response in op["responses"].items():
            for media, content in response.get("content", {}).items():
                walk(content["schema"], f"{method} {path} {status} {media}")
    return found


def test_no_schema_is_free_form(doc: dict[str, Any]) -> None:
    assert free_form(doc) == FREE_FORM
    schemas = doc["components"]["schemas"]
    assert {"JobSpec", "Metrics", "JobError", "JobWarning", "JobTemplate", "SweepPoint", "SweepGrid"} <= set(schemas)
    assert schemas["SweepRequest"]["properties"]["base"]["$ref"].endswith("/JobTemplate")
    assert schemas["SweepOut"]["properties"]["request"]["$ref"].endswith("/SweepRequestEcho")
    assert "required" not in schemas["JobTemplate"]  # a base may leave out what every point sets
    assert {"training.epochs", "data.params.sigma", "layer"} <= set(schemas["SweepPoint"]["properties"])


def spec_keys(typed_dict: Any) -> set[str]:
    return set(typed_dict.__required_keys__ | typed_dict.__optional_keys__)


def branches(union: Any, tag: str) -> dict[str, Any]:
    """A tagged union's members by tag: request models, or the stored spec's TypedDicts."""
    members: dict[str, Any] = {}

    def walk(t: Any) -> None:
        if typing.get_origin(t) is typing.Annotated:
            walk(typing.get_args(t)[0])
        elif typing.get_origin(t) in (typing.Union, types.UnionType):
            for arg in typing.get_args(t):
                walk(arg)
        else:
            hint = t.model_fields[tag].annotation if issubclass(t, BaseModel) else typing.get_type_hints(t)[tag]
            members[typing.get_args(hint)[0]] = t

    walk(union)
    return members


PAIRS = [
    (jobs.JobRequest, resource.JobSpec),
    (jobs.Training, resource.TrainingSpec),
    (jobs.EarlyStopping, resource.EarlyStoppingSpec),
    *((model, branches(resource.LayerSpec, "type")[t]) for t, model in branches(jobs.Layer, "type").items()),
    *((model, branches(resource.DataSpec, "kind")[t]) for t, model in branches(jobs.Data, "kind").items()),
]


@pytest.mark.parametrize(("request_model", "stored"), PAIRS, ids=[m.__name__ for m, _ in PAIRS])
def test_the_stored_spec_types_every_request_field(request_model: Any, stored: Any) -> None:
    # The spec is the request's dump (plus n and features): every layer type and data kind a request
    # takes has its resource type (KeyError above if not), with every field of the request.
    assert set(request_model.model_fields) <= spec_keys(stored)


def conforms(doc: dict[str, Any], client: TestClient, template: str, path: str) -> Any:
    """GET `path`, and check the answer against the document's 200 schema of `template`."""
    r = client.get(path)
    assert r.status_code == 200, (path, r.text[:300])
    schema = doc["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": doc["components"]})
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(r.json())]
    assert not errors, (path, errors[:5])
    return r.json()


def test_answers_of_jobs_ended_every_way_conform_to_the_document(tmp_path: Path) -> None:
    """Jobs trained by the worker's own code (succeeded with validation metrics, with a warning, with
    a list per parameter; failed on bad input), failed the way the worker fails a diverged epoch,
    reaped after their last attempt, cancelled (its spec rewritten in an older stored shape); read back
    through every route that returns them."""
    pytest.importorskip("keras")
    from workers.engine import Result, diagnostics
    from workers.runner import Worker

    url = f"sqlite:///{tmp_path / 'api.db'}"
    migrate.upgrade(url)
    settings = Settings(database_url=url, max_attempts=1)
    with TestClient(create_app(settings)) as client:
        doc = client.get("/openapi.json").json()
        small = {"data": {"kind": "synthetic", "n": 64, "seed": 1}, "training": {"epochs": 2, "batch_size": 16}}
        # Two jobs of one fuse key, claimed here: one fails as a diverged epoch does, one is reaped.
        ended = [client.post("/v1/jobs", json=small).json()["id"] for _ in range(2)]
        with session_scope(url) as s:
            token, claimed = queue.claim(s, "lost-worker", ("auto",), 2, 60)
            assert {j.id for j in claimed} == set(ended)
            row = {"epoch": 1, "loss": None, "val_loss": None, "seconds": 0.1, "params": {"sigma": float("nan")}}
            queue.add_epoch(s, token, {ended[0]: row})
            diverged = Result(params={})
            diagnostics.diagnose("bump", ("sigma",), 1, row, np.ones(1), 1.0, diverged)
            queue.fail(s, ended[0], token, diverged.error or {}, params=row["params"])
            s.execute(update(Job).where(Job.id == ended[1]).values(lease_expires_at=utcnow() - timedelta(1)))
        with session_scope(url) as s:
            queue.reap(s)
        cancelled = client.post("/v1/jobs", json=small).json()["id"]
        client.post(f"/v1/jobs/{cancelled}:cancel")
        # A spec as stored before inline data became a dataset and before early stopping: read leniently.
        legacy = client.get(f"/v1/jobs/{cancelled}").json()["spec"]
        legacy["data"] = {"kind": "inline", "x": [0, 0.5, 1], "y": [1, 0.5, 0], "n": 3, "features": 1}
        del legacy["training"]["early_stopping"], legacy["training"]["shuffle"], legacy["layer"]["per_feature"]
        with session_scope(url) as s:
            s.execute(update(Job).where(Job.id == cancelled).values(spec=legacy))

        csv = "x,y\n" + "".join(f"{v},{np.exp(-v * v)}\n" for v in np.linspace(-1, 1, 32))
        gone = client.post("/v1/datasets", files={"file": ("d.csv", csv.encode(), "text/csv")}).json()["id"]
        two = [[v, -v] for v in np.linspace(-1, 1, 64).tolist()]
        base = {**small, "training": {**small["training"], "validation_split": 0.25, "seed": 3}}
        points = [
            {"model_name": "typed"},
            {"layer": {"type": "bump", "sigma_init": 1e-7}},  # no sample inside the support: a warning
            {"layer": {"type": "gaussian", "per_feature": True}, "data": {"kind": "inline", "x": two, "y": two}},
            {"data": {"kind": "dataset", "id": gone}},  # deleted before a worker loads it: bad input
        ]
        sweep = client.post("/v1/sweeps", json={"base": base, "points": points}).json()
        with session_scope(url) as s:
            s.execute(delete(Dataset).where(Dataset.id == gone))
        worker = Worker(settings)
        while True:
            with session_scope(url) as s:
                token, claimed = queue.claim(s, worker.id, worker.accepts, 16, 60)
                s.expunge_all()
            if not claimed:
                break
            worker.run_group(token, claimed)

        every = [*ended, cancelled, *sweep["jobs"]]
        got = {j: conforms(doc, client, "/v1/jobs/{job_id}", f"/v1/jobs/{j}") for j in every}
        for j in every:
            conforms(doc, client, "/v1/jobs/{job_id}/history", f"/v1/jobs/{j}/history")
        listed = conforms(doc, client, "/v1/jobs", "/v1/jobs?limit=100")
        assert {j["id"] for j in listed["jobs"]} == set(every)
        rows = conforms(doc, client, "/v1/sweeps/{sweep_id}", f"/v1/sweeps/{sweep['id']}")["jobs"]
        assert [r["point"] for r in rows] == points
        conforms(doc, client, "/v1/sweeps", "/v1/sweeps")
        conforms(doc, client, "/v1/models", "/v1/models")
        conforms(doc, client, "/v1/models/{name}", "/v1/models/typed")
        conforms(doc, client, "/v1/models/{name}/metadata", "/v1/models/typed/metadata")
        conforms(doc, client, "/v1/jobs/{job_id}/sample", f"/v1/jobs/{sweep['jobs'][2]}/sample?size=5")

    statuses = {j: got[j]["status"] for j in every}
    assert statuses == dict(zip(every, ["failed", "failed", "cancelled", *["succeeded"] * 3, "failed"], strict=True))
    errors = [got[j]["error"]["type"] for j in (*ended, sweep["jobs"][3])]
    assert errors == ["diverged", "worker_lost", "bad_input"]
    assert got[ended[0]]["params"] == {"sigma": None}  # JSON has no NaN
    assert got[cancelled]["spec"]["data"]["x"] == [0, 0.5, 1] and "early_stopping" not in got[cancelled]["spec"]
    fitted, warned, per_feature = (got[j] for j in sweep["jobs"][:3])
    assert set(fitted["metrics"]) == {"loss", "mae", "r2", "val_loss", "val_mae", "val_r2"}
    assert fitted["spec"]["data"]["n"] == 64 and isinstance(fitted["params"]["sigma"], float)
    assert warned["warnings"] and {w["parameter"] for w in warned["warnings"]} == {"sigma"}
    assert per_feature["spec"]["data"]["kind"] == "dataset" and per_feature["spec"]["data"]["features"] == 2
    assert {k: len(v) for k, v in per_feature["params"].items()} == {"a": 2, "b": 2, "c": 2}


def test_docs_and_redoc_load_only_local_assets(secured: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        r = secured.get(page)  # open, even with keys configured
        assert r.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", r.text)
        assert urls, page
        assert not [u for u in urls if "//" in u], (page, urls)  # no CDN, no fonts from elsewhere
        for u in urls:
            got = secured.get(u)
            assert got.status_code == 200 and got.content, (page, u)
    assert secured.get("/docs/assets/swagger-ui-bundle.js").headers["content-type"].startswith("text/javascript")
    assert secured.get("/docs/assets/..%2Fcore.py").status_code == 404
    assert secured.get("/docs/oauth2-redirect").status_code == 200


def test_asset_files_ship(tmp_path: Path) -> None:
    from app.http.openapi import ASSET_FILES, assets_dir

    assert all((assets_dir() / name).is_file() for name in ASSET_FILES)
