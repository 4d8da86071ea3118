"""HTTP routes for uploaded datasets."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, UploadFile
from pydantic import BaseModel

from app import data as datalib
from app.datasets.models import Dataset
from app.deps import SessionDep, SettingsDep
from app.errors import NotFound, TooLarge
from app.jobs.service import new_id
from app.responses import ERRORS

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


class DatasetOut(BaseModel):
    """An uploaded dataset: use its id as `{"data": {"kind": "dataset", "id": ...}}`."""

    id: str
    filename: str
    n: int
    features: int
    sha256: str


@router.post("", response_model=DatasetOut, status_code=201, summary="Upload a dataset", responses=ERRORS)
async def upload(file: UploadFile, session: SessionDep, settings: SettingsDep) -> DatasetOut:
    """A CSV with columns x..., y... (header optional) or an `.npz` with arrays `x` and `y`.
    y must be shaped like x: the layers are element-wise."""
    content = await file.read(settings.max_upload_bytes + 1)
    if len(content) > settings.max_upload_bytes:
        raise TooLarge.at("file", f"is larger than the upload limit of {settings.max_upload_bytes} bytes")
    x, y = datalib.parse_upload(file.filename or "data.csv", content, settings.max_points, settings.max_features)
    ds = Dataset(id=new_id(), filename=(file.filename or "upload")[:255], n=len(x), features=x.shape[1],
                 sha256=hashlib.sha256(content).hexdigest(), data=datalib.to_npz(x, y))
    session.add(ds)
    return DatasetOut.model_validate(ds, from_attributes=True)


@router.get("/{dataset_id}", response_model=DatasetOut, summary="Get a dataset's description",
            responses=ERRORS)
def get(dataset_id: str, session: SessionDep) -> DatasetOut:
    """Its size and feature count."""
    ds = session.get(Dataset, dataset_id)
    if ds is None:
        raise NotFound(f"no dataset with id {dataset_id!r}")
    return DatasetOut.model_validate(ds, from_attributes=True)
