"""The one plan of a job: any spec, stored or new (old rows included), or a request, read as a list
of layers. Only this module knows the two request forms.

A `layer` job is a one-layer model whose threshold parameters are shared across the features (the
single layer's default) or one per feature (`layer.per_feature`); its public forms stay its own
(`params.sigma` a number, or a list per feature; the artifact's layer named after its type). A
`model` job is its layers in order, its parameters by layer name (`bump_1`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Plan:
    """A job's layers in order, and whether it was asked for as a single layer."""

    layers: list[dict[str, Any]]
    single: bool

    @property
    def name(self) -> str:
        """The layer types in order, joined by '-': `bump`, `dense-bump-dense`."""
        return "-".join(str(layer["type"]) for layer in self.layers)


def _part(spec: Any, key: str) -> Any:
    return spec.get(key) if isinstance(spec, dict) else getattr(spec, key, None)


def is_network(spec: Any) -> bool:
    """Whether a spec (a dict) or a request (an object with `model`) gives `model.layers`."""
    return _part(spec, "model") is not None


def of(spec: dict[str, Any]) -> Plan:
    """A stored spec's (or a request dump's) plan."""
    if is_network(spec):
        return Plan(list(spec["model"]["layers"]), single=False)
    return Plan([{"per_feature": False, **spec["layer"]}], single=True)  # shared: the single layer's default


def output_width(spec: dict[str, Any]) -> int:
    """Columns of a prediction: a network's last layer's width, a single layer's input width."""
    return int(spec["model"]["outputs"]) if is_network(spec) else int(spec["data"].get("features", 1))
