"""Uploaded datasets, stored in the database so workers on any host can read them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import LargeBinary, String, false
from sqlalchemy.orm import Mapped, mapped_column

from app.store.db import Base, utcnow


class Dataset(Base):
    """Validated float32 arrays x and y, kept as compressed .npz bytes."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    n: Mapped[int]
    features: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # an upload's: of the file sent
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # A job's or a sweep's inline data: deleted with the last job that uses it (app.store.lifecycle).
    inline: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The names of the columns of x then y (a CSV's header); null: x1..xF, y1..yM (app.model.networks).
    columns: Mapped[list[Any] | None]
    outputs: Mapped[int | None]  # columns of y: 0 for a table whose target a network names; null: features
    timesteps: Mapped[int | None]  # steps of each sequence where x is (n, timesteps, features); null: rows
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    owner: Mapped[str | None] = mapped_column(String(64))  # the caller that stored it (app.store.caps)
