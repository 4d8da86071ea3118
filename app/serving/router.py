"""HTTP routes for models, predictions and artifacts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.deps import ReadSessionDep, SessionDep, SettingsDep
from app.ops.metrics import PREDICTIONS
from app.responses import ERRORS
from app.serving import service
from app.serving.schemas import ModelList, ModelOut, PredictRequest, PredictResponse

router = APIRouter(prefix="/v1/models", tags=["models"])
VersionPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="model version, from 1")]


@router.get("", response_model=ModelList, summary="List models")
def list_models(session: SessionDep) -> ModelList:
    """Every succeeded job is a model version; names are `model_name` or the job id."""
    return service.list_models(session)


@router.get("/{name}", response_model=ModelOut, summary="Get a model", responses=ERRORS)
def get_model(name: str, session: SessionDep) -> ModelOut:
    """The model's versions, each with its job id and learned parameters."""
    return service.get_model(session, name)


def _predict(
    name: str, version: int | None, req: PredictRequest, session: ReadSessionDep, settings: SettingsDep
) -> PredictResponse:
    job = service.version_job(session, name, version)
    predictions = service.predict(job, req.instances, settings)
    PREDICTIONS.inc(len(predictions))
    return PredictResponse(predictions=predictions, model=name, version=job.model_version or 0)


@router.post(
    "/{name}:predict", response_model=PredictResponse, summary="Predict with the latest version", responses=ERRORS
)
def predict_latest(name: str, req: PredictRequest, session: ReadSessionDep, settings: SettingsDep) -> PredictResponse:
    """TensorFlow Serving's row format: `{"instances": [...]}` -> `{"predictions": [...]}`."""
    return _predict(name, None, req, session, settings)


@router.post(
    "/{name}/versions/{version}:predict",
    response_model=PredictResponse,
    summary="Predict with one version",
    responses=ERRORS,
)
def predict_version(
    name: str, version: VersionPath, req: PredictRequest, session: ReadSessionDep, settings: SettingsDep
) -> PredictResponse:
    """As the latest-version route, for a pinned version."""
    return _predict(name, version, req, session, settings)


@router.get(
    "/{name}/versions/{version}/artifact",
    summary="Download the .keras file",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **ERRORS},
)
def get_artifact(name: str, version: VersionPath, session: SessionDep) -> Response:
    """A `.keras` file; `import workers.layers` then `keras.saving.load_model(path)` opens it."""
    job = service.version_job(session, name, version)
    return Response(
        service.artifact(session, job),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}-v{version}.keras"'},
    )
