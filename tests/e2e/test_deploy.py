"""docker-compose.yml and the Dockerfile, checked against the project and run natively
(no Docker engine here): the migrate, api and worker commands complete a job on PostgreSQL."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from app.cli import main as cli
from app.http.auth import hash_key, new_key, parse_keys
from app.settings import Settings
from tests.conftest import ROOT, answers, free_port, seed_job, wait_for
from tests.conftest import _truncate as truncate

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
KEY, KEY_ENTRY = new_key("submit")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error} substitution."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env and env[name] != "":
            return env[name]
        if op == ":?":
            raise AssertionError(f"{name} must be set: {arg}")
        return arg or ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", sub, value)


def test_services_and_dependencies() -> None:
    assert set(SERVICES) == {"db", "migrate", "api", "worker", "gpu-worker"}
    assert SERVICES["db"]["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(SERVICES["db"]["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in SERVICES["db"]["volumes"])
    assert SERVICES["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("api", "worker", "gpu-worker"):
        assert SERVICES[name]["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
    assert "replicas" in SERVICES["worker"]["deploy"]
    gpu = SERVICES["gpu-worker"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gpu["build"]["args"]["EXTRA"] == "gpu" and gpu["environment"]["BUMPFIT_WORKER_DEVICE"] == "gpu"


@pytest.mark.parametrize("name", ["migrate", "api", "worker", "gpu-worker"])
def test_commands_exist_and_accept_their_flags(name: str) -> None:
    args = SERVICES[name]["command"]
    command = cli.commands[args[0]]  # the image's ENTRYPOINT is `bumpfit`
    command.make_context(args[0], list(args[1:]))  # raises on an unknown flag
    assert CliRunner().invoke(cli, [args[0], "--help"]).exit_code == 0


def test_every_variable_is_a_real_setting() -> None:
    fields = {f"BUMPFIT_{name.upper()}" for name in Settings.model_fields}
    for name, service in SERVICES.items():
        for var in (service.get("environment") or {}) if name != "db" else {}:
            assert var in fields, f"{name}: {var} is not a setting"
    example = [
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    compose_only = {"BUMPFIT_PORT", "BUMPFIT_CPU_WORKERS", "BUMPFIT_GPU"}
    assert not {"BUMPFIT_API_KEYS", "POSTGRES_PASSWORD"} & set(example)  # no secret is shipped
    assert all(v in fields or v in compose_only for v in example)
    assert "POSTGRES_PASSWORD" in (ROOT / "docker-compose.yml").read_text()
    for ignore in (".gitignore", ".dockerignore"):  # the quick start's .env (secrets) is never shipped
        assert ".env" in (ROOT / ignore).read_text().splitlines()


def test_health_checks_point_at_real_endpoints() -> None:
    from app.main import create_app

    paths = set(create_app(Settings(database_url="sqlite://")).openapi()["paths"])
    urls = re.findall(r"http://127\.0\.0\.1:8000(/\w+)", DOCKERFILE + " ".join(SERVICES["api"]["healthcheck"]["test"]))
    assert urls and set(urls) <= paths


def test_dockerfile() -> None:
    stages = re.findall(r"^FROM \S+ AS (\S+)", DOCKERFILE, re.M)
    assert stages == ["base", "build", "runtime"]
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11\.\d+-slim", DOCKERFILE, re.M)  # pinned
    assert not DOCKERFILE.startswith("# syntax")  # a frontend image would be pulled from a registry
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    assert re.search(r"^ARG EXTRA=(\w+)", DOCKERFILE, re.M).group(1) in extras  # type: ignore[union-attr]
    assert {s["build"]["args"]["EXTRA"] for s in SERVICES.values() if "build" in s} <= extras
    user = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert user and user[-1] not in ("root", "0")
    assert "HEALTHCHECK" in DOCKERFILE
    assert re.search(r'^ENTRYPOINT \["bumpfit"\]', DOCKERFILE, re.M)
    assert "bumpfit" in PYPROJECT["project"]["scripts"]
    cmd = re.search(r"^CMD (\[.*\])", DOCKERFILE, re.M).group(1)  # type: ignore[union-attr]
    args = yaml.safe_load(cmd)
    cli.commands[args[0]].make_context(args[0], args[1:])
    for copied in re.findall(r"^COPY (?!--)(.+) \S+$", DOCKERFILE, re.M):
        for path in copied.split():
            assert (ROOT / path).exists(), path


def test_settings_log_masks_the_password() -> None:
    masked = Settings(database_url="postgresql+psycopg://bumpfit:s3cret@db:5432/bumpfit").masked()
    assert "s3cret" not in masked and "bumpfit:***@db" in masked


def run_env(service: str, db_url: str, port: int) -> dict[str, str]:
    """The service's compose environment, with the database host pointed at this machine."""
    values = {"POSTGRES_PASSWORD": "unused-with-trust-auth", "BUMPFIT_API_KEYS": KEY_ENTRY}
    env = {k: interpolate(str(v), values) for k, v in SERVICES[service]["environment"].items()}
    env["BUMPFIT_DATABASE_URL"] = db_url
    env["BUMPFIT_LEASE_SECONDS"] = "5"
    return {**os.environ, **env}


