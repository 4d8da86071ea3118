"""The Kubernetes manifests in deploy/ (docs/kubernetes.md): every overlay renders with kustomize and
validates offline and strictly (Kubernetes' schemas through kubernetes-validate, KEDA's kinds
through deploy/schemas); the KEDA scaler's query, run against PostgreSQL with a real backlog, asks
for one worker per group; the pods' commands and probes run as local processes."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.main import create_app
from app.settings import Settings
from app.store import migrate, queue
from app.store.db import engine_for, session_scope
from tests.conftest import ROOT, _truncate, free_port, seed_job, wait_for

DEPLOY = ROOT / "deploy"
OVERLAYS = ["base", "overlays/gpu", "overlays/trial"]
KUBERNETES = "1.32.0"  # the oldest Kubernetes the manifests are validated against
KEDA = json.loads((DEPLOY / "schemas" / "keda.sh_v1alpha1.json").read_text())
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl (its built-in kustomize renders deploy/) not found")


def render(overlay: str) -> list[dict[str, Any]]:
    """The manifests of an overlay, as `kubectl kustomize` renders them."""
    assert KUBECTL is not None
    out = subprocess.run([KUBECTL, "kustomize", str(DEPLOY / overlay)], check=True, capture_output=True, text=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def validate(doc: dict[str, Any]) -> None:
    """Raise when a manifest does not conform, strictly (unknown fields are errors)."""
    if doc["apiVersion"].startswith("keda.sh/"):
        schema = {**KEDA, "$ref": f"#/$defs/{doc['kind']}"}
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    else:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The manifest of this kind and name."""
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_renders_and_validates_strictly(overlay: str) -> None:
    docs = render(overlay)
    for doc in docs:
        validate(doc)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Job", "bumpfit-migrate"), ("Deployment", "bumpfit-api"), ("Deployment", "bumpfit-cpu-worker")} <= kinds
    assert {("ScaledObject", "bumpfit-cpu-worker"), ("TriggerAuthentication", "bumpfit-postgres")} <= kinds
    for deployment in [d for d in docs if d["kind"] == "Deployment"]:
        pod = deployment["spec"]["template"]["spec"]
        if "worker" in deployment["metadata"]["name"]:  # SIGTERM: the epoch ends and the group is handed back
            assert pod["terminationGracePeriodSeconds"] >= 300
            assert pod["containers"][0]["livenessProbe"]["exec"]["command"] == ["bumpfit", "worker", "--healthcheck"]
        else:
            assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    if overlay == "overlays/gpu":
        gpu = find(docs, "Deployment", "bumpfit-gpu-worker")["spec"]["template"]["spec"]
        assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1  # one worker per GPU
        assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert find(docs, "ScaledObject", "bumpfit-gpu-worker")["spec"]["minReplicaCount"] == 0
    if overlay == "overlays/trial":
        assert find(docs, "StatefulSet", "bumpfit-postgres") and find(docs, "Secret", "bumpfit")


@needs_kubectl
def test_the_validation_is_strict_and_knows_kedas_fields() -> None:
    docs = render("base")
    api = json.loads(json.dumps(find(docs, "Deployment", "bumpfit-api")))
    api["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/readyz"}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(api)
    scaled = json.loads(json.dumps(find(docs, "ScaledObject", "bumpfit-cpu-worker")))
    scaled["spec"]["maxReplicas"] = 3  # KEDA's field is maxReplicaCount
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """True when a label selector (matchLabels, matchExpressions with In) selects pods with `labels`."""
    wanted = selector.get("matchLabels", {}).items() <= labels.items()
    for e in selector.get("matchExpressions", []):
        assert e["operator"] == "In", e  # the only operator the manifests use
        wanted = wanted and labels.get(e["key"]) in e["values"]
    return wanted


def opened(policy: dict[str, Any]) -> set[tuple[str, int]]:
    """The (protocol, port) pairs a NetworkPolicy's egress rules open."""
    return {(port["protocol"], port["port"]) for rule in policy["spec"]["egress"] for port in rule["ports"]}


