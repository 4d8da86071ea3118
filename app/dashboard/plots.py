"""Hand-written SVG plots of a job's history (loss on a log scale, parameter trajectories).

Pure Python, no plotting library: the API process stays small and never imports matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT = 960, 360  # the whole figure, two panels side by side
MARGIN = (48, 24, 40, 72)  # top, right, bottom, left of each panel, room for titles and tick labels
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")

Series = tuple[str, list[tuple[float, float]]]


def _fmt(v: float) -> str:
    """A short tick label."""
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:.4g}"


def tick_labels(ticks: list[float]) -> list[str]:
    """Labels with just enough decimals to tell neighbouring ticks apart."""
    big = max((abs(t) for t in ticks), default=0.0)
    if len(ticks) < 2 or big >= 1e4 or 0 < big < 1e-3:
        return [_fmt(t) for t in ticks]
    decimals = max(0, -math.floor(math.log10(ticks[1] - ticks[0]) + 1e-9))
    return [f"{t:.{decimals}f}" for t in ticks]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round numbers covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) for k in range(first, int(math.floor(hi / step + 1e-9)) + 1)]


def _bounds(values: Sequence[float], log: bool) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if log:
        lo, hi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        return (lo, hi) if hi > lo else (lo - 1, hi + 1)
    if hi == lo:
        pad = abs(lo) * 0.05 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def panel(
    series: list[Series], box: tuple[float, float, float, float], title: str, ylabel: str, log: bool = False
) -> str:
    """One line chart in `box` (x, y, width, height), x = epoch; log puts y on a log10 scale."""
    x0, y0, w, h = box
    top, right, bottom, left = MARGIN
    px, py, pw, ph = x0 + left, y0 + top, w - left - right, h - top - bottom
    pts = [(x, y) for _, s in series for x, y in s if math.isfinite(y) and (y > 0 or not log)]
    out = [
        f'<text x="{x0 + w / 2}" y="{y0 + 24}" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{escape(title)}</text>',
        f'<rect x="{px}" y="{py}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
    ]
    if not pts:
        out.append(
            f'<text x="{px + pw / 2}" y="{py + ph / 2}" text-anchor="middle" fill="#666">no finished epochs yet</text>'
        )
        return "\n".join(out)
    xlo, xhi = min(p[0] for p in pts), max(p[0] for p in pts)
    xlo, xhi = (xlo - 0.5, xhi + 0.5) if xhi == xlo else (xlo, xhi)
    ylo, yhi = _bounds([p[1] for p in pts], log)

    def sx(x: float) -> float:
        return px + (x - xlo) / (xhi - xlo) * pw

    def sy(y: float) -> float:
        v = math.log10(y) if log else y
        return py + ph - (v - ylo) / (yhi - ylo) * ph

    if log:
        every = math.ceil((yhi - ylo + 1) / 8)  # at most ~8 decades labelled
        yticks = [10.0**k for k in range(int(ylo), int(yhi) + 1, every)]
        labels = [_fmt(t) for t in yticks]
    else:
        yticks = nice_ticks(ylo, yhi)
        labels = tick_labels(yticks)
    for t, label in zip(yticks, labels, strict=True):
        y = sy(t)
        out.append(
            f'<line x1="{px}" x2="{px + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{px - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{label}</text>'
        )
    for t in nice_ticks(xlo, xhi):
        if t == int(t):
            out.append(f'<text x="{sx(t):.1f}" y="{py + ph + 16}" text-anchor="middle" font-size="11">{int(t)}</text>')
    out.append(f'<text x="{px + pw / 2}" y="{py + ph + 34}" text-anchor="middle" font-size="12">epoch</text>')
    out.append(
        f'<text transform="translate({x0 + 14},{py + ph / 2}) rotate(-90)" text-anchor="middle" '
        f'font-size="12">{escape(ylabel)}</text>'
    )
    for i, (name, s) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        good = [(x, y) for x, y in s if math.isfinite(y) and (y > 0 or not log)]
        if not good:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in good)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        out.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>' for x, y in good)
        out.append(
            f'<text x="{px + pw - 8}" y="{py + 16 + 15 * i}" text-anchor="end" font-size="12" '
            f'fill="{color}">{escape(name)}</text>'
        )
    return "\n".join(out)


def _flat(params: dict[str, Any]) -> list[tuple[str, Any]]:
    """Parameters by name; a network's, by layer then parameter (`bump_1.sigma`)."""
    out: list[tuple[str, Any]] = []
    for name, value in params.items():
        if isinstance(value, dict):
            out += [(f"{name}.{p}", v) for p, v in value.items()]
        else:
            out.append((name, value))
    return out


def _param_series(history: list[dict[str, Any]]) -> list[Series]:
    """One series per scalar parameter (per-feature parameters become name[i])."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in history:
        for name, value in _flat(row.get("params") or {}):
            values = value if isinstance(value, list) else [value]
            for i, v in enumerate(values):
                key = name if len(values) == 1 else f"{name}[{i}]"
                # a diverged epoch's non-finite values are stored as null: a gap, not a point
                series.setdefault(key, []).extend([(row["epoch"], float(v))] if isinstance(v, int | float) else [])
    return list(series.items())


def job_svg(job: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """The job's loss curve (log scale) and parameter trajectory as one SVG document."""
    loss: list[Series] = [("loss", [(r["epoch"], r["loss"]) for r in history if r.get("loss") is not None])]
    val = [(r["epoch"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    if val:
        loss.append(("val_loss", val))
    params = _param_series(history)
    target = (job.get("spec") or {}).get("data", {}).get("params") or {}
    title = f"job {job['id']} ({job['status']}, epoch {job['progress']['epoch']}/{job['progress']['epochs']})"
    if "sigma" in target:
        title += f", data sigma {target['sigma']:g}"
    half = WIDTH / 2
    body = "\n".join(
        [
            panel(loss, (0, 20, half, HEIGHT - 20), "Loss", "loss (log scale)", log=True),
            panel(params, (half, 20, half, HEIGHT - 20), "Parameters", "value"),
        ]
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">\n'
        f'<rect width="100%" height="100%" fill="white"/>\n'
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="13" fill="#444">'
        f"{escape(title)}</text>\n"
        f"{body}\n</svg>\n"
    )
