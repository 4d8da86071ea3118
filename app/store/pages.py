"""Page tokens: keyset pagination by (created_at, id), newest first, for tables without a sequence
column; a row's sequence number for those with one; and the ASCII-decimal check they share with
other numbers read from text (headers, path parts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_

from app.errors import InvalidInput
from app.store.ids import ID_PATTERN


def decimal(text: str) -> int | None:
    """The number a string of ASCII digits spells, else None (`'¹'.isdigit()` is true, and `int`
    refuses it)."""
    return int(text) if text.isascii() and text.isdigit() else None


def seq_after(page_token: str) -> int:
    """The sequence number a `next_page_token` of a sequence-ordered list carries (422 naming it
    when it is not one)."""
    seq = decimal(page_token)
    if seq is None or seq >= 2**63:
        raise InvalidInput.at("page_token", "not a token returned by this endpoint")
    return seq


def token(created_at: datetime, row_id: str) -> str:
    """The page token that continues after this row."""
    return f"{created_at.isoformat()}~{row_id}"


def after(stmt: Any, created_at: Any, row_id: Any, page_token: str | None) -> Any:
    """`stmt` ordered newest first and continued after `page_token` (422 naming it when malformed)."""
    stmt = stmt.order_by(created_at.desc(), row_id.desc())
    if page_token is None:
        return stmt
    when, _, last = page_token.partition("~")
    try:
        at = datetime.fromisoformat(when)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or not ID_PATTERN.fullmatch(last):
        raise InvalidInput.at("page_token", "not a token returned by this endpoint")
    return stmt.where(or_(created_at < at, and_(created_at == at, row_id < last)))
