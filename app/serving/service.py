"""Models are succeeded jobs; predictions use the NumPy form of the layers' math. A deleted version
keeps its job with the version number negated, so the number is never given again (as in MLflow)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.jobs.models import Artifact, Job, JobStatus
from app.model import families, networks, plan, recurrent
from app.model.data import FLOAT32_MAX, as_matrix
from app.serving.models import ModelLabel
from app.serving.schemas import (
    SIGNATURE,
    Dim,
    Metadata,
    ModelList,
    ModelMetadata,
    ModelOut,
    ModelSpec,
    SignatureDef,
    SignatureDefMap,
    TensorInfo,
    TensorShape,
    Version,
    VersionStatus,
)
from app.settings import Settings
from app.store.ids import looks_like_id


def _version(job: Job) -> Version:
    return Version(
        version=job.model_version or 0,
        job_id=job.id,
        layer="network" if plan.is_network(job.spec) else job.spec["layer"]["type"],
        params=job.params or {},
        metrics=job.metrics,
        created_at=job.finished_at,
    )


def _named(name: str) -> Any:
    """Jobs of model `name`. A name in the job-id format is only ever that job's own model: new
    requests cannot take such a name, and this keeps rows stored before that rule from doing so."""
    if looks_like_id(name):
        return and_(Job.model_name == name, Job.id == name)
    return Job.model_name == name


def _jobs(session: Session, name: str | None = None) -> list[Job]:
    stmt = select(Job).where(Job.status == JobStatus.SUCCEEDED, Job.model_version > 0)
    if name is not None:
        stmt = stmt.where(_named(name))
    return list(session.scalars(stmt.order_by(Job.model_name, Job.model_version)))


def labels(session: Session, name: str | None = None, names: list[str] | None = None) -> dict[str, dict[str, int]]:
    """{model name: {label: version}}, for one model, the models in `names`, or all."""
    stmt = select(ModelLabel.model_name, ModelLabel.label, ModelLabel.version).order_by(ModelLabel.label)
    if name is not None:
        stmt = stmt.where(ModelLabel.model_name == name)
    if names is not None:
        stmt = stmt.where(ModelLabel.model_name.in_(names))
    out: dict[str, dict[str, int]] = {}
    for model, label, version in session.execute(stmt):
        out.setdefault(model, {})[label] = version
    return out


def _model(name: str, versions: list[Version], labelled: dict[str, int]) -> ModelOut:
    return ModelOut(
        name=name,
        latest_version=versions[-1].version,
        versions=versions,
        labels=labelled,
        model_version_status=[VersionStatus(version=str(v.version)) for v in reversed(versions)],
    )


def list_models(session: Session, limit: int, page_token: str | None = None) -> ModelList:
    """A page of models by name, each with its versions and labels; `next_page_token` continues."""
    names = select(Job.model_name).where(Job.status == JobStatus.SUCCEEDED, Job.model_version > 0).distinct()
    if page_token is not None:
        names = names.where(Job.model_name > _name_after(page_token))
    page = list(session.scalars(names.order_by(Job.model_name).limit(limit + 1)))
    more, page = len(page) > limit, page[:limit]
    by_name: dict[str, list[Version]] = {name: [] for name in page}
    if page:
        stmt = select(Job).where(Job.status == JobStatus.SUCCEEDED, Job.model_version > 0, Job.model_name.in_(page))
        for job in session.scalars(stmt.order_by(Job.model_name, Job.model_version)):
            by_name[job.model_name].append(_version(job))
    named = labels(session, names=page)
    token = base64.urlsafe_b64encode(page[-1].encode()).decode() if more else None
    return ModelList(models=[_model(n, v, named.get(n, {})) for n, v in by_name.items()], next_page_token=token)


def _name_after(page_token: str) -> str:
    """The last model name of the page before, from its token (422 naming the token if malformed)."""
    try:
        return base64.b64decode(page_token.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidInput.at("page_token", "not a token returned by this endpoint") from None


def get_model(session: Session, name: str) -> ModelOut:
    """One model's versions, labels and status, or 404."""
    versions = [_version(j) for j in _jobs(session, name)]
    if not versions:
        raise NotFound(f"no model named {name!r} (a model appears when a job with that name succeeds)")
    return _model(name, versions, labels(session, name).get(name, {}))


def label_version(session: Session, name: str, label: str) -> int:
    """The version a label of model `name` points at, or 404."""
    version = session.scalar(select(ModelLabel.version).where(ModelLabel.model_name == name, ModelLabel.label == label))
    if version is None:
        raise NotFound(f"model {name!r} has no label {label!r}; set one with PUT /v1/models/{name}/labels/{label}")
    return version


def version_job(session: Session, name: str, version: int | None) -> Job:
    """The succeeded job behind a model version (latest when `version` is None)."""
    stmt = select(Job).where(Job.status == JobStatus.SUCCEEDED, Job.model_version > 0, _named(name))
    if version is None:
        stmt = stmt.order_by(Job.model_version.desc()).limit(1)
    else:
        stmt = stmt.where(Job.model_version == version)
    job = session.scalar(stmt)
    if job is None:
        what = f"version {version} of model {name!r}" if version is not None else f"model {name!r}"
        raise NotFound(f"no {what}")
    return job


