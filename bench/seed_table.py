"""The seed's whole experiment, each of the 99 jobs trained alone through the engine:
sigma 0.1 ... 9.9, n 100000, x in [-1, 1], batch 32, Adam 1e-3, 3/5/10 epochs.

    python bench/seed_table.py
"""

from __future__ import annotations

import time

from bench.common import N, engine_spec, seed_table


def main() -> None:
    from app.model import data
    from workers.engine import Member, train

    start = time.perf_counter()
    errors = []
    for i, (sigma, epochs) in enumerate(seed_table()):
        x, y = data.synthetic("bump", {"sigma": sigma}, N, (-1.0, 1.0), 0.0, i)
        result = train(Member(str(i), engine_spec(epochs, seed=i), x, y))
        err = abs(result.params["sigma"] - sigma)
        errors.append(err)
        flag = "" if err <= 1e-2 else "  <-- over 1e-2"
        print(
            f"sigma {sigma:4.1f}  epochs {epochs:2d}  learned {result.params['sigma']:.6f}  error {err:.2e}{flag}",
            flush=True,
        )
    wall = time.perf_counter() - start
    print(f"largest error {max(errors):.2e} over {len(errors)} jobs; within 1e-2: {sum(e <= 1e-2 for e in errors)}")
    print(f"wall time {wall:.1f} s ({wall / len(errors):.2f} s per job, one job at a time)")


if __name__ == "__main__":
    main()
