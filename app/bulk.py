"""Many rows as one JSON parameter, read back as a table: set-based writes on SQLite and PostgreSQL.

`rows(session, columns, values)` is a FROM clause (`json_to_recordset` on PostgreSQL, `json_each`
on SQLite) that an `UPDATE ... FROM` or an `INSERT ... SELECT` joins, so a group's writes take one
statement and one bound parameter whatever the number of jobs, instead of one execution per row.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import JSON, Float, Integer, String, bindparam, cast, column, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause
from sqlalchemy.types import TypeEngine

from app.wake import is_postgres

TYPES: dict[str, TypeEngine[Any]] = {"text": String(), "int": Integer(), "float": Float(), "json": JSON()}


def rows(session: Session, columns: dict[str, str], values: list[dict[str, Any]], name: str = "v") -> FromClause:
    """`values` (dicts keyed by `columns`, whose types are "text", "int", "float" or "json") as a
    table named `name` with those columns, bound as a single JSON array."""
    data = bindparam(f"{name}_rows", json.dumps(values, allow_nan=False), type_=String())
    if is_postgres(session):
        recordset = func.json_to_recordset(cast(data, JSON()))
        table = recordset.table_valued(*(column(c, TYPES[t]) for c, t in columns.items()))
        return table.render_derived(name=name, with_types=True)
    each = func.json_each(data).table_valued("value")  # objects and arrays come back as their JSON text
    picks = [func.json_extract(each.c.value, f"$.{c}").label(c) for c in columns]
    return select(*picks).select_from(each).subquery(name)
