"""HTTP routes for models: status, metadata, labels, predictions (TensorFlow Serving's REST API
where it applies), artifacts and deleting versions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from starlette.convertors import StringConvertor, register_url_convertor

from app.errors import BumpfitError
from app.http.deps import ReadSessionDep, SessionDep, SettingsDep, WriteSessionDep
from app.http.quota import CallerDep
from app.http.responses import ERRORS, ErrorResponse
from app.ops.metrics import PREDICTIONS
from app.serving import exports, labels, service
from app.serving.schemas import (
    ExportPending,
    LabelOut,
    LabelRequest,
    Metadata,
    ModelList,
    ModelOut,
    ModelStatus,
    PredictRequest,
    PredictResponse,
    VersionStatus,
)
from app.store import lifecycle


class LabelConvertor(StringConvertor):
    """A label path segment: no `:`, so `GET .../labels/stable:predict` is a wrong method (405), not a
    label named `stable:predict`."""

    regex = "[^/:]+"


register_url_convertor("label", LabelConvertor())
router = APIRouter(prefix="/v1/models", tags=["models"])
VersionPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="model version, from 1")]
# The routes added beside the contract's take `{version:int}`, so `GET .../versions/1:predict` stays a
# wrong method (405) rather than a version named `1:predict`; the contract's routes keep `{version}`.
LabelPath = Annotated[str, Path(max_length=64, description="a version label such as `stable`")]


@router.get("", response_model=ModelList, summary="List models by name", responses=ERRORS)
def list_models(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50, page_token: str | None = None
) -> ModelList:
    """Every succeeded job is a model version; names are `model_name` or the job id. Pass
    `next_page_token` back as `page_token` for the next page."""
    return service.list_models(session, limit, page_token)


@router.get("/{name}", response_model=ModelOut, summary="Get a model", responses=ERRORS)
def get_model(name: str, session: SessionDep) -> ModelOut:
    """The model's versions (each with its job id and learned parameters), its labels, and
    TensorFlow Serving's `model_version_status`."""
    return service.get_model(session, name)


@router.get(
    "/{name}/versions/{version:int}", response_model=ModelStatus, summary="Get a version's status", responses=ERRORS
)
def get_version_status(name: str, version: VersionPath, session: SessionDep) -> ModelStatus:
    """TensorFlow Serving's status of one version."""
    job = service.version_job(session, name, version)
    return ModelStatus(model_version_status=[VersionStatus(version=str(job.model_version))])


@router.get("/{name}/metadata", response_model=Metadata, summary="Latest version's metadata", responses=ERRORS)
def get_metadata(name: str, session: SessionDep) -> Metadata:
    """TensorFlow Serving's metadata: the `serving_default` signature's inputs and outputs."""
    return service.metadata(service.version_job(session, name, None))


@router.get(
    "/{name}/versions/{version:int}/metadata", response_model=Metadata, summary="A version's metadata", responses=ERRORS
)
def get_version_metadata(name: str, version: VersionPath, session: SessionDep) -> Metadata:
    """As the model's metadata, for a pinned version."""
    return service.metadata(service.version_job(session, name, version))


@router.get(
    "/{name}/labels/{label:label}/metadata",
    response_model=Metadata,
    summary="A labelled version's metadata",
    responses=ERRORS,
)
def get_label_metadata(name: str, label: LabelPath, session: SessionDep) -> Metadata:
    """As the model's metadata, for the version a label points at."""
    return service.metadata(service.version_job(session, name, service.label_version(session, name, label)))


@router.get("/{name}/labels/{label:label}", response_model=LabelOut, summary="Get a label", responses=ERRORS)
def get_label(name: str, label: LabelPath, session: SessionDep) -> LabelOut:
    """The version a label points at."""
    return labels.get(session, name, label)


@router.put("/{name}/labels/{label:label}", response_model=LabelOut, summary="Set a label", responses=ERRORS)
def put_label(name: str, label: LabelPath, req: LabelRequest, session: SessionDep) -> LabelOut:
    """Point a label (TensorFlow Serving's version label, MLflow's alias) at a version, creating or
    moving it. A labelled version cannot be deleted."""
    return labels.put(session, name, label, req.version)


@router.delete("/{name}/labels/{label:label}", status_code=204, summary="Delete a label", responses=ERRORS)
def delete_label(name: str, label: LabelPath, session: SessionDep) -> Response:
    """Remove a label; the version stays."""
    labels.delete(session, name, label)
    return Response(status_code=204)


