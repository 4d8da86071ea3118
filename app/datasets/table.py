"""CSV uploads: read line by line (any line ending, quotes, a BOM, UTF-16 with a BOM, comment
lines, `numpy.savetxt`'s space-separated form, blank lines), with a bounded line length, converted
in blocks; a bad cell is named by its row and column."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np

from app.datasets.limits import Limits
from app.errors import InvalidInput, TooLarge
from app.model.data import FLOAT32_MAX, bound_problem, check_cells, first_bad

TEXT_CHUNK = 1 << 20  # characters of CSV text decoded at a time
NUMBER_CHARS = 80  # generous room per cell: '-1.234567890123456789e-308' plus quotes and spaces


# -- CSV --------------------------------------------------------------------------------------


def _text(f: IO[bytes]) -> io.TextIOWrapper:
    """The file as text: UTF-16 when it starts with a UTF-16 byte-order mark, else UTF-8 (BOM or not).
    newline="" keeps \\r, \\n and \\r\\n for the csv module, which accepts all three."""
    start = f.read(2)
    f.seek(0)
    encoding = "utf-16" if start in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"
    return io.TextIOWrapper(f, encoding=encoding, newline="")


def _chunks(text: io.TextIOWrapper, max_chars: int) -> Iterator[list[str]]:
    """The text's lines, a chunk of about TEXT_CHUNK characters at a time, none longer than
    `max_chars`: a file that is one endless line never becomes one endless row."""
    rest, number = "", 0
    while True:
        try:
            chunk = text.read(TEXT_CHUNK)
        except UnicodeDecodeError:
            raise InvalidInput.at(
                f"file row {number + rest.count(chr(10)) + 1}",
                "is not UTF-8 text (save the CSV as UTF-8, or UTF-16 with a byte-order mark)",
            ) from None
        lines = (rest + chunk).splitlines(keepends=True)
        # a last line without its ending (or a \\r that may be half of \\r\\n) continues in the next chunk
        rest = lines.pop() if chunk and lines and not lines[-1].endswith("\n") else ""
        if lines and max(map(len, lines)) > max_chars or len(rest) > max_chars:
            long = next((i for i, line in enumerate(lines) if len(line) > max_chars), len(lines))
            raise InvalidInput.at(
                f"file row {number + long + 1}",
                f"is longer than {max_chars} characters; a row holds at most 2 x max_features numbers",
            )
        number += len(lines)
        if lines:
            yield lines
        if not chunk:
            return


def _delimiter(line: str) -> str | None:
    """A row's separator: comma, semicolon or tab; None for whitespace (numpy.savetxt's default)."""
    return next((d for d in (",", ";", "\t") if d in line), None)


def _split(line: str, delim: str | None) -> list[str]:
    """One line's cells: CSV with `delim`, or whitespace-separated (numpy.savetxt's default) when None."""
    return next(csv.reader([line], delimiter=delim), []) if delim else line.split()


def _numbers(row: list[str]) -> bool:
    try:
        [float(c) for c in row]
    except ValueError:
        return False
    return True


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


@dataclass
class _Table:
    """What the first lines of a CSV say about the rest."""

    delim: str | None
    width: int
    names: list[str]
    bound: float


def _start(lines: list[str], limits: Limits) -> tuple[int, _Table, list[str] | None]:
    """Find the first data row in the first chunk: (its index, the table's shape, the header)."""
    header, comment, delim = None, None, None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if _is_comment(line):
            comment = _split(line.lstrip()[1:], _delimiter(line))
            continue
        delim = _delimiter(line) if header is None else delim  # the first row's separator holds for all
        cells = _split(line, delim)
        if not _numbers(cells):
            if header is not None:  # a second line of words is a bad row, not a header
                _table_rows([line], i + 1, _Table(delim, len(header), header, limits.bound))
            header = cells
            continue
        if header is None and comment and all(c.strip().lower()[:1] in ("x", "y") for c in comment):
            header = comment
        width = len(cells)
        names = header or [f"x{k + 1}" if k < width // 2 else f"y{k + 1 - width // 2}" for k in range(width)]
        return i, _Table(delim, width, names, limits.bound), header
    raise InvalidInput.at("file", "no data rows")


def read_csv(f: IO[bytes], limits: Limits) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Columns x..., y... (header names starting with x and y, or without header the first half x),
    or a table: a header naming other columns gives x = every column, y none (a network's job
    names its target). Returns x, y and the header's names of x's then y's columns (None without).
    Blank rows and `#` comment lines are skipped; the last comment before the data is the header
    when it names x and y columns (numpy.savetxt's `header=`)."""
    chunks = _chunks(_text(f), 2 * limits.max_features * NUMBER_CHARS)
    first = next(chunks, [])
    start, table, header = _start(first, limits)
    xcols, ycols = _columns(header, table.width, limits)
    blocks, n, number = [], 0, start
    for lines in itertools.chain([first[start:]], chunks):
        block = _table_block(lines, number + 1, table)
        number += len(lines)
        n += len(block)
        if n > limits.max_points:
            raise TooLarge.at("file", f"has more than {limits.max_points} data rows, the limit")
        check_cells("file", "has at least", n, len(xcols), limits.max_cells)  # y has no more columns than x
        blocks.append(block)
    data = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    if len(data) == 0:
        raise InvalidInput.at("file", "no data rows")
    names = None if header is None else [header[i].strip() for i in xcols + ycols]
    return data[:, xcols], data[:, ycols], names


def _table_block(lines: list[str], first_row: int, table: _Table) -> np.ndarray:
    """Lines of the table (the first is file row `first_row`) -> float32 rows, by numpy's C parser;
    on any problem the lines are read again cell by cell to name the row and column at fault."""
    try:
        with warnings.catch_warnings(), np.errstate(over="ignore"):
            warnings.simplefilter("ignore")  # "input contained no data": a chunk of blank lines
            values = np.loadtxt(
                [line for line in lines if not line.isspace()],
                delimiter=table.delim,
                quotechar='"',
                comments="#",
                dtype=np.float64,
                ndmin=2,
            )
    except ValueError:
        values = None
    if (
        values is not None
        and (len(values) == 0 or values.shape[1] == table.width)
        and first_bad(values, table.bound) is None
    ):
        return values.reshape(-1, table.width).astype(np.float32)
    return _table_rows(lines, first_row, table)


def _table_rows(lines: list[str], first_row: int, table: _Table) -> np.ndarray:
    """The slow, exact reading: the first bad cell is named by its row in the file and its column.
    Rows whose cells are all empty (a spreadsheet's trailing `,,`) are skipped."""
    if table.delim:
        reader = csv.reader(lines, delimiter=table.delim)
        rows = ((first_row + reader.line_num - 1, row) for row in reader)
    else:
        rows = ((first_row + i, line.split()) for i, line in enumerate(lines))
    out: list[list[float]] = []
    last = first_row - 1
    try:
        for number, row in rows:
            start, last = last + 1, number
            if any("\n" in c or "\r" in c for c in row):  # a quoted cell ran over line ends
                raise InvalidInput.at(f"file row {start}", "has a quote that is not closed on its row")
            if not "".join(row).strip() or _is_comment(row[0]):
                continue
            if len(row) != table.width:
                raise InvalidInput.at(
                    f"file row {number}",
                    f"has {len(row)} columns but the first data row has "
                    f"{table.width}: rows have different numbers of columns",
                )
            out.append([_cell(cell, number, col, table) for col, cell in enumerate(row)])
    except csv.Error as exc:
        raise InvalidInput.at(f"file row {last + 1}", f"is not valid CSV ({exc}); is a quote left open?") from None
    return np.asarray(out, dtype=np.float32).reshape(-1, table.width)


def _cell(cell: str, row: int, col: int, table: _Table) -> float:
    """One cell as a number within the bound, or an error naming it."""
    where = f"file row {row}, column {col + 1} ({table.names[col].strip()[:40]})"
    try:
        value = float(cell)
    except ValueError:
        raise InvalidInput.at(where, f"must be a number, not {cell.strip()[:40]!r}") from None
    if not abs(value) <= table.bound or not abs(value) <= FLOAT32_MAX:
        raise InvalidInput.at(where, bound_problem(value, table.bound))
    return value


def _columns(header: list[str] | None, width: int, limits: Limits) -> tuple[list[int], list[int]]:
    """Which columns are x and which y: x..., y... by their names or halves, or, for a header of
    other names over two columns or more, a table (every column x, no y)."""
    if header is not None:
        if len(header) != width:
            raise InvalidInput.at("file", f"the header names {len(header)} columns but the first data row has {width}")
        names = [h.strip().lower() for h in header]
        xcols = [i for i, h in enumerate(names) if h.startswith("x")]
        ycols = [i for i, h in enumerate(names) if h.startswith("y")]
    else:  # no header: the first half of the columns are x, the second half y
        xcols, ycols = list(range(width // 2)), list(range(width // 2, width))
    if not xcols or len(xcols) != len(ycols) or len(xcols) + len(ycols) != width:
        if header is None or width < 2:
            raise InvalidInput.at(
                "file",
                "CSV needs columns x..., y... with as many y as x columns "
                "(x, y for one feature; header names starting with x and y)",
            )
        if len({h.strip() for h in header}) != width:
            raise InvalidInput.at("file", "the header names a column twice; columns need distinct names")
        xcols, ycols = list(range(width)), []  # a table: a network's job names its target columns
    if len(xcols) > limits.max_features:
        raise TooLarge.at("file", f"has {len(xcols)} features, more than the limit {limits.max_features}")
    return xcols, ycols
