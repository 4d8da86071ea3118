"""How tight the guaranteed bounds of `:bounds` are, and how long they take (issue 32, docs/bounds.md).

Seed 004's question: a ReLU network with Keras's initial weights (glorot uniform, zero biases), inputs
in [0, 1]^5, the range of each output. For 5-10-4 and 5-32-32-4 networks (`--seeds` of each), each
output's width by every method is divided by its exact width (the exact mode: branch and bound, then
a MILP per box left, `scipy.optimize.milp`):

- interval bounds alone, backward linear bounds (CROWN), and splitting within the default budget
  (`split`, what `:bounds` answers for a network that is not a small ReLU one): guaranteed, >= 1;
- sampling (`--samples` random inputs): the width the samples reach, <= 1, and never a guarantee.

Where the exact mode does not finish within its budget (HiGHS on boxes with many ReLUs of both
signs), the reference is the width its inputs reached, which the exact width is at least: that
network's ratios are then upper estimates, and the `exact` row says how many networks were proved.

    python -m bench.bounds [--seeds 3] [--samples 100000] [--budget 5]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from app.bounds import analyse, crown
from app.bounds.box import as_float32
from app.bounds.model import network_ops
from app.model import networks
from app.settings import Settings

SHAPES = {"5-10-4": [5, 10, 4], "5-32-32-4": [5, 32, 32, 4]}
EXACT_BUDGET = 120.0  # seconds the exact reference may take for one network


def glorot(sizes: list[int], seed: int) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """A ReLU network as Keras initialises it: glorot-uniform kernels, zero biases, a linear output."""
    rng = np.random.default_rng(seed)
    layers, weights = [], {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        limit = np.sqrt(6 / (a + b))
        layers.append({"type": "dense", "units": b, "activation": "relu" if i < len(sizes) - 2 else "linear"})
        weights[f"dense_{i + 1}/kernel"] = rng.uniform(-limit, limit, (a, b)).astype(np.float32)
        weights[f"dense_{i + 1}/bias"] = np.zeros(b, np.float32)
    return layers, weights


def widths(model: analyse.Model, lo: np.ndarray, hi: np.ndarray, method: str, budget: float) -> tuple[Any, Any, bool]:
    """Each output's guaranteed width by `method` through the analysis, the width its inputs reached,
    and whether every end was proved exact."""
    goals = [(j, s) for j in range(model.outputs) for s in (1.0, -1.0)]
    found, _ = analyse.run(model, lo, hi, goals, method, budget)
    up, down = np.array([f.bound for f in found[::2]]), np.array([f.bound for f in found[1::2]])
    reached = np.array([f.value for f in found[::2]]) - np.array([f.value for f in found[1::2]])
    return up + down, reached, all(f.exact for f in found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="networks of each shape")
    parser.add_argument("--samples", type=int, default=100_000, help="random inputs of the sampling estimate")
    parser.add_argument("--budget", type=float, default=Settings().bounds_budget_s, help="split's seconds")
    args = parser.parse_args()
    lo, hi = np.zeros(5), np.ones(5)
    lo32, hi32 = as_float32(lo, hi)
    print(f"inputs in [0, 1]^5; split budget {args.budget:g} s; ratio = width / exact width (mean, max)")
    print(f"{'network':<11}{'method':<10}{'ratio mean':>11}{'ratio max':>11}{'seconds':>10}")
    for shape, sizes in SHAPES.items():
        rows: dict[str, list[Any]] = {}
        for seed in range(args.seeds):
            layers, weights = glorot(sizes, seed)
            ops = network_ops(layers, weights)
            model = analyse.Model(ops, lambda x, la=layers, w=weights: networks.forward(la, w, x), False, sizes[-1])
            t = time.perf_counter()
            bound, reached, proved = widths(model, lo, hi, "exact", EXACT_BUDGET)
            # Not proved: the width inputs reached, which the exact width is at least (ratios then over-state)
            exact = bound if proved else reached
            rows.setdefault("exact", []).append((bound / exact, time.perf_counter() - t, proved))
            for method, linear in (("interval", False), ("linear", True)):
                t = time.perf_counter()
                y_lo, y_hi = crown.output_bounds(ops, lo32[None], hi32[None], linear)
                rows.setdefault(method, []).append(((y_hi - y_lo)[0] / exact, time.perf_counter() - t, False))
            t = time.perf_counter()
            split, _, _ = widths(model, lo, hi, "split", args.budget)
            rows.setdefault("split", []).append((split / exact, time.perf_counter() - t, False))
            t = time.perf_counter()
            x = np.random.default_rng(seed).uniform(lo, hi, (args.samples, 5)).astype(np.float32)
            y = networks.forward(layers, weights, x)
            rows.setdefault("sampling", []).append(((y.max(0) - y.min(0)) / exact, time.perf_counter() - t, False))
        for method, results in rows.items():
            ratios = np.concatenate([r[0] for r in results])
            seconds = np.mean([r[1] for r in results])
            note = f"  (exact proved for {sum(r[2] for r in results)}/{len(results)})" if method == "exact" else ""
            print(f"{shape:<11}{method:<10}{ratios.mean():>11.3f}{ratios.max():>11.3f}{seconds:>10.3f}{note}")


if __name__ == "__main__":
    main()
