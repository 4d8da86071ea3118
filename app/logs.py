"""JSON log lines, one object per line, with the job and worker ids when a record carries them."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from typing import Any

FIELDS = ("job_id", "worker", "request_id")
# The API key of the request being answered, by its id (never the key): `key` in each line logged
# while it is answered, uvicorn's access log included (set by app.http.quota.PerCaller).
KEY_ID: ContextVar[str | None] = ContextVar("key_id", default=None)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: getattr(record, k) for k in FIELDS if hasattr(record, k)})
        if (key := KEY_ID.get()) is not None:
            out["key"] = key
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure(level: str) -> None:
    """Send every logger's records to stderr as JSON."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
