"""Resource ids: 16 lowercase hexadecimal digits, a format model names may not take."""

from __future__ import annotations

import re
import uuid

ID_PATTERN = re.compile(r"[0-9a-f]{16}")


def new_id() -> str:
    """A short random id."""
    return uuid.uuid4().hex[:16]


def looks_like_id(name: str) -> bool:
    """True when `name` has the format of a job id (and could therefore be one, now or later)."""
    return ID_PATTERN.fullmatch(name) is not None
