"""Open Inference Protocol (V2) REST bodies, as KServe and Triton define them: health, server and
model metadata, inference requests and responses (tensors as JSON, or as binary data after the JSON)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, Strict

# A value as JSON gives it: numbers for numeric datatypes, booleans for BOOL, strings for BYTES.
Item = Annotated[float, Strict()] | bool | str
# Row-major values, flat or nested by rows (the models here take tensors of rank 1 or 2).
TensorData = list[Item | list[Item] | list[list[Item]]]
Parameters = dict[str, bool | int | float | str]
PARAMETERS = Field(
    None,
    description="V2 parameters; `binary_data_size` (an input's bytes after the JSON), `binary_data` (an output "
    "sent as bytes), `binary_data_output` (every output as bytes) are understood, others ignored",
)


class V2Error(BaseModel):
    """The V2 error body: one message."""

    error: str


class Live(BaseModel):
    """`GET /v2/health/live`: the process answers."""

    live: Literal[True] = True


class Ready(BaseModel):
    """`GET /v2/health/ready`: the database answers and is at the latest migration."""

    ready: Literal[True] = True


class ModelReady(BaseModel):
    """`GET /v2/models/{name}[/versions/{v}]/ready`: every stored version serves."""

    name: str
    ready: Literal[True] = True


class ServerMetadata(BaseModel):
    """`GET /v2`: the server's name, version and the protocol extensions it supports."""

    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    """A model input or output: name, V2 datatype and shape (-1: any size)."""

    name: str
    datatype: str = Field(description="FP32: the model computes in float32")
    shape: list[int]


class V2ModelMetadata(BaseModel):
    """`GET /v2/models/{name}[/versions/{v}]`: the model's versions, inputs and outputs."""

    name: str
    versions: list[str] = Field(description="every version number of the model, as decimal strings")
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class RequestInput(BaseModel):
    """One input tensor: JSON `data` (row-major, flat or nested), or `parameters.binary_data_size`
    bytes (little-endian) in the binary part of the request."""

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = PARAMETERS
    # Checked item by item when the tensor is read (app.serving.v2_tensors.array): 10,000 numbers
    # through pydantic's union took longer than the prediction.
    data: Annotated[TensorData | None, SkipValidation] = None


class RequestOutput(BaseModel):
    """An output asked for by name; `parameters.binary_data` asks for it as bytes."""

    name: str
    parameters: Parameters | None = PARAMETERS


class InferRequest(BaseModel):
    """`POST .../infer`: input tensors, optionally which outputs and how (JSON or binary). Other fields
    (KServe's client sends `model_name`) are ignored."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"inputs": [{"name": "x", "shape": [2, 1], "datatype": "FP32", "data": [0.1, 0.2]}]}]
        },
    )

    id: str | None = None
    parameters: Parameters | None = PARAMETERS
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    """One output tensor: flat row-major `data`, or `parameters.binary_data_size` bytes after the JSON."""

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[float] | None = None


class InferResponse(BaseModel):
    """The answer of `POST .../infer`: which version answered, and the output tensors."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]
