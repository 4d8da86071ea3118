"""Many rows as one JSON parameter, read back as a table: set-based writes on SQLite and PostgreSQL.

`rows(session, columns, values)` is a FROM clause (`json_to_recordset` on PostgreSQL, `json_each`
on SQLite) that an `UPDATE ... FROM` or an `INSERT ... SELECT` joins, so a group's writes take one
statement and one bound parameter whatever the number of jobs, instead of one execution per row.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    Integer,
    String,
    Table,
    bindparam,
    cast,
    column,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause
from sqlalchemy.types import TypeEngine

from app.store.wake import is_postgres

TYPES: dict[str, TypeEngine[Any]] = {
    "text": String(),
    "int": Integer(),
    "float": Float(),
    "bool": Boolean(),
    "json": JSON(),
}


def rows(session: Session, columns: dict[str, str], values: list[dict[str, Any]], name: str = "v") -> FromClause:
    """`values` (dicts keyed by `columns`, whose types are "text", "int", "float", "bool" or "json") as a
    table named `name` with those columns and `ord`, each row's index in `values` (to keep their
    order), bound as a single JSON array. NumPy numbers are taken; a NaN or an infinity anywhere (a
    diverged epoch's loss or parameters) is stored as null: JSON has no such numbers."""
    numbered = [{**row, "ord": i} for i, row in enumerate(values)]
    text = orjson.dumps(numbered, option=orjson.OPT_SERIALIZE_NUMPY).decode()  # non-finite: null
    data = bindparam(f"{name}_rows", text, type_=String())
    columns = {**columns, "ord": "int"}
    if is_postgres(session):
        recordset = func.json_to_recordset(cast(data, JSON()))
        table = recordset.table_valued(*(column(c, TYPES[t]) for c, t in columns.items()))
        return table.render_derived(name=name, with_types=True)
    each = func.json_each(data).table_valued("value")  # objects and arrays come back as their JSON text
    picks = [func.json_extract(each.c.value, f"$.{c}").label(c) for c in columns]
    return select(*picks).select_from(each).subquery(name)


def insert_rows(
    session: Session, table: Table, columns: dict[str, str], values: list[dict[str, Any]], **same: Any
) -> None:
    """Insert `values` (dicts keyed by `columns`, typed as for `rows`) into `table` in one
    `INSERT ... SELECT`, in their order, each also with the column values in `same`."""
    if not values:
        return
    v = rows(session, columns, values)
    consts = [literal(value, table.c[name].type).label(name) for name, value in same.items()]
    picks = select(*(v.c[c] for c in columns), *consts).order_by(v.c.ord)
    session.execute(insert(table).from_select([*columns, *same], picks))


ROWS_PER_INSERT = 500  # rows a multi-row INSERT carries on SQLite (bound parameters stay few)


def copy_rows(session: Session, table: Table, values: list[dict[str, Any]]) -> None:
    """Insert rows of values as the driver takes them (bytes too) in a count of statements that does
    not grow with them: PostgreSQL's COPY (one statement), or multi-row INSERTs of ROWS_PER_INSERT on
    SQLite, written as SQL text with positional parameters (SQLAlchemy compiled each multi-row
    VALUES anew, without its cache: 85 ms for 500 rows)."""
    if not values:
        return
    columns = list(values[0])
    if is_postgres(session):
        cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        names = ", ".join(columns)
        with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in values:
                copy.write_row([row[c] for c in columns])
        return
    marks = f"({', '.join('?' * len(columns))})"
    for i in range(0, len(values), ROWS_PER_INSERT):
        chunk = values[i : i + ROWS_PER_INSERT]
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {', '.join([marks] * len(chunk))}"
        session.connection().exec_driver_sql(sql, tuple(row[c] for row in chunk for c in columns))
