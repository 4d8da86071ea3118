"""The OpenAPI document: bearer scheme and 401/403 on guarded routes, a binary upload, typed bodies,
short unique operation ids; /docs and /redoc load only assets the app serves itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import migrate
from app.auth import is_open
from app.main import create_app
from app.settings import Settings
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
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    guarded = 0
    for path, method, op in operations(doc):
        if is_open(path):
            assert "security" not in op and "401" not in op["responses"], path
            continue
        guarded += 1
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
    from app.openapi import ASSET_FILES, assets_dir

    assert all((assets_dir() / name).is_file() for name in ASSET_FILES)
