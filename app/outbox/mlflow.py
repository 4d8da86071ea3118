"""The MLflow export, over MLflow's REST API (no MLflow package in the API process): each ended job
becomes a run (a sweep's jobs the children of a parent run) with its spec as params, its history as
per-epoch metrics (step = epoch), tags and its `.keras` file; each model version is registered, and
the model's labels become its aliases. Every step looks first, so a repeat after a crash adds nothing.
It speaks through the webhooks' guarded client (app/outbox/transport.py): the same egress policy, one
deadline per call, replies read raw up to REPLY_BYTES; the dispatcher gives a delivery up after
BUMPFIT_MLFLOW_MAX_ATTEMPTS."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jobs.models import Artifact, HistoryRow, Job, JobStatus
from app.outbox import transport
from app.outbox.dispatch import Retry
from app.outbox.egress import Policy, Refused
from app.outbox.events import JOB_EVENTS, LABELS, SWEEP_DONE
from app.outbox.models import OutboxEvent
from app.outbox.runs import as_number, flatten, millis, numbers, tags_of
from app.serving.models import ModelLabel
from app.settings import Settings, public_url
from app.store.db import session_scope

log = logging.getLogger("bumpfit.outbox")
API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
EXPERIMENT = "bumpfit"  # every run goes to this experiment, created on first use
RUN_STATUS: dict[str, str] = {
    JobStatus.SUCCEEDED: "FINISHED",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELLED: "KILLED",
}
BATCH = 900  # metrics per log-batch call (MLflow takes up to 1000)
KERAS_PATH = "model/model.keras"
CALL_SECONDS = 120.0  # one REST call's deadline, all told (an artifact upload included)
REPLY_BYTES = 16 * 1024 * 1024  # of a reply read (a run's params and latest metrics can be large)


class Exporter:
    """Delivers outbox events to the MLflow tracking server at `settings.mlflow_tracking_uri`."""

    def __init__(self, settings: Settings) -> None:
        self.base = settings.mlflow_tracking_uri.rstrip("/")
        policy = Policy.of(settings.webhook_allow_private, settings.webhook_allow_cidrs)
        self.http = transport.client(policy)
        self.experiment: str | None = None
        try:  # say so at start rather than only in each delivery's error
            policy.check_host(urlsplit(self.base).hostname or "")
        except Refused as exc:
            log.warning(
                "MLflow at %s will be refused: %s (BUMPFIT_WEBHOOK_ALLOW_PRIVATE or BUMPFIT_WEBHOOK_ALLOW_CIDRS)",
                public_url(self.base),
                exc,
            )

    # -- REST ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> transport.Reply:
        """One request within CALL_SECONDS; Retry while MLflow is unreachable, refused or answers 5xx."""
        try:
            r = transport.fetch(self.http, method, self.base + path, seconds=CALL_SECONDS, limit=REPLY_BYTES, **kwargs)
        except Refused as exc:
            raise Retry(f"MLflow refused: {exc}") from None
        except httpx.HTTPError as exc:
            raise Retry(f"MLflow unreachable ({type(exc).__name__})") from None
        if r.status >= 500:
            raise Retry(f"MLflow answered {r.status}")
        return r

    def call(self, method: str, path: str, body: Any = None, params: Any = None, ok: tuple[str, ...] = ()) -> Any:
        """One REST call; Retry while MLflow is down or answers 5xx; an error code in `ok` gives None."""
        r = self.request(method, path, json=body, params=params)
        data = _json(r, method, path)
        if r.status >= 400:
            code = data.get("error_code", "") if isinstance(data, dict) else ""
            if code in ok:
                return None
            raise RuntimeError(f"MLflow {method} {path}: {r.status} {code} {r.body[:300]!r}")
        return data if data is not None else {}

    def experiment_id(self) -> str:
        """The `bumpfit` experiment's id, created if it does not exist (a create that finds it made
        meanwhile looks once more; a server that says both is an error, not a loop)."""
        if self.experiment is None:
            by_name = {"experiment_name": EXPERIMENT}
            got = self.call("GET", f"{API}/experiments/get-by-name", params=by_name, ok=("RESOURCE_DOES_NOT_EXIST",))
            if got is None:
                made = self.call(
                    "POST", f"{API}/experiments/create", {"name": EXPERIMENT}, ok=("RESOURCE_ALREADY_EXISTS",)
                )
                if made is None:
                    got = self.call("GET", f"{API}/experiments/get-by-name", params=by_name)
                    self.experiment = str(got["experiment"]["experiment_id"])
                else:
                    self.experiment = str(made["experiment_id"])
            else:
                self.experiment = str(got["experiment"]["experiment_id"])
        return self.experiment

    def find_run(self, tag: str, value: str) -> dict[str, Any] | None:
        """The active run tagged `tag` = `value`, if any."""
        found = self.call(
            "POST",
            f"{API}/runs/search",
            {"experiment_ids": [self.experiment_id()], "filter": f"tags.`{tag}` = '{value}'", "max_results": 1},
        )
        runs = found.get("runs", [])
        return runs[0] if runs else None

    def create_run(self, name: str, start: int, tags: dict[str, Any]) -> dict[str, Any]:
        """A new run."""
        body = {"experiment_id": self.experiment_id(), "run_name": name, "start_time": start, "tags": tags_of(tags)}
        return dict(self.call("POST", f"{API}/runs/create", body)["run"])

    # -- events -------------------------------------------------------------------------------

    def deliver(self, url: str, event: OutboxEvent) -> None:
        """Export what the event reports (the dispatcher's MLflow target)."""
        if event.type in JOB_EVENTS.values():
            self.export_job(url, event.subject)
        elif event.type == SWEEP_DONE:
            self.end_sweep(url, event.subject)
        elif event.type == LABELS:
            self.sync_aliases(url, event.payload["data"]["name"])

    def parent(self, sweep_id: str, created: datetime) -> str:
        """The sweep's parent run id, created on first use."""
        run = self.find_run("bumpfit.sweep_run", sweep_id)
        if run is None:
            run = self.create_run(f"sweep {sweep_id}", millis(created), {"bumpfit.sweep_run": sweep_id})
        return str(run["info"]["run_id"])

    def export_job(self, url: str, job_id: str) -> None:
        """The job as a finished run; a run left unfinished by a crash is replaced, a finished one kept."""
        with session_scope(url, readonly=True) as s:
            job = s.scalar(select(Job).where(Job.id == job_id))
            if job is None:
                return  # deleted since: nothing to export
            history = list(s.scalars(select(HistoryRow).where(HistoryRow.job_id == job_id).order_by(HistoryRow.epoch)))
            blob = s.get(Artifact, job_id)
            keras = blob.data if blob is not None else None
            s.expunge_all()
        run = self.find_run("bumpfit.job_id", job_id)
        if run is not None and run["info"]["status"] != "RUNNING":
            run_id = str(run["info"]["run_id"])
        else:
            if run is not None:  # a crash mid-export: start again rather than log twice
                self.call("POST", f"{API}/runs/delete", {"run_id": run["info"]["run_id"]})
            run_id = self.log_run(job, history, keras)
        if job.status == JobStatus.SUCCEEDED and keras is not None and (job.model_version or 0) > 0:
            self.register(job, run_id)
            self.sync_aliases(url, job.model_name)

    def log_run(self, job: Job, history: list[HistoryRow], keras: bytes | None) -> str:
        """Create the run, log params, metrics, tags and the artifact, then end it."""
        tags: dict[str, Any] = {
            "bumpfit.job_id": job.id,
            "bumpfit.status": job.status,
            "bumpfit.model_name": job.model_name,
            "bumpfit.model_version": job.model_version if (job.model_version or 0) > 0 else None,
            "bumpfit.worker": job.worker,
            "bumpfit.device": job.device,
            "bumpfit.error": json.dumps(job.error) if job.error else None,
        }
        if job.sweep_id:
            tags["bumpfit.sweep_id"] = job.sweep_id
            tags["mlflow.parentRunId"] = self.parent(job.sweep_id, job.created_at)
        run = self.create_run(job.id, millis(job.started_at or job.created_at), tags)
        run_id, artifact_uri = str(run["info"]["run_id"]), str(run["info"]["artifact_uri"])
        params = [{"key": k, "value": v} for k, v in flatten(job.spec).items()]
        metrics: list[dict[str, Any]] = []
        for row in history:
            values = {"loss": row.loss, "val_loss": row.val_loss, **numbers(row.params)}
            for key, value in values.items():
                number = as_number(value)
                if number is not None:
                    metrics.append({"key": key, "value": number, "timestamp": millis(row.timestamp), "step": row.epoch})
        last = history[-1].epoch if history else 0
        for key, value in (job.metrics or {}).items():
            number = as_number(value)
            if number is not None:
                metrics.append(
                    {"key": f"final_{key}", "value": number, "timestamp": millis(job.finished_at), "step": last}
                )
        for i in range(0, max(len(params), 1), 100):
            self.call("POST", f"{API}/runs/log-batch", {"run_id": run_id, "params": params[i : i + 100]})
        for i in range(0, len(metrics), BATCH):
            self.call("POST", f"{API}/runs/log-batch", {"run_id": run_id, "metrics": metrics[i : i + BATCH]})
        if keras is not None:
            self.upload(artifact_uri, KERAS_PATH, keras)
        end = {"run_id": run_id, "status": RUN_STATUS.get(job.status, "FINISHED"), "end_time": millis(job.finished_at)}
        self.call("POST", f"{API}/runs/update", end)
        return run_id

    def upload(self, artifact_uri: str, path: str, data: bytes) -> None:
        """PUT a file through the server's artifact proxy (`mlflow-artifacts:/...` URIs)."""
        if not artifact_uri.startswith("mlflow-artifacts:"):
            raise RuntimeError(f"cannot upload to {artifact_uri.split(':')[0]}: run the server with --serve-artifacts")
        where = artifact_uri.removeprefix("mlflow-artifacts:").lstrip("/")
        r = self.request("PUT", f"{ARTIFACTS}/{where}/{path}", content=data)
        if r.status >= 400:
            raise RuntimeError(f"MLflow PUT {ARTIFACTS}/.../{path}: {r.status} {r.body[:300]!r}")

    def register(self, job: Job, run_id: str) -> None:
        """The run's model as a version of the registered model of the same name (once)."""
        name = job.model_name
        self.call("POST", f"{API}/registered-models/create", {"name": name}, ok=("RESOURCE_ALREADY_EXISTS",))
        if self.versions(name).get(job.model_version or 0) is None:
            run = self.call("GET", f"{API}/runs/get", params={"run_id": run_id})["run"]
            body = {
                "name": name,
                "source": f"{run['info']['artifact_uri']}/model",
                "run_id": run_id,
                "tags": tags_of({"bumpfit.version": job.model_version, "bumpfit.job_id": job.id}),
            }
            self.call("POST", f"{API}/model-versions/create", body)

    def versions(self, name: str) -> dict[int, str]:
        """{bumpfit version: MLflow version} of a registered model, from the versions' tags."""
        found = self.call("GET", f"{API}/model-versions/search", params={"filter": f"name='{name}'"})
        out: dict[int, str] = {}
        for v in found.get("model_versions", []):
            tags = {t["key"]: t["value"] for t in v.get("tags", [])}
            if "bumpfit.version" in tags:
                out[int(tags["bumpfit.version"])] = str(v["version"])
        return out

    def sync_aliases(self, url: str, name: str) -> None:
        """Make the registered model's aliases the model's labels; Retry while a labelled version is
        not registered yet (its job's export comes first)."""
        with session_scope(url, readonly=True) as s:
            labels = _labels(s, name)
        model = self.call("GET", f"{API}/registered-models/get", params={"name": name}, ok=("RESOURCE_DOES_NOT_EXIST",))
        if model is None:
            if labels:
                raise Retry(f"model {name} is not registered in MLflow yet")
            return
        have = {a["alias"]: a["version"] for a in model["registered_model"].get("aliases", [])}
        versions = self.versions(name)
        for label, version in labels.items():
            if version not in versions:
                raise Retry(f"version {version} of {name} is not registered in MLflow yet")
            if have.get(label) != versions[version]:
                body = {"name": name, "alias": label, "version": versions[version]}
                self.call("POST", f"{API}/registered-models/alias", body)
        for alias in set(have) - set(labels):
            self.call("DELETE", f"{API}/registered-models/alias", params={"name": name, "alias": alias})

    def end_sweep(self, url: str, sweep_id: str) -> None:
        """The sweep's parent run, ended (created if no child made it)."""
        with session_scope(url, readonly=True) as s:
            jobs = list(s.execute(select(Job.created_at, Job.finished_at).where(Job.sweep_id == sweep_id)))
        if not jobs:
            return
        run_id = self.parent(sweep_id, min(j.created_at for j in jobs))
        end = max((j.finished_at for j in jobs if j.finished_at is not None), default=None)
        self.call("POST", f"{API}/runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": millis(end)})


def _json(r: transport.Reply, method: str, path: str) -> Any:
    """A reply's JSON body (None if it has none); RuntimeError for one cut at REPLY_BYTES or encoded."""
    if not r.body or "json" not in r.headers.get("content-type", ""):
        return None
    if not r.whole or r.headers.get("content-encoding", "identity") != "identity":
        raise RuntimeError(f"MLflow {method} {path}: a reply over {REPLY_BYTES} bytes or compressed")
    return json.loads(r.body)


def _labels(session: Session, name: str) -> dict[str, int]:
    rows = session.execute(select(ModelLabel.label, ModelLabel.version).where(ModelLabel.model_name == name))
    return {label: version for label, version in rows}
