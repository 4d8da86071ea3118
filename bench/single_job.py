"""One seed job (sigma 0.5, n 100000, 3 epochs, batch 32, Adam 1e-3): bumpfit's engine against
the seed's own Keras `fit` path, in one run on this machine.

    python bench/single_job.py
"""

from __future__ import annotations

import time

from bench.common import engine_spec, seed_fit


def main() -> None:
    import tensorflow as tf  # noqa: F401 - imported before timing, as in a running worker

    from app.model import data
    from workers.engine import Member, factory, train

    def engine() -> tuple[float, float]:
        x, y = data.synthetic("bump", {"sigma": 0.5}, 100_000, (-1.0, 1.0), 0.0, 0)
        spec = engine_spec(3, seed=0)
        start = time.perf_counter()
        result = train(Member("bench", spec, x, y))
        return result.params["sigma"], time.perf_counter() - start

    first_sigma, first = engine()  # first job in the process: TensorFlow's warm-up and the XLA compile
    factory._CACHE.clear()
    second_sigma, second = engine()  # a warm worker, new job shape: the XLA compile is included
    third_sigma, third = engine()  # a warm worker, a job shape it has compiled before
    seed_sigma, seed = seed_fit(0.5, 3)
    print(f"bumpfit, first job in a new process:    {first:.3f} s  sigma={first_sigma:.7f}")
    print(f"bumpfit, warm worker, compile included: {second:.3f} s  sigma={second_sigma:.7f}")
    print(f"bumpfit, warm worker, compiled before:  {third:.3f} s  sigma={third_sigma:.7f}")
    print(f"seed's Keras fit path:                  {seed:.3f} s  sigma={seed_sigma:.7f}")
    print(
        f"seed / bumpfit: {seed / first:.1f}x (new process), {seed / second:.1f}x (compile included), "
        f"{seed / third:.0f}x (compiled before)"
    )


if __name__ == "__main__":
    main()
