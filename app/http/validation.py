"""pydantic's validation errors in the request's own words: each error's location as the field path
a client wrote (`data.x[3]`, `model.layers.1.units`), one error per field."""

from __future__ import annotations

from typing import Any

from app.model.families import FAMILIES

# Discriminated-union tags pydantic puts in error locations after these fields; users never wrote them.
UNION_TAGS = {"data": {"synthetic", "inline", "dataset"}, "layer": set(FAMILIES), "gate": set(FAMILIES)}
NETWORK_TAGS = {"dense", "rnn", "activation", *FAMILIES}  # after `model.layers.<i>`
LAYER_ITEM = object()  # field_path's marker: the last part was a network layer's index


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic error location as the request's own field path: `data.x[3]`, never `body`,
    `data.inline` or `data.x.3.list[float]` (union branch labels are dropped)."""
    out = ""
    prev: Any = None
    for p in loc:
        if p == "body" and not out:
            continue
        if isinstance(p, int) and prev == "layers":  # a network's layer: `model.layers.1.units`, as sweeps say it
            out += f".{p}"
            prev = LAYER_ITEM
            continue
        if prev is LAYER_ITEM and p in NETWORK_TAGS:
            prev = None  # the union's tag; the next part is the layer's field
            continue
        if isinstance(p, str) and (isinstance(prev, int) or p in UNION_TAGS.get(str(prev), ())):
            continue  # a label pydantic gives a union branch: no field of ours is a list of objects
        out += f"[{p}]" if isinstance(p, int) else f".{p}" if out else str(p)
        prev = p
    return out or "body"


def validation_details(errors: list[Any], prefix: str = "") -> list[dict[str, str]]:
    """pydantic errors -> [{"loc", "msg"}], one per field (a union's branches report once)."""
    out: dict[str, str] = {}
    for e in errors:
        loc = field_path(e["loc"])
        loc = f"{prefix}.{loc}" if prefix and loc != "body" else prefix or loc
        out.setdefault(loc, str(e["msg"]).removeprefix("Value error, "))
    # A union reports each branch: for [1, false] as a row, "not a number" at the row and "not a
    # number" at its item. The deeper error is the one about what the client sent.
    deeper = {k for k in out for other in out if other.startswith((f"{k}.", f"{k}["))}
    return [{"loc": k, "msg": v} for k, v in out.items() if k not in deeper]
