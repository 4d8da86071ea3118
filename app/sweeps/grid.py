"""A sweep's points (its grid's product, or its list) and each point applied to the base request."""

from __future__ import annotations

import itertools
from typing import Any

from app.errors import InvalidInput, TooLarge
from app.store import pages
from app.sweeps.schemas import SweepRequest


def expand(req: SweepRequest, limit: int) -> list[dict[str, Any]]:
    """The points of a sweep: the grid's cartesian product, or the listed points."""
    if req.points is not None:
        points = req.points
    else:
        grid = req.grid or {}
        size = 1
        for values in grid.values():
            size *= len(values)
        if size > limit:
            raise TooLarge.at("grid", f"makes {size} jobs, more than the sweep limit {limit}")
        points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    if len(points) > limit:
        raise TooLarge.at("points", f"has {len(points)} jobs, more than the sweep limit {limit}")
    return points


def plain_copy(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, scalars): what `copy.deepcopy` does, several
    times faster for the thousands of copies a large sweep makes."""
    if isinstance(value, dict):
        return {k: plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_copy(v) for v in value]
    return value


def apply(base: dict[str, Any], point: dict[str, Any], where: str) -> dict[str, Any]:
    """A copy of `base` with each dotted path of `point` set."""
    out: dict[str, Any] = plain_copy(base)
    for path, value in point.items():
        keys = path.split(".")
        node: Any = out
        for k in keys[:-1]:
            if isinstance(node, list):  # a network's layers: `model.layers.1.sigma_init`
                node = _item(node, k, f"{where}.{path}")
            else:
                node = node.setdefault(k, {})
            if not isinstance(node, dict | list):
                raise InvalidInput.at(f"{where}.{path}", f"{k} is not an object in the base request")
        if isinstance(node, list):
            node[_index(node, keys[-1], f"{where}.{path}")] = value
        else:
            node[keys[-1]] = value
    return out


def _index(items: list[Any], key: str, where: str) -> int:
    """A list index from a path part, within the list."""
    index = pages.decimal(key)
    if index is None or index >= len(items):
        raise InvalidInput.at(where, f"{key} is not an index of a list of {len(items)} items in the base request")
    return index


def _item(items: list[Any], key: str, where: str) -> Any:
    """The list item a path part names."""
    return items[_index(items, key, where)]


def touches_data(points: list[dict[str, Any]]) -> bool:
    """True when some point sets a field of `data` (then each job's data is its own)."""
    return any(k == "data" or k.startswith("data.") for p in points for k in p)
