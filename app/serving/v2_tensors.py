"""V2 tensors in and out: the request's JSON header and binary tail (the binary tensor data
extension), input arrays of any numeric datatype, and the response as JSON or JSON plus bytes."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from app.errors import InvalidInput, TooLarge
from app.serving.v2_schemas import InferRequest, InferResponse, RequestInput, ResponseOutput
from app.store import pages

HEADER_LENGTH = "Inference-Header-Content-Length"
# The numeric V2 datatypes and their little-endian NumPy forms; BOOL, BYTES and BF16 are refused.
DATATYPES = {
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
}


@dataclass
class Parsed:
    """A parsed inference request: the JSON part, and each input's raw bytes when sent as binary."""

    request: InferRequest
    binary: dict[int, bytes]


def parse(body: bytes, header_length: str | None) -> Parsed:
    """Split the body at `Inference-Header-Content-Length` (the whole body is JSON without it),
    validate the JSON and hand each binary input its `binary_data_size` bytes, in input order."""
    size = len(body)
    if header_length is not None:
        length = pages.decimal(header_length)
        if length is None or length > len(body):
            raise InvalidInput(
                f"{HEADER_LENGTH}: {header_length!r} is not a length within the body's {len(body)} bytes"
            )
        size = length
    try:
        request = InferRequest.model_validate_json(body[:size])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(f"invalid inference request: {where}: {first['msg']}") from None
    binary: dict[int, bytes] = {}
    offset = size
    for i, tensor in enumerate(request.inputs):
        nbytes = (tensor.parameters or {}).get("binary_data_size")
        if nbytes is None:
            continue
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise InvalidInput(f"input '{tensor.name}': binary_data_size must be a byte count, got {nbytes!r}")
        if offset + nbytes > len(body):
            raise InvalidInput(f"input '{tensor.name}': binary_data_size {nbytes} runs past the end of the body")
        binary[i] = body[offset : offset + nbytes]
        offset += nbytes
    if offset != len(body):
        raise InvalidInput(f"the body has {len(body) - offset} bytes after the last binary input")
    return Parsed(request, binary)


def _flatten(data: Sequence[object]) -> list[object]:
    out: list[object] = []
    stack: list[Iterator[object]] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def array(tensor: RequestInput, raw: bytes | None, max_elements: int) -> np.ndarray:
    """The input's values as a float32 array of its declared shape."""
    name = f"input '{tensor.name}'"
    dtype = DATATYPES.get(tensor.datatype)
    if dtype is None:
        raise InvalidInput(
            f"{name}: datatype {tensor.datatype!r} is not numeric; send FP32 (or {', '.join(DATATYPES)})"
        )
    if any(d < 0 for d in tensor.shape):
        raise InvalidInput(f"{name}: shape {tensor.shape} has a negative dimension")
    count = math.prod(tensor.shape)
    if count > max_elements:
        raise TooLarge(f"{name}: {count} elements, more than the limit {max_elements}")
    if raw is not None:
        want = count * np.dtype(dtype).itemsize
        if len(raw) != want:
            raise InvalidInput(f"{name}: {len(raw)} bytes of binary data, expected {want} for shape {tensor.shape}")
        values = np.frombuffer(raw, dtype=dtype)
    elif tensor.data is None:
        raise InvalidInput(f"{name}: no data (give `data`, or `parameters.binary_data_size` and the bytes)")
    else:
        if not isinstance(tensor.data, list):
            raise InvalidInput(f"{name}: data must be a list of numbers")
        flat = _flatten(tensor.data)
        if not all(type(v) is float or type(v) is int for v in flat):
            raise InvalidInput(f"{name}: data must be numbers for datatype {tensor.datatype}")
        if len(flat) != count:
            raise InvalidInput(f"{name}: {len(flat)} values in data, expected {count} for shape {tensor.shape}")
        values = np.asarray(flat, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = values.astype(np.float32).reshape(tensor.shape)
    if not np.isfinite(out).all():
        raise InvalidInput(f"{name}: NaN, infinite or beyond-float32 values are not allowed")
    return out


def render(response: InferResponse, values: dict[str, np.ndarray], binary: set[str]) -> tuple[bytes, int | None]:
    """The response body: outputs in `binary` as little-endian FP32 bytes after the JSON (and the
    JSON's length for the header), the others as flat JSON data."""
    tail: list[bytes] = []
    for out in response.outputs:
        arr = values[out.name].astype("<f4")
        if out.name in binary:
            raw = arr.tobytes()
            out.parameters = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            out.data = arr.reshape(-1).astype(float).tolist()
    header = json.dumps(response.model_dump(exclude_none=True), separators=(",", ":")).encode()
    return (header + b"".join(tail), len(header)) if tail else (header, None)


def output(name: str, arr: np.ndarray) -> ResponseOutput:
    """An output tensor's description, its data filled in by `render`."""
    return ResponseOutput(name=name, shape=list(arr.shape), datatype="FP32")
