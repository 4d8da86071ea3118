"""The keyless mode's trust boundary (app/http/boundary.py): loopback Host names only (no DNS rebinding), no
cross-site writes (form posts, uploads), and the dashboard's security headers. Requests go to
127.0.0.1; only the headers name another site."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.http.auth import new_key
from app.main import create_app
from app.settings import Settings
from tests.conftest import seed_job

BASE = "http://127.0.0.1:8000"
EVIL = "https://evil.example"
CSV = ("d.csv", b"x,y\n0.1,0.2\n0.3,0.4\n")


def client(url: str, **settings: Any) -> TestClient:
    """An in-process app reached at 127.0.0.1:8000, with no allowed host unless `settings` lists some."""
    return TestClient(create_app(Settings(database_url=url, **{"allowed_hosts": "", **settings})), base_url=BASE)


@pytest.fixture
def keyless(db_url: str) -> Iterator[TestClient]:
    with client(db_url) as c:
        yield c


def refused(r: Any, status: int, kind: str, *words: str) -> None:
    assert r.status_code == status, r.text[:300]
    error = r.json()["error"]
    assert error["type"] == kind and all(w in error["message"] for w in words), error


def test_a_foreign_host_name_is_refused_and_nothing_is_created(keyless: TestClient) -> None:
    evil = {"Host": "evil.example"}
    refused(keyless.get("/v1/jobs", headers=evil), 400, "invalid_host", "'evil.example'", "BUMPFIT_ALLOWED_HOSTS")
    refused(keyless.post("/v1/jobs", json=seed_job(), headers=evil), 400, "invalid_host")
    refused(keyless.get("/", headers={"Host": "evil.example:8000"}), 400, "invalid_host")  # the dashboard too
    assert keyless.get("/v1/jobs").json()["jobs"] == []
    assert keyless.get("/v1/jobs", headers={"Host": ""}).status_code == 200  # no Host: no browser sent it
    for host in ("localhost", "LocalHost:8000", "127.0.0.1", "127.0.0.1:9", "[::1]", "[::1]:8000"):
        assert keyless.get("/v1/jobs", headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize(
    "headers,reason",
    [
        ({"Origin": EVIL}, f"its Origin {EVIL} is not this service's own ({BASE})"),
        ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
        ({"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}, EVIL),
        ({"Origin": "null"}, "Origin null"),  # a sandboxed frame's form
        ({"Origin": "http://[bad"}, "Origin http://[bad"),
        ({"Origin": "http://127.0.0.1:9999", "Sec-Fetch-Site": "same-site"}, "127.0.0.1:9999"),  # another port
    ],
)
def test_a_cross_site_upload_is_refused_and_stores_nothing(
    keyless: TestClient, headers: dict[str, str], reason: str
) -> None:
    r = keyless.post("/v1/datasets", files={"file": CSV}, headers=headers)
    refused(r, 403, "forbidden", "cross-site POST refused", reason)
    assert keyless.get("/v1/datasets").json()["datasets"] == []
    own = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}  # the dashboard's own upload
    assert keyless.post("/v1/datasets", files={"file": CSV}, headers=own).status_code == 201


def test_a_cross_site_form_post_is_refused_and_changes_nothing(keyless: TestClient) -> None:
    job = keyless.post("/v1/jobs", json=seed_job()).json()  # no Origin: curl, the CLI, a script
    form = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded"}
    r = keyless.post("/v1/jobs", content=b"data=%7B%7D", headers=form)
    refused(r, 403, "forbidden", "cross-site POST refused", EVIL)
    r = keyless.post(f"/v1/jobs/{job['id']}:cancel", content=b"", headers=form)
    refused(r, 403, "forbidden", "cross-site POST refused")
    refused(keyless.delete(f"/v1/jobs/{job['id']}", headers={"Origin": EVIL}), 403, "forbidden", "DELETE")
    jobs = keyless.get("/v1/jobs", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}).json()["jobs"]
    assert [(j["id"], j["status"], j["cancel_requested"]) for j in jobs] == [(job["id"], "queued", False)]


def test_listed_hosts_and_cors_origins_are_answered(db: str) -> None:
    notebook = "https://notebook.example"
    with client(db, allowed_hosts="bumpfit.lan, [FD00::1]", cors_origins=notebook) as c:
        for host in ("bumpfit.lan", "BUMPFIT.lan:8443", "[fd00::1]:80", "localhost"):
            assert c.get("/healthz", headers={"Host": host}).status_code == 200, host
        refused(c.get("/healthz", headers={"Host": "evil.example"}), 400, "invalid_host")
        for i, origin in enumerate((notebook, "https://bumpfit.lan")):
            upload = {"file": ("d.csv", f"x,y\n{i},1\n".encode())}
            r = c.post("/v1/datasets", files=upload, headers={"Origin": origin, "Sec-Fetch-Site": "cross-site"})
            assert r.status_code == 201, (origin, r.text)


def test_with_keys_the_host_is_checked_only_when_hosts_are_listed(db: str) -> None:
    key, entry = new_key("submit")
    auth = {"Authorization": f"Bearer {key}"}
    with client(db, api_keys=entry) as c:  # the compose and Kubernetes deployments: any Host, a key each call
        assert c.get("/v1/jobs", headers={**auth, "Host": "bumpfit.example.com"}).status_code == 200
        assert c.post("/v1/datasets", files={"file": CSV}, headers={**auth, "Origin": EVIL}).status_code == 201
    with client(db, api_keys=entry, allowed_hosts="bumpfit.example.com") as c:
        assert c.get("/v1/jobs", headers={**auth, "Host": "bumpfit.example.com"}).status_code == 200
        refused(c.get("/v1/jobs", headers={**auth, "Host": "evil.example"}), 400, "invalid_host")
        refused(c.post("/v1/datasets", files={"file": CSV}, headers={**auth, "Origin": EVIL}), 403, "forbidden")


@pytest.mark.parametrize("entry", ["https://bumpfit.lan", "bumpfit.lan:8000", "bumpfit.lan/api", "[::1]:8000"])
def test_a_malformed_allowed_host_is_named(db: str, entry: str) -> None:
    with pytest.raises(ValidationError, match="without scheme, port or path"):
        Settings(database_url=db, allowed_hosts=f"localhost,{entry}")


def test_the_dashboard_sends_its_security_headers(db: str) -> None:
    _, entry = new_key("read")
    for settings in ({}, {"api_keys": entry}):
        with client(db, **settings) as c:
            for path in ("/", "/dashboard/static/app.js"):
                headers = c.get(path).headers
                csp = headers["content-security-policy"]
                assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
                assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
                assert headers["x-content-type-options"] == "nosniff"
                assert headers["x-frame-options"] == "DENY"
                assert headers["referrer-policy"] == "no-referrer"