def _predict(
    name: str, version: int | None, req: PredictRequest, session: ReadSessionDep, settings: SettingsDep
) -> PredictResponse:
    job = service.version_job(session, name, version)
    field, rows = req.rows
    values = service.infer(session, job, rows, settings, field)
    PREDICTIONS.inc(len(values))
    out = PredictResponse(model=name, version=job.model_version or 0)
    if field == "inputs":
        out.outputs = values
    else:
        out.predictions = values
    return out


@router.post(
    "/{name}:predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    summary="Predict with the latest version",
    responses=ERRORS,
)
def predict_latest(name: str, req: PredictRequest, session: ReadSessionDep, settings: SettingsDep) -> PredictResponse:
    """TensorFlow Serving's row format, `{"instances": [...]}` -> `{"predictions": [...]}`, or its
    columnar format, `{"inputs": [...]}` -> `{"outputs": [...]}`; `signature_name` may name the
    one signature, `serving_default`."""
    return _predict(name, None, req, session, settings)


@router.post(
    "/{name}/versions/{version}:predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    summary="Predict with one version",
    responses=ERRORS,
)
def predict_version(
    name: str, version: VersionPath, req: PredictRequest, session: ReadSessionDep, settings: SettingsDep
) -> PredictResponse:
    """As the latest-version route, for a pinned version."""
    return _predict(name, version, req, session, settings)


@router.post(
    "/{name}/labels/{label:label}:predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    summary="Predict with a labelled version",
    responses=ERRORS,
)
def predict_label(
    name: str, label: LabelPath, req: PredictRequest, session: ReadSessionDep, settings: SettingsDep
) -> PredictResponse:
    """As the latest-version route, for the version a label points at (TensorFlow Serving's path)."""
    return _predict(name, service.label_version(session, name, label), req, session, settings)


@router.get(
    "/{name}/versions/{version}/artifact",
    summary="Download the .keras file or a SavedModel",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}, "application/x-tar": {}}},
        202: {"model": ExportPending, "description": "The SavedModel is being made: ask again after Retry-After"},
        403: {"model": ErrorResponse, "description": "A SavedModel not made yet, asked for with a read key"},
        **ERRORS,
    },
)
def get_artifact(
    name: str,
    version: VersionPath,
    session: WriteSessionDep,
    caller: CallerDep,
    format: Annotated[
        Literal["keras", "saved_model"],
        Query(description="`keras` (the default), or `saved_model`: a tar of a TensorFlow SavedModel"),
    ] = "keras",
) -> Response:
    """A `.keras` file; `import workers.layers` then `keras.saving.load_model(path)` opens it. With
    `format=saved_model`, a tar holding `<version>/saved_model.pb` and `variables/` (TensorFlow Serving's
    layout) whose `serving_default` signature maps `x` to `output_0`: a worker makes it on the first
    request (202 with Retry-After until then) and it is kept. Asking for it to be made needs a key of
    scope `predict` or above; a read key gets only a SavedModel already made (or asked for), else 403."""
    job = service.version_job(session, name, version)
    if format == "keras":
        return Response(
            service.artifact(session, job),
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{name}-v{version}.keras"'},
        )
    export = exports.request(session, job, exports.SAVED_MODEL, may_ask=caller.allows("predict"))
    if export.status == exports.FAILED:
        raise BumpfitError(f"the SavedModel export of {name} v{version} failed: {export.error}")
    if export.status != exports.READY or export.data is None:
        body = ExportPending(status=export.status, message="a worker is making the SavedModel; ask again shortly")
        return JSONResponse(body.model_dump(), status_code=202, headers={"Retry-After": "1"})
    return Response(
        export.data,
        media_type="application/x-tar",
        headers={"Content-Disposition": f'attachment; filename="{name}-v{version}.saved_model.tar"'},
    )


@router.delete("/{name}/versions/{version:int}", status_code=204, summary="Delete a model version", responses=ERRORS)
def delete_version(name: str, version: VersionPath, session: SessionDep) -> Response:
    """Delete the version and its artifact, as MLflow's delete_model_version does: the job that
    trained it stays, with its results and history, and the number is not given again. 409 while
    a label points at it."""
    lifecycle.delete_version(session, name, version)
    return Response(status_code=204)
