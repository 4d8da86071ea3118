"""The seed's table (sigma 0.1 ... 9.9, n 100000, batch 32, Adam 1e-3) on an x range wide enough
for each sigma, trained twice through the engine, in this process, fused as the queue fuses them:
with the seed's fixed epochs (3 below sigma 1, 5 below 5, else 10: one group per epoch count, as
the fuse key splits them), and with early stopping on the loss and a generous maximum (one group).

Each job's x range is wide enough for its sigma: by default ("wide") [-max(1, sigma), max(1, sigma)],
the seed's [-1, 1] up to sigma 1 and then as wide as sigma, which holds the bump's whole support
|x| < sqrt(sigma) with room to spare; with --range support, [-1.2 sqrt(sigma), 1.2 sqrt(sigma)]: the
support and a 20% margin where the bump is 0. Every compiled shape is compiled by a one-epoch pass
before the timed runs, so both times are of warm workers.

    python -m bench.early_stopping [--range wide|support] [--epochs 30] [--patience 2] [--min-delta 0] [--every 1]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from bench.common import N, engine_spec, seed_table

RANGE = "wide"


def x_range(sigma: float) -> tuple[float, float]:
    """[-max(1, sigma), max(1, sigma)], or the bump's support and a 20% margin on each side."""
    half = max(1.0, sigma) if RANGE == "wide" else 1.2 * math.sqrt(sigma)
    return (-half, half)


def run(
    table: list[tuple[float, int]], early: dict[str, Any] | None, max_epochs: int, warm: bool = False
) -> tuple[list[Any], float]:
    """Train the table's jobs fused as the queue would: (results in table order, wall seconds);
    `warm`: one epoch per group, only to compile its shape."""
    from app.model import data
    from workers.engine import Member, train_group

    groups: dict[int, list[tuple[int, Any]]] = {}
    for i, (sigma, epochs) in enumerate(table):
        x, y = data.synthetic("bump", {"sigma": sigma}, N, x_range(sigma), 0.0, i)
        key = max_epochs if early else epochs  # the fuse key: one group per epoch count
        member = Member(str(i), engine_spec(1 if warm else key, seed=i, early_stopping=early), x, y)
        groups.setdefault(key, []).append((i, member))
    results: list[Any] = [None] * len(table)
    start = time.perf_counter()
    for members in groups.values():
        for (i, _), result in zip(members, train_group([m for _, m in members]), strict=True):
            results[i] = result
    return results, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30, help="the most epochs with early stopping")
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--min-delta", type=float, default=0.0)
    ap.add_argument("--every", type=int, default=1, help="take every k-th sigma of the table (1: all 99)")
    ap.add_argument("--range", choices=("wide", "support"), default="wide", help="each job's x range (see above)")
    args = ap.parse_args()
    global RANGE
    RANGE = args.range
    table = seed_table()[:: args.every]
    early = {
        "monitor": "loss",
        "min_delta": args.min_delta,
        "patience": args.patience,
        "restore_best_weights": True,
        "start_from_epoch": 0,
    }
    run(table, None, 0, warm=True)
    run(table, early, args.epochs, warm=True)
    fixed, fixed_s = run(table, None, 0)
    stopped, stopped_s = run(table, early, args.epochs)
    head = f"{'sigma':>5} {'x range':>16} | {'epochs':>6} {'error':>9} | {'epochs':>6} {'error':>9}"
    print(head + "  (fixed | early stopping)")
    for (sigma, epochs), f, s in zip(table, fixed, stopped, strict=True):
        lo, hi = x_range(sigma)
        ran = len(s.history)
        print(
            f"{sigma:5.1f} [{lo:6.2f}, {hi:5.2f}] | {epochs:6d} {abs(f.params['sigma'] - sigma):9.2e} | "
            f"{ran:6d} {abs(s.params['sigma'] - sigma):9.2e}"
            + ("" if s.stopped_epoch is not None else "  (ran every epoch)"),
            flush=True,
        )
    for name, results, seconds, ran_each in (
        ("fixed epochs (3/5/10)", fixed, fixed_s, [e for _, e in table]),
        (
            f"early stopping (max {args.epochs}, patience {args.patience}, min_delta {args.min_delta})",
            stopped,
            stopped_s,
            [len(r.history) for r in stopped],
        ),
    ):
        errors = [abs(r.params["sigma"] - s) for r, (s, _) in zip(results, table, strict=True)]
        worst = max(range(len(errors)), key=errors.__getitem__)
        print(
            f"{name}: {sum(e <= 1e-2 for e in errors)}/{len(errors)} within 1e-2, largest error {errors[worst]:.2e} "
            f"(sigma {table[worst][0]}), epochs {min(ran_each)}..{max(ran_each)} "
            f"(mean {sum(ran_each) / len(ran_each):.1f}, "
            f"{sum(ran_each)} job-epochs), wall {seconds:.1f} s"
        )


if __name__ == "__main__":
    main()
