"""The engine beside a minimal fused JAX loop doing the same work, on the GPU when the backend
sees one, else on the CPU: K bump jobs (Adam 1e-3, batch 32, MSE, a fresh shuffle per member and
epoch), n rows each. For each K it prints both rates in sample-updates per second, their ratio,
the compile time (first run less a second, warm one) and the host time per epoch outside the
compiled step; the last line is the engine's host time per epoch at K=1000 (or the largest K run).

    python bench/gpu.py                                      # K = 1, 99, 1000, 10000; n 100000; 3 epochs
    python bench/gpu.py --k 1000 --n 100000 --epochs 2       # the figure the README quotes for a CPU
    KERAS_BACKEND=jax python bench/gpu.py                    # the engine's JAX form (a GPU host)
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.common import N, engine_spec, seed_table

BATCH, LR = 32, 1e-3


def members(k: int, n: int, epochs: int) -> list[Any]:
    """K jobs over the seed table's 99 sigmas (data shared between jobs of one sigma), seeds 0..K-1."""
    from app.model import data
    from workers.engine import Member

    sigmas = [s for s, _ in seed_table()]
    datasets = [data.synthetic("bump", {"sigma": s}, n, (-1.0, 1.0), 0.0, i) for i, s in enumerate(sigmas[:k])]

    return [
        Member(str(i), engine_spec(epochs, seed=i, learning_rate=LR, batch_size=BATCH), *datasets[i % len(datasets)])
        for i in range(k)
    ]


def engine(jobs: list[Any], device: str) -> tuple[float, float]:
    """One group through the engine: (seconds from host arrays to results, host ms per epoch)."""
    from workers.engine import Group

    start = time.perf_counter()
    group = Group(jobs, device)
    group.run(None)
    return time.perf_counter() - start, 1e3 * float(np.mean(group.host_seconds))


@functools.lru_cache(maxsize=4)
def minimal_epoch(k: int, n: int) -> Callable[..., Any]:
    """The minimal loop's compiled epoch for K members of n rows; data and state are arguments."""
    import jax
    import jax.numpy as jnp

    from app.model import functions

    steps = math.ceil(n / BATCH)

    def loss(s: Any, xb: Any, yb: Any, wb: Any) -> Any:
        err = functions.bump(jnp, xb, s) - yb
        return jnp.sum(jnp.sum(err * err * wb, axis=1) / jnp.sum(wb))

    def epoch(state: tuple[Any, ...], x: Any, y: Any, key: Any) -> tuple[Any, ...]:
        perm = jax.vmap(lambda kk: jax.random.permutation(kk, n))(jax.random.split(key, k))
        perm = jnp.pad(perm, ((0, 0), (0, steps * BATCH - n))).reshape(k, steps, BATCH).transpose(1, 0, 2)
        w = (jnp.arange(steps * BATCH) < n).astype(jnp.float32).reshape(steps, BATCH)

        def step(state: tuple[Any, ...], i: Any) -> tuple[tuple[Any, ...], None]:
            s, m, v, t = state
            rows = perm[i]
            g = jax.grad(loss)(s, jnp.take_along_axis(x, rows, 1), jnp.take_along_axis(y, rows, 1), w[i])
            t = t + 1
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            s = s - LR * (m / (1 - 0.9**t)) / (jnp.sqrt(v / (1 - 0.999**t)) + 1e-7)
            return (jnp.maximum(s, 0.0), m, v, t), None

        return jax.lax.scan(step, state, jnp.arange(steps))[0]

    return jax.jit(epoch)


def minimal(jobs: list[Any], epochs: int) -> tuple[float, float]:
    """The same training as a bare `jax.jit` of a `lax.scan` per epoch, with `jax.random`
    permutations and hand-written Adam: (seconds from host arrays to results, host ms per epoch)."""
    import jax
    import jax.numpy as jnp

    k, n = len(jobs), jobs[0].x.shape[0]
    start = time.perf_counter()
    epoch = minimal_epoch(k, n)
    x = jax.device_put(np.stack([j.x[:, 0] for j in jobs]))
    y = jax.device_put(np.stack([j.y[:, 0] for j in jobs]))
    sigma = jnp.asarray(np.random.default_rng(0).uniform(0.01, 0.1, (k, 1)), jnp.float32)
    state = (sigma, jnp.zeros_like(sigma), jnp.zeros_like(sigma), jnp.float32(0))
    host = 0.0
    for e in range(epochs):
        t0 = time.perf_counter()
        key = jax.random.key(e)
        host += time.perf_counter() - t0
        state = jax.block_until_ready(epoch(state, x, y, key))
    return time.perf_counter() - start, 1e3 * host / epochs


def timed(run: Callable[[], tuple[float, float]]) -> tuple[float, float, float]:
    """(warm seconds, compile seconds, warm host ms per epoch): a first run, then a warm one."""
    cold, _ = run()
    warm, host = run()
    return warm, max(cold - warm, 0.0), host


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", default="1,99,1000,10000", help="comma-separated member counts")
    parser.add_argument("--n", type=int, default=N, help="rows per job")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]

    import jax

    from workers.engine import BACKEND, default_device

    device = default_device()
    print(
        f"engine: keras backend {BACKEND} on {device}; minimal loop: jax on {jax.devices()[0].platform}; "
        f"n {args.n}, {args.epochs} epochs, batch {BATCH}"
    )
    hosts = {}
    for k in ks:
        jobs = members(k, args.n, args.epochs)
        updates = k * args.n * args.epochs
        e_warm, e_compile, e_host = timed(lambda: engine(jobs, device))  # noqa: B023
        m_warm, m_compile, m_host = timed(lambda: minimal(jobs, args.epochs))  # noqa: B023
        hosts[k] = e_host
        print(
            f"K={k}: engine {updates / e_warm:.3g} sample-updates/s ({e_warm:.2f} s warm, compile {e_compile:.2f} s, "
            f"host {e_host:.2f} ms/epoch); minimal {updates / m_warm:.3g} ({m_warm:.2f} s, compile "
            f"{m_compile:.2f} s, host {m_host:.2f} ms/epoch); engine/minimal rate {m_warm / e_warm:.2f}",
            flush=True,
        )
    k = 1000 if 1000 in hosts else max(hosts)
    print(f"host per epoch: {hosts[k]:.1f} ms at K={k}, n={args.n}")


if __name__ == "__main__":
    main()