def spawn(service: str, db_url: str, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    args = [a if a != "8000" else str(port) for a in SERVICES[service]["command"]]
    args = [a if a != "0.0.0.0" else "127.0.0.1" for a in args]  # loopback only in tests
    log = open(tmp / f"{service}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=run_env(service, db_url, port),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def test_compose_commands_complete_a_job_on_postgresql(pg_server_url: str, tmp_path: Path) -> None:
    port = free_port()
    migrate = spawn("migrate", pg_server_url, port, tmp_path)
    assert migrate.wait(120) == 0, (tmp_path / "migrate.log").read_text()
    truncate(pg_server_url)  # the session's database: earlier tests' jobs would count in /metrics
    procs = [spawn("api", pg_server_url, port, tmp_path), spawn("worker", pg_server_url, port, tmp_path)]
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Authorization": f"Bearer {KEY}"})

    try:
        wait_for(lambda: answers(http, "/readyz"), 60, "the api's /readyz")
        job_id = http.post("/v1/jobs", json=seed_job(n=5000, epochs=2)).json()["id"]
        job: dict[str, Any] = {}
        wait_for(
            lambda: job.update(http.get(f"/v1/jobs/{job_id}").json()) or job["status"] == "succeeded",
            120,
            "the job to succeed",
        )
        assert http.post(f"/v1/models/{job_id}:predict", json={"instances": [0.0, 0.1, 0.2]}).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/v1/jobs").status_code == 401  # the compose api needs keys
        metrics = http.get("/metrics").text
        assert 'bumpfit_jobs{state="succeeded"} 1.0' in metrics
        assert "bumpfit_predictions_total 3.0" in metrics
        assert "bumpfit_epochs_trained 2.0" in metrics
        assert "bumpfit_job_duration_seconds_count 1.0" in metrics
        assert 'bumpfit_worker_heartbeat_age_seconds{device="CPU:0"' in metrics
        assert '"message": "settings: ' in (tmp_path / "worker.log").read_text()  # JSON logs, settings printed
    finally:
        http.close()
        for p in procs:
            p.terminate()
        for p in procs:
            assert p.wait(60) == 0, shlex.join(map(str, p.args))


@pytest.mark.parametrize("url", ["fresh-sqlite", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"])
def test_readyz_is_503_until_the_database_is_reachable_and_migrated(url: str, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.store import migrate

    url = f"sqlite:///{tmp_path / 'fresh.db'}" if url == "fresh-sqlite" else url
    with TestClient(create_app(Settings(database_url=url))) as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["error"]["type"] == "unavailable"
        assert client.get("/healthz").status_code == 200
        if url.startswith("sqlite"):
            migrate.upgrade(url)
            assert client.get("/readyz").json()["status"] == "ready"


@pytest.mark.parametrize(
    ("env", "named", "problem"),
    [
        ({"BUMPFIT_API_KEYS": "not-a-key"}, "BUMPFIT_API_KEYS", "expected <sha256 hex>:read|submit"),
        ({"BUMPFIT_DATABASE_URL": "mysql://u@h/db"}, "BUMPFIT_DATABASE_URL", "unsupported driver 'mysql'"),
        ({"BUMPFIT_DATABASE_URL": "no url"}, "BUMPFIT_DATABASE_URL", "is not a database URL"),
        ({"BUMPFIT_MAX_POINTS": "-5"}, "BUMPFIT_MAX_POINTS", "greater than 0"),
        ({"BUMPFIT_LEASE_SECONDS": "soon"}, "BUMPFIT_LEASE_SECONDS", "valid number"),
        ({"BUMPFIT_WARMUP_SHAPES": "9"}, "BUMPFIT_WARMUP_SHAPES", "less than or equal to 4"),
    ],
)
@pytest.mark.parametrize("command", [["migrate"], ["serve"], ["worker"], ["keys", "new", "--dotenv"]])
def test_a_misconfiguration_ends_the_process_with_one_line(
    env: dict[str, str], named: str, problem: str, command: list[str], tmp_path: Path
) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "app.cli", *command],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"bumpfit: {named}: ") and problem in line


def test_a_bad_flag_is_named_as_the_flag(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "70000"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and r.stderr.strip() == "bumpfit: --port: Input should be less than or equal to 65535"


def test_keys_new_dotenv_adds_a_key_and_makes_the_database_password_once(tmp_path: Path) -> None:
    def dotenv(**env: str) -> tuple[dict[str, str], str]:
        r = subprocess.run(
            [sys.executable, "-m", "app.cli", "keys", "new", "--dotenv"],
            cwd=tmp_path,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        lines = dict(line.split("=", 1) for line in r.stdout.splitlines() if not line.startswith("#"))
        return lines, r.stderr.rsplit(" ", 1)[-1].strip()

    url = "postgresql+psycopg://bumpfit:@db:5432/bumpfit"  # compose's URL before .env has a password
    first, key = dotenv(BUMPFIT_DATABASE_URL=url)
    assert set(first) == {"BUMPFIT_API_KEYS", "POSTGRES_PASSWORD"} and len(first["POSTGRES_PASSWORD"]) >= 24
    assert key.startswith("bf_") and key not in first["BUMPFIT_API_KEYS"]
    assert first["BUMPFIT_API_KEYS"] == f"{hash_key(key)}:submit"
    url = f"postgresql+psycopg://bumpfit:{first['POSTGRES_PASSWORD']}@db:5432/bumpfit"
    second, key2 = dotenv(BUMPFIT_DATABASE_URL=url, BUMPFIT_API_KEYS=first["BUMPFIT_API_KEYS"])
    assert set(second) == {"BUMPFIT_API_KEYS"}  # the database keeps its password
    assert set(parse_keys(second["BUMPFIT_API_KEYS"])) == {hash_key(key), hash_key(key2)}


def test_worker_healthcheck_follows_the_heartbeat(db_url: str) -> None:
    import socket

    from app.ops.models import Worker
    from app.store.db import session_scope, utcnow

    def check() -> int:
        env = {**os.environ, "BUMPFIT_DATABASE_URL": db_url, "BUMPFIT_LEASE_SECONDS": "30"}
        return subprocess.run(
            [sys.executable, "-m", "app.cli", "worker", "--healthcheck"], env=env, capture_output=True, timeout=60
        ).returncode

    assert check() == 1  # no worker registered on this host
    with session_scope(db_url) as s:
        s.add(
            Worker(
                id=f"{socket.gethostname()}:1", device="CPU:0", status="idle", current_jobs=[], heartbeat_at=utcnow()
            )
        )
    assert check() == 0
    with session_scope(db_url) as s:
        s.get(Worker, f"{socket.gethostname()}:1").heartbeat_at = utcnow() - timedelta(seconds=31)  # type: ignore
    assert check() == 1
