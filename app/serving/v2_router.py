"""The Open Inference Protocol (V2) over REST, as KServe, Triton and MLServer speak it: health, server
and model metadata, readiness and inference with JSON or binary tensors. Models, versions and labels
are those of /v1/models; predictions come from the same `app.serving.service`. Errors are V2's
`{"error": "..."}` (`app.errors.shaped`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Request, Response
from sqlalchemy.orm import Session

from app import __version__
from app.errors import InvalidInput, is_v2
from app.http.deps import ReadSessionDep, SessionDep, SettingsDep
from app.jobs.models import Job
from app.ops.metrics import PREDICTIONS
from app.ops.router import readyz
from app.serving import service
from app.serving.schemas import SIGNATURE, TensorInfo
from app.serving.v2_schemas import (
    InferRequest,
    InferResponse,
    Live,
    ModelReady,
    Ready,
    ServerMetadata,
    TensorMetadata,
    V2Error,
    V2ModelMetadata,
)
from app.serving.v2_tensors import HEADER_LENGTH, Parsed, array, output, parse, render
from app.settings import Settings
from app.store import pages

router = APIRouter(prefix="/v2", tags=["inference"])
EXTENSIONS = ["binary_tensor_data"]
V2_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": V2Error, "description": "A request the model cannot take"},
    404: {"model": V2Error, "description": "No such model, version or label"},
    413: {"model": V2Error, "description": "Over a configured limit"},
}
VersionPath = Annotated[
    str, Path(max_length=64, description="a version number, or a label (`stable`) naming one", pattern=r"^[^/:]+$")
]


def _job(session: Session, name: str, version: str | None) -> Job:
    """The version a path names: latest, a number, or a label."""
    if version is None:
        return service.version_job(session, name, None)
    if (number := pages.decimal(version)) is not None:
        return service.version_job(session, name, number)
    return service.version_job(session, name, service.label_version(session, name, version))


def _tensor(name: str, info: TensorInfo) -> TensorMetadata:
    return TensorMetadata(name=name, datatype="FP32", shape=[int(d.size) for d in info.tensor_shape.dim])


def _signature(job: Job) -> tuple[list[TensorMetadata], list[TensorMetadata]]:
    """The version's inputs and outputs, from its TensorFlow Serving signature."""
    signature = service.metadata(job).metadata.signature_def.signature_def[SIGNATURE]
    return [_tensor(k, v) for k, v in signature.inputs.items()], [_tensor(k, v) for k, v in signature.outputs.items()]


def _metadata(session: Session, name: str, job: Job) -> V2ModelMetadata:
    inputs, outputs = _signature(job)
    versions = [str(v.version) for v in service.get_model(session, name).versions]
    return V2ModelMetadata(name=name, versions=versions, platform="bumpfit", inputs=inputs, outputs=outputs)


@router.get("/health/live", response_model=Live, summary="Server live")
def live() -> Live:
    """200 while the process answers."""
    return Live()


@router.get("/health/ready", response_model=Ready, summary="Server ready", responses={503: {"model": V2Error}})
def ready(request: Request) -> Ready:
    """200 when the database answers at the latest migration (as `/readyz`), else 503."""
    readyz(request)
    return Ready()


@router.get("", response_model=ServerMetadata, summary="Server metadata")
def server_metadata() -> ServerMetadata:
    """The server's name, version and the protocol extensions it supports."""
    return ServerMetadata(name="bumpfit", version=__version__, extensions=EXTENSIONS)


@router.get("/models/{name}", response_model=V2ModelMetadata, summary="Model metadata", responses=V2_ERRORS)
def model_metadata(name: str, session: SessionDep) -> V2ModelMetadata:
    """The latest version's input `x` and output `output_0`: FP32, shape [-1, features]."""
    return _metadata(session, name, _job(session, name, None))


@router.get(
    "/models/{name}/versions/{version}",
    response_model=V2ModelMetadata,
    summary="Model version metadata",
    responses=V2_ERRORS,
)
def version_metadata(name: str, version: VersionPath, session: SessionDep) -> V2ModelMetadata:
    """As the model's metadata, for a version number or a label."""
    return _metadata(session, name, _job(session, name, version))


@router.get("/models/{name}/ready", response_model=ModelReady, summary="Model ready", responses=V2_ERRORS)
def model_ready(name: str, session: SessionDep) -> ModelReady:
    """200 when the model has a version (every stored version serves), else 404."""
    _job(session, name, None)
    return ModelReady(name=name)


@router.get(
    "/models/{name}/versions/{version}/ready",
    response_model=ModelReady,
    summary="Model version ready",
    responses=V2_ERRORS,
)
def version_ready(name: str, version: VersionPath, session: SessionDep) -> ModelReady:
    """200 when the version (or label) exists, else 404."""
    _job(session, name, version)
    return ModelReady(name=name)


async def infer_body(request: Request) -> Parsed:
    """The request, read whole and split at `Inference-Header-Content-Length`."""
    return parse(await request.body(), request.headers.get(HEADER_LENGTH))