def documented_policy() -> dict[str, Any]:
    """The NetworkPolicy docs/kubernetes.md gives for webhook egress."""
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    (block,) = [b.split("\n", 1)[1] for b in text.split("```")[1::2] if b.startswith("yaml") and "NetworkPolicy" in b]
    doc: dict[str, Any] = yaml.safe_load(block)
    return doc


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pods_reach_only_the_database_and_dns(overlay: str) -> None:
    docs = render(overlay)
    policy = find(docs, "NetworkPolicy", "bumpfit-egress")
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert opened(policy) == {("TCP", 5432), ("UDP", 53), ("TCP", 53)}
    assert all(set(rule) == {"ports"} for rule in policy["spec"]["egress"])  # to any address, on those ports
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if "template" in d.get("spec", {})
    }
    held = {name for name, labels in pods.items() if selects(policy["spec"]["podSelector"], labels)}
    assert held == set(pods) - {"bumpfit-postgres"}  # the API, every worker and the migrations; not the trial database
    # The documented opening for webhooks: valid, for the API's pods only (they send them), HTTPS.
    webhooks = documented_policy()
    validate(webhooks)
    assert {name for name, labels in pods.items() if selects(webhooks["spec"]["podSelector"], labels)} == {
        "bumpfit-api"
    }
    assert opened(webhooks) == {("TCP", 443)}


def replicas(scaled: dict[str, Any], value: float) -> int:
    """The replica count KEDA's PostgreSQL scaler sets for a query result (an AverageValue target)."""
    spec = scaled["spec"]
    meta = spec["triggers"][0]["metadata"]
    if value <= float(meta["activationTargetQueryValue"]):
        return int(spec["minReplicaCount"])
    wanted = math.ceil(value / float(meta["targetQueryValue"]))
    return int(min(spec["maxReplicaCount"], max(spec["minReplicaCount"], wanted)))


@needs_kubectl
def test_the_scalers_query_asks_for_one_worker_per_queued_or_running_group(pg_server_url: str) -> None:
    docs = render("overlays/gpu")
    cpu, gpu = (find(docs, "ScaledObject", f"bumpfit-{kind}-worker") for kind in ("cpu", "gpu"))
    migrate.upgrade(pg_server_url)
    _truncate(pg_server_url)
    engine = engine_for(pg_server_url)

    def value(scaled: dict[str, Any]) -> float:
        with engine.connect() as c:
            return float(c.execute(text(scaled["spec"]["triggers"][0]["metadata"]["query"])).scalar_one())

    assert (value(cpu), value(gpu)) == (0, 0)
    assert (replicas(cpu, 0), replicas(gpu, 0)) == (1, 0)  # an idle queue: one CPU worker, no GPU
    with TestClient(create_app(Settings(database_url=pg_server_url))) as client:

        def sweep(size: int, **base: Any) -> None:
            points = [{"training.seed": i} for i in range(size)]
            r = client.post("/v1/sweeps", json={"base": {**seed_job(), **base}, "points": points})
            assert r.status_code == 201, r.text

        sweep(600)  # one fuse key, 600 jobs: two groups of at most 512
        sweep(3, training={"epochs": 2})  # another fuse key: a third group
        sweep(2, device="cpu", training={"batch_size": 64})  # a fourth
        sweep(5, device="gpu")  # a GPU group
        assert (value(cpu), value(gpu)) == (4, 1)
        with session_scope(pg_server_url) as s:  # a CPU worker takes the oldest group: 512 jobs
            token, jobs = queue.claim(s, "w:1", ("auto", "cpu"), 512, 60)
            queue.start_group(s, token, "CPU:0")
        assert len(jobs) == 512
        assert value(cpu) == 4  # 3 queued groups (88 jobs left of the first) and 1 running
        with session_scope(pg_server_url) as s:  # a GPU worker takes the oldest group it accepts: the 88
            token, jobs = queue.claim(s, "g:1", ("auto", "gpu"), 512, 60)
            queue.start_group(s, token, "GPU:0")
        assert len(jobs) == 88
        assert (value(cpu), value(gpu)) == (3, 2)  # running groups count for the device they run on
    assert (replicas(cpu, 3), replicas(gpu, 2)) == (3, 2)
    assert replicas(cpu, 50) == cpu["spec"]["maxReplicaCount"]


