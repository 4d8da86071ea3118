"""What a job becomes in an MLflow run: its spec as params, its numbers as metric keys, its tags."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

PARAM_CHARS = 6000  # MLflow's longest param value


def millis(t: datetime | None) -> int:
    return int(t.timestamp() * 1000) if t is not None else 0


def flatten(spec: Any, prefix: str = "") -> dict[str, str]:
    """A nested spec as dotted keys (`training.epochs`) and string values, as MLflow params."""
    if isinstance(spec, dict):
        out: dict[str, str] = {}
        for k, v in spec.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    value = spec if isinstance(spec, str) else json.dumps(spec)
    return {prefix[:-1]: value[:PARAM_CHARS]}


def numbers(values: Any, prefix: str = "") -> dict[str, Any]:
    """Learned parameters as metric keys: `sigma`, or `sigma.0`, `sigma.1` per feature (nested too)."""
    if isinstance(values, dict):
        return {k: v for name, sub in values.items() for k, v in numbers(sub, f"{prefix}{name}.").items()}
    if isinstance(values, list):
        return {k: v for i, sub in enumerate(values) for k, v in numbers(sub, f"{prefix}{i}.").items()}
    return {prefix[:-1]: values}


def tags_of(tags: dict[str, Any]) -> list[dict[str, str]]:
    return [{"key": k, "value": str(v)} for k, v in tags.items() if v is not None]


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
