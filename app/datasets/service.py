"""Datasets: uploads parsed within the limits, and training data stored once for any number of jobs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from app.datasets import uploads
from app.datasets.limits import Limits
from app.datasets.models import Dataset
from app.datasets.schemas import DatasetList, DatasetOut
from app.errors import TooLarge
from app.http.auth import Caller
from app.model import data as datalib
from app.settings import Settings
from app.store import caps, pages
from app.store.ids import new_id


@dataclass
class Parsed:
    """A validated upload, not yet stored."""

    filename: str
    sha256: str
    x: np.ndarray
    y: np.ndarray
    columns: list[str] | None = None  # a CSV header's names of x's, then y's, columns


def parse(filename: str, file: IO[bytes], size: int | None, settings: Settings) -> Parsed:
    """Read an uploaded file within the limits; InvalidInput or TooLarge name what is wrong."""
    size = file.seek(0, 2) if size is None else size
    if size > settings.max_upload_bytes:
        raise TooLarge.at("file", f"is larger than the upload limit of {settings.max_upload_bytes} bytes")
    file.seek(0)
    digest = hashlib.file_digest(file, "sha256").hexdigest()  # type: ignore[arg-type]
    limits = Limits(settings.max_upload_bytes, settings.max_points, settings.max_features, settings.max_cells)
    x, y, columns = uploads.read(filename, file, limits)
    return Parsed(filename[:255], digest, x, y, columns)


def find_upload(session: Session, sha256: str) -> Dataset | None:
    """The earliest upload of a file with this SHA-256, its arrays left unread: an upload of the same
    content again is answered with it instead of being stored twice."""
    stmt = select(Dataset).options(defer(Dataset.data)).where(Dataset.sha256 == sha256, Dataset.inline.is_(False))
    return session.scalars(stmt.order_by(Dataset.created_at, Dataset.id).limit(1)).first()


def store(session: Session, parsed: Parsed, caller: Caller | None = None, max_bytes: int | None = None) -> Dataset:
    """Add an uploaded dataset to the session, made by `caller`; TooLarge if its bytes would take the
    caller past `max_bytes` (BUMPFIT_MAX_DATASET_BYTES) of uploads."""
    data = datalib.to_npz(parsed.x, parsed.y)
    if caller is not None:
        caps.check_dataset_bytes(session, caller, len(data), max_bytes)
    ds = Dataset(
        id=new_id(),
        filename=parsed.filename,
        n=len(parsed.x),
        features=parsed.x.shape[-1],  # of sequences (n, timesteps, features): the last axis
        sha256=parsed.sha256,
        data=data,
        inline=False,
        columns=parsed.columns,
        outputs=parsed.y.shape[1],
        timesteps=parsed.x.shape[1] if parsed.x.ndim == 3 else None,
        owner=caller.id if caller is not None else None,
    )
    session.add(ds)
    session.flush()  # created_at filled in, as a later upload of the same file is answered
    return ds


def reference(data: dict[str, Any], ds: Dataset) -> dict[str, Any]:
    """Inline data's spec once its arrays are stored as `ds`: a reference to the dataset, the data's
    other fields (`normalize` ...) kept."""
    return {**{k: v for k, v in data.items() if k not in ("kind", "x", "y")}, "kind": "dataset", "id": ds.id}


def store_arrays(session: Session, x: np.ndarray, y: np.ndarray, filename: str) -> Dataset:
    """Add training data sent inline as a dataset, so the jobs that use it reference it."""
    blob = datalib.to_npz(x, y)
    ds = Dataset(
        id=new_id(),
        filename=filename,
        n=len(x),
        features=x.shape[1],
        sha256=hashlib.sha256(blob).hexdigest(),
        data=blob,
        inline=True,
        outputs=y.shape[1],
    )
    session.add(ds)
    return ds


def list_datasets(session: Session, limit: int, page_token: str | None) -> DatasetList:
    """A page of datasets (uploads and stored inline data), newest first; the arrays stay unread."""
    cols = (
        Dataset.id,
        Dataset.filename,
        Dataset.n,
        Dataset.features,
        Dataset.sha256,
        Dataset.inline,
        Dataset.created_at,
        Dataset.columns,
        Dataset.outputs,
        Dataset.timesteps,
    )
    stmt = pages.after(select(*cols), Dataset.created_at, Dataset.id, page_token).limit(limit + 1)
    rows = session.execute(stmt).all()
    last = rows[limit - 1] if len(rows) > limit else None
    return DatasetList(
        datasets=[DatasetOut.model_validate(r, from_attributes=True) for r in rows[:limit]],
        next_page_token=pages.token(last.created_at, last.id) if last is not None else None,
    )