def local(command: list[str]) -> list[str]:
    """A container's command as a local process: `bumpfit` is this checkout's `python -m app.cli`."""
    return [sys.executable, "-m", "app.cli", *command[1:]] if command[0] == "bumpfit" else command


def environment(container: dict[str, Any], docs: list[dict[str, Any]], url: str, keys: str = "") -> dict[str, str]:
    """The container's environment: its ConfigMap and values, the Secret's keys from the test's own
    (the database `url`, the API `keys` entries)."""
    env = {**os.environ, "BUMPFIT_DATABASE_URL": url, "BUMPFIT_COMPILE_CACHE_DIR": ""}
    for source in container.get("envFrom", []):
        env.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    secrets = {"database-url": url, "api-keys": keys}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            env[var["name"]] = secrets[var["valueFrom"]["secretKeyRef"]["key"]]
    return env


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Local processes started by a test, stopped (SIGTERM, as the kubelet does) at its end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


@needs_kubectl
@pytest.mark.heavy
def test_the_pods_commands_and_probes_run_as_local_processes(
    pg_server_url: str, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    from app.http.auth import new_key

    key, entry = new_key("submit")
    docs = render("base")
    with engine_for(pg_server_url).begin() as c:  # a database as a new cluster finds it: empty
        c.execute(text("DROP SCHEMA public CASCADE"))
        c.execute(text("CREATE SCHEMA public"))
    job = find(docs, "Job", "bumpfit-migrate")["spec"]["template"]["spec"]["containers"][0]
    done = subprocess.run(local(job["command"] + job["args"]), env=environment(job, docs, pg_server_url), cwd=ROOT)
    assert done.returncode == 0 and migrate.current(pg_server_url) == migrate.head()

    api = find(docs, "Deployment", "bumpfit-api")["spec"]["template"]["spec"]
    container = api["containers"][0]
    port = free_port()  # the container's 8000, on a free port here
    args = [str(port) if a == "8000" else a for a in container["args"]]
    init = api["initContainers"][0]
    assert (
        subprocess.run(local(init["command"] + init["args"]), env=environment(init, docs, pg_server_url)).returncode
        == 0
    )
    log = open(tmp_path / "api.log", "wb")  # noqa: SIM115 - closed with the process
    processes.append(
        subprocess.Popen(
            local(container["command"] + args),
            env=environment(container, docs, pg_server_url, entry),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    )
    probe = container["readinessProbe"]["httpGet"]

    def ready() -> bool:
        try:
            headers = {h["name"]: h["value"] for h in probe.get("httpHeaders", [])}
            return httpx.get(f"http://127.0.0.1:{port}{probe['path']}", headers=headers, timeout=4).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, 60, "the API's readiness probe")
    worker = find(docs, "Deployment", "bumpfit-cpu-worker")["spec"]["template"]["spec"]["containers"][0]
    env = environment(worker, docs, pg_server_url)
    check = local(worker["livenessProbe"]["exec"]["command"])
    assert subprocess.run(check, env=env, capture_output=True).returncode == 1  # no worker yet: unhealthy
    processes.append(subprocess.Popen(local(worker["command"] + worker["args"]), env=env, cwd=ROOT))
    wait_for(lambda: subprocess.run(check, env=env, capture_output=True).returncode == 0, 120, "the worker's probe")
    headers = {"Authorization": f"Bearer {key}"}
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30)
    job_id = http.post("/v1/jobs", json=seed_job(n=500, epochs=1)).json()["id"]
    wait_for(lambda: http.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded", 120, "the job")
    # the worker and the API stop by SIGTERM in the fixture, as a pod's do