InferBody = Annotated[Parsed, Depends(infer_body)]
INFER_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferRequest"}},
            "application/octet-stream": {"schema": {"$ref": "#/components/schemas/BinaryInferRequest"}},
        },
        "description": "JSON, or with the header `Inference-Header-Content-Length: N` N bytes of JSON followed by "
        "each binary input's `binary_data_size` bytes, in input order",
    }
}
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": InferResponse,
        "content": {"application/octet-stream": {}},
        "description": "JSON; with binary outputs asked, `Inference-Header-Content-Length` bytes of JSON then the "
        "outputs' little-endian bytes",
    },
    **V2_ERRORS,
}


def _infer(name: str, version: str | None, body: Parsed, session: Session, settings: Settings) -> Response:
    job = _job(session, name, version)
    req = body.request
    (want_in,), (want_out,) = _signature(job)
    if len(req.inputs) != 1 or req.inputs[0].name != want_in.name:
        given = ", ".join(repr(t.name) for t in req.inputs) or "none"
        raise InvalidInput(f"model '{name}' takes one input, '{want_in.name}'; got {given}")
    x = array(req.inputs[0], body.binary.get(0), settings.max_predict_instances * settings.max_features)
    width, instance = want_in.shape[-1], want_in.shape[1:]
    if len(instance) > 1:  # sequences: [n, timesteps, features] exactly
        if list(x.shape[1:]) != instance or x.ndim != 3:
            raise InvalidInput(
                f"input '{want_in.name}': shape {list(x.shape)} does not match the model's {want_in.shape}"
            )
    elif not (x.ndim == 2 and x.shape[1] == width) and not (x.ndim == 1 and width == 1):
        raise InvalidInput(
            f"input '{want_in.name}': shape {list(x.shape)} does not match the model's [-1, {width}] "
            + ("(or [-1])" if width == 1 else "")
        )
    asked = req.outputs or []
    for o in asked:
        if o.name != want_out.name:
            raise InvalidInput(f"model '{name}' has one output, '{want_out.name}'; got '{o.name}'")
        if (o.parameters or {}).get("classification"):
            raise InvalidInput("the classification extension is not supported")
    everything_binary = (req.parameters or {}).get("binary_data_output") is True
    binary = {o.name for o in asked if (o.parameters or {}).get("binary_data", everything_binary) is True}
    if not asked and everything_binary:
        binary = {want_out.name}
    rows, field = (x if x.ndim == 3 else x.reshape(x.shape[0], -1)).tolist(), f"inputs.{want_in.name}"
    values = service.infer(session, job, rows, settings, field)
    y = np.asarray(values, dtype=np.float32).reshape(x.shape[0], -1)
    if x.ndim == 1 and y.shape[1] == 1:
        y = y[:, 0]
    PREDICTIONS.inc(x.shape[0])
    out = InferResponse(
        model_name=name, model_version=str(job.model_version), id=req.id, outputs=[output(want_out.name, y)]
    )
    content, header = render(out, {want_out.name: y}, binary)
    if header is None:
        return Response(content, media_type="application/json")
    return Response(content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header)})


@router.post(
    "/models/{name}/infer",
    response_model=InferResponse,
    summary="Infer with the latest version",
    responses=INFER_RESPONSES,
    openapi_extra=INFER_DOC,
)
def infer(name: str, body: InferBody, session: ReadSessionDep, settings: SettingsDep) -> Response:
    """One input `x` of shape [n, features] (or [n] for one feature), any numeric datatype, JSON or
    binary; one output `output_0`, FP32, as JSON unless `binary_data` asks for bytes."""
    return _infer(name, None, body, session, settings)


@router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=InferResponse,
    summary="Infer with a version or label",
    responses=INFER_RESPONSES,
    openapi_extra=INFER_DOC,
)
def infer_version(
    name: str, version: VersionPath, body: InferBody, session: ReadSessionDep, settings: SettingsDep
) -> Response:
    """As the latest-version route, for a version number or a label."""
    return _infer(name, version, body, session, settings)


def add_schemas(document: dict[str, Any]) -> None:
    """Put the request body's schema, which the routes read by hand (binary tails), in the document,
    and drop FastAPI's 422 from the /v2 routes, which answer a bad request with a V2 400."""
    for path, operations in document.get("paths", {}).items():
        if is_v2(path):
            for op in operations.values():
                op.get("responses", {}).pop("422", None)
    if "HTTPValidationError" not in json.dumps(document.get("paths", {})):
        for unused in ("HTTPValidationError", "ValidationError"):
            document.get("components", {}).get("schemas", {}).pop(unused, None)
    schema = InferRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(schema.pop("$defs", {}))
    schemas["InferRequest"] = schema
    schemas["BinaryInferRequest"] = {
        "type": "string",
        "format": "binary",
        "description": "`Inference-Header-Content-Length` bytes of InferRequest JSON, then the binary inputs' bytes",
    }
