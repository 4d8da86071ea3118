"""HTTP routes for uploaded datasets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, UploadFile

from app.datasets import service
from app.datasets.models import Dataset
from app.datasets.schemas import DatasetList, DatasetOut
from app.errors import NotFound
from app.http.deps import SessionDep, SettingsDep
from app.http.quota import CallerDep
from app.http.responses import ERRORS
from app.store import lifecycle

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


def parsed_upload(file: UploadFile, settings: SettingsDep) -> service.Parsed:
    """The upload read and validated, in a worker thread and before a database session is opened,
    so a large file neither blocks the event loop nor holds the database's write lock."""
    return service.parse(file.filename or "upload", file.file, file.size, settings)


@router.post(
    "",
    response_model=DatasetOut,
    status_code=201,
    summary="Upload a dataset",
    responses={
        200: {"model": DatasetOut, "description": "The same file was uploaded before: that dataset, stored once"},
        413: {"description": "Over the upload limit, max_points / max_features / max_cells, or max_dataset_bytes"},
        **ERRORS,
    },
)
def upload(
    parsed: Annotated[service.Parsed, Depends(parsed_upload)],
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    response: Response,
) -> DatasetOut:
    """Multipart field `file`: a CSV with columns x..., y... (header optional; any line ending,
    quotes, a BOM, `numpy.savetxt` output) or an `.npz` with arrays `x` and `y`. y must be shaped
    like x: the layers are element-wise. The file (and an `.npz`'s arrays once inflated) may hold
    up to `BUMPFIT_MAX_UPLOAD_BYTES` (64 MiB by default); values must lie within +-1e12. A file
    uploaded before (the same bytes, whatever its name) is stored once: the answer is that dataset,
    with 200. A caller stores at most `BUMPFIT_MAX_DATASET_BYTES` of uploads (413 past it)."""
    found = service.find_upload(session, parsed.sha256)
    if found is not None:
        response.status_code = 200
        return DatasetOut.model_validate(found, from_attributes=True)
    stored = service.store(session, parsed, caller, settings.max_dataset_bytes)
    return DatasetOut.model_validate(stored, from_attributes=True)


@router.get("/{dataset_id}", response_model=DatasetOut, summary="Get a dataset's description", responses=ERRORS)
def get(dataset_id: str, session: SessionDep) -> DatasetOut:
    """Its size and feature count."""
    ds = session.get(Dataset, dataset_id)
    if ds is None:
        raise NotFound(f"no dataset with id {dataset_id!r}")
    return DatasetOut.model_validate(ds, from_attributes=True)


@router.get("", response_model=DatasetList, summary="List datasets, newest first", responses=ERRORS)
def list_datasets(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50, page_token: str | None = None
) -> DatasetList:
    """Uploads and the datasets inline data was stored as; pass `next_page_token` back as `page_token`."""
    return service.list_datasets(session, limit, page_token)


@router.delete("/{dataset_id}", status_code=204, summary="Delete a dataset", responses=ERRORS)
def delete(dataset_id: str, session: SessionDep) -> Response:
    """Delete a dataset; 409 while a queued or running job trains on it. Finished jobs keep their results."""
    lifecycle.delete_dataset(session, dataset_id)
    return Response(status_code=204)
