"""`:bounds` and `:optimize` for a served version: the model read once (weights and default box kept
by version), the box checked, the analysis run within the budget, and each answer kept, so the same
question about the same version is answered the same, at once."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from cachetools import LRUCache
from sqlalchemy.orm import Session

from app.bounds import analyse
from app.bounds import box as boxes
from app.bounds.model import family_op, network_ops
from app.bounds.relax import Array
from app.bounds.schemas import (
    Analysis,
    BoundsRequest,
    BoundsResponse,
    BoxOut,
    OptimizeRequest,
    OptimizeResponse,
    OutputBounds,
    Reached,
)
from app.errors import InvalidInput
from app.jobs.models import Job
from app.model import families, plan
from app.model.networks import default_columns, forward
from app.serving import service as serving
from app.settings import Settings

_LOCK = threading.Lock()
_MODELS: LRUCache[str, tuple[analyse.Model, list[str]]] = LRUCache(maxsize=32)  # by job id
_BOXES: LRUCache[str, tuple[Array, Array]] = LRUCache(maxsize=64)  # training boxes by job id
_ANSWERS: LRUCache[tuple[Any, ...], Any] = LRUCache(maxsize=256)  # by version, question and settings


def model_of(session: Session, job: Job) -> tuple[analyse.Model, list[str]]:
    """The version as the analysis sees it, and its features' names; a 422 for a layer it cannot bound."""
    with _LOCK:
        if job.id in _MODELS:
            return _MODELS[job.id]
    spec = job.spec
    if plan.is_network(spec):
        layers, weights = spec["model"]["layers"], serving.weights(session, job)
        ops = network_ops(layers, weights)
        names = list(spec["data"].get("columns") or default_columns(spec["data"]["features"], 0))
        model = analyse.Model(ops, lambda x: forward(layers, weights, x), False, int(spec["model"]["outputs"]))
    else:
        kind = spec["layer"]["type"]
        params = {k: np.asarray(v, dtype=np.float32).reshape(-1) for k, v in (job.params or {}).items()}
        features = max([int(spec["data"].get("features", 1)), *(p.size for p in params.values())])
        if families.get(kind).extremes is None:
            raise InvalidInput.at("layer.type", f"{kind} has no relaxation yet: this model cannot be bounded")

        def single(x: Array) -> Array:
            with np.errstate(all="ignore"):
                return families.evaluate(np, kind, x.astype(np.float32), params).astype(np.float32)  # type: ignore[no-any-return]

        model = analyse.Model([family_op(f"layer 0 ({kind})", kind, params)], single, True, features)
        names = default_columns(features, 0)
    with _LOCK:
        _MODELS[job.id] = (model, names)
    return model, names


def _box(session: Session, job: Job, req: Analysis, names: list[str], settings: Settings) -> tuple[Array, Array]:
    if req.box is not None:
        return boxes.parse(req.box, len(names))
    with _LOCK:
        known = _BOXES.get(job.id)
    if known is None:
        known = boxes.training_box(session, job, settings)
        if known[0].size != len(names):  # a single layer trained on one column, applied to each feature
            known = (np.full(len(names), known[0].min()), np.full(len(names), known[1].max()))
        with _LOCK:
            _BOXES[job.id] = known
    return known


def _answer(key: tuple[Any, ...], compute: Any) -> Any:
    with _LOCK:
        if key in _ANSWERS:
            return _ANSWERS[key].model_copy(deep=True)
    out = compute()
    with _LOCK:
        _ANSWERS[key] = out.model_copy(deep=True)
    return out


def _common(job: Job, lo: Array, hi: Array, method: str, exact: bool, complete: bool, budget: float) -> dict[str, Any]:
    return {
        "model": job.model_name,
        "version": job.model_version or 0,
        "box": BoxOut(lower=lo.tolist(), upper=hi.tolist()),
        "method": method,
        "exact": exact,
        "complete": complete,
        "budget_s": budget,
    }


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def bounds(session: Session, job: Job, req: BoundsRequest, settings: Settings) -> BoundsResponse:
    """Guaranteed bounds and reached extremes of every output over the box."""
    model, names = model_of(session, job)
    lo, hi = _box(session, job, req, names, settings)
    budget = min(req.budget_s or settings.bounds_budget_s, settings.bounds_budget_s)
    key = ("bounds", job.id, lo.tobytes(), hi.tobytes(), req.method, budget)

    def compute() -> BoundsResponse:
        goals = [(j, sign) for j in range(model.outputs) for sign in (1.0, -1.0)]
        found, method = analyse.run(model, lo, hi, goals, req.method, budget)
        outputs = []
        for up, down in zip(found[::2], found[1::2], strict=True):
            upper, lower, high, low = _finite(up.bound), _finite(-down.bound), _finite(up.value), _finite(down.value)
            reached = Reached(min=low, max=high, argmin=down.x.tolist(), argmax=up.x.tolist())
            gap = None
            if upper is not None and lower is not None and high is not None and low is not None:
                gap = (upper - high) + (low - lower)
            outputs.append(OutputBounds(lower=lower, upper=upper, reached=reached, gap=gap))
        exact, complete = all(f.exact for f in found), all(f.complete for f in found)
        return BoundsResponse(**_common(job, lo, hi, method, exact, complete, budget), outputs=outputs)

    return _answer(key, compute)  # type: ignore[no-any-return]


def optimize(session: Session, job: Job, req: OptimizeRequest, settings: Settings) -> OptimizeResponse:
    """The best input found for one output (some inputs fixed), with a guaranteed bound on the optimum."""
    model, names = model_of(session, job)
    if req.output >= model.outputs:
        raise InvalidInput.at("output", f"{req.output} is not an output index: the model has {model.outputs} (0..)")
    lo, hi = boxes.fix(req.fixed, names, *_box(session, job, req, names, settings))
    budget = min(req.budget_s or settings.bounds_budget_s, settings.bounds_budget_s)
    sign = 1.0 if req.goal == "max" else -1.0
    key = ("optimize", job.id, lo.tobytes(), hi.tobytes(), req.method, budget, req.output, sign)

    def compute() -> OptimizeResponse:
        (found,), method = analyse.run(model, lo, hi, [(req.output, sign)], req.method, budget)
        bound, value = _finite(sign * found.bound), _finite(found.value)
        return OptimizeResponse(
            **_common(job, lo, hi, method, found.exact, found.complete, budget),
            output=req.output,
            goal=req.goal,
            x=found.x.tolist(),
            value=value,
            bound=bound,
            gap=None if bound is None or value is None else abs(bound - value),
        )

    return _answer(key, compute)  # type: ignore[no-any-return]