def metadata(job: Job) -> Metadata:
    """TensorFlow Serving's metadata of a version: its one signature, `serving_default`, takes and
    gives float32 rows of the trained feature count (a single layer's output is as wide; a
    network's is its last layer's width); a sequence model takes [-1, timesteps, features]."""
    width, out_width = job.spec["data"].get("features", 1), plan.output_width(job.spec)
    steps = job.spec["data"].get("timesteps")

    def tensor(name: str, *sizes: int) -> TensorInfo:
        dims = [Dim(size="-1", name=""), *(Dim(size=str(size), name="") for size in sizes)]
        return TensorInfo(dtype="DT_FLOAT", tensor_shape=TensorShape(dim=dims, unknown_rank=False), name=name)

    signature = SignatureDef(
        inputs={"x": tensor("serving_default_x:0", *([steps] if steps else []), width)},
        outputs={"output_0": tensor("StatefulPartitionedCall:0", out_width)},
        method_name="tensorflow/serving/predict",
    )
    return Metadata(
        model_spec=ModelSpec(name=job.model_name, signature_name="", version=str(job.model_version)),
        metadata=ModelMetadata(signature_def=SignatureDefMap(signature_def={SIGNATURE: signature})),
    )


def weights(session: Session, job: Job) -> dict[str, np.ndarray]:
    """A network version's weights (and normalisation), as its worker stored them."""
    if job.id not in _WEIGHTS:
        blob = session.scalar(select(Artifact.weights).where(Artifact.job_id == job.id))
        if blob is None:
            raise NotFound(f"job {job.id} has no stored weights")
        _WEIGHTS[job.id] = networks.unpack(blob)
        while len(_WEIGHTS) > WEIGHTS_CACHE:
            _WEIGHTS.pop(next(iter(_WEIGHTS)))
    return _WEIGHTS[job.id]


_WEIGHTS: dict[str, dict[str, np.ndarray]] = {}  # by job id: a version's weights never change
WEIGHTS_CACHE = 64  # network versions whose weights the API keeps in memory


def infer(session: Session, job: Job, instances: list[Any], settings: Settings, field: str) -> list[Any]:
    """The version's outputs for rows of raw features, as its `.keras` artifact computes them (a
    network's from its stored weights, a single layer's from its parameters); errors name `field`.
    The one prediction of the TF Serving and V2 routes."""
    if plan.is_network(job.spec):
        return predict_network(job, weights(session, job), instances, settings, field)
    return predict(job, instances, settings, field)


def predict_network(
    job: Job, stored: dict[str, np.ndarray], instances: list[Any], settings: Settings, field: str
) -> list[Any]:
    """A network's outputs for rows of raw features, or sequences of them (timesteps, features)
    (NumPy, float32, as the artifact computes them): a number per row when the last layer has one
    unit, else a list."""
    features, steps = job.spec["data"]["features"], job.spec["data"].get("timesteps")
    if steps:
        x = recurrent.as_sequences(instances, field, (steps, features), settings.max_predict_instances, FLOAT32_MAX)
    else:
        x = as_matrix(instances, field, settings.max_predict_instances, settings.max_features)
    if x.shape[-1] != features:
        raise InvalidInput.at(
            field,
            f"model {job.model_name} v{job.model_version} takes rows of {features} features "
            f"({', '.join(job.spec['data'].get('columns', [])[:10])}), got {x.shape[-1]}",
        )
    y = networks.forward(job.spec["model"]["layers"], stored, x).astype(float)
    out: list[Any] = y[:, 0].tolist() if y.shape[1] == 1 else y.tolist()
    return out


def predict(job: Job, instances: list[Any], settings: Settings, field: str = "instances") -> list[Any]:
    """Evaluate the job's learned function in float32, as the trained Keras layer does; errors
    name `field` (`instances` or `inputs`)."""
    flat = bool(instances) and not isinstance(instances[0], list)
    x = as_matrix(instances, field, settings.max_predict_instances, settings.max_features)
    params = {k: np.asarray(v, dtype=np.float32).reshape(-1) for k, v in (job.params or {}).items()}
    width = max(p.size for p in params.values())
    if width > 1 and x.shape[1] != width:
        raise InvalidInput.at(
            field, f"model {job.model_name} v{job.model_version} takes rows of {width} features, got {x.shape[1]}"
        )
    features = job.spec["data"].get("features", 1)
    if width == 1 and features > 1 and x.shape[1] != features:
        raise InvalidInput.at(
            field, f"model {job.model_name} was trained on rows of {features} features, got {x.shape[1]}"
        )
    with np.errstate(all="ignore"):
        y = families.evaluate(np, job.spec["layer"]["type"], x, params)
    out = y.astype(np.float32).astype(float)
    rows: list[Any] = out[:, 0].tolist() if flat else out.tolist()
    return rows


def artifact(session: Session, job: Job) -> bytes:
    """The `.keras` file the worker saved for the job."""
    blob = session.get(Artifact, job.id)
    if blob is None:
        raise NotFound(f"job {job.id} has no stored artifact")
    return blob.data
