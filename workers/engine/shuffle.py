"""Each member's row order for an epoch: on a GPU computed on the device from its keys and the
epoch number, on a CPU drawn whole by the host ahead of the epoch (`HostOrders`).

On a GPU the order is a keyed bijection on [0, n): a Feistel network on the smallest power of two >= n
(halves of unequal width when the bit count is odd), with cycle walking to land back in [0, n).
It is written once against an array namespace, NumPy or `keras.ops`, and uses only int32 values
that never exceed 2**31 - 1, so NumPy, TensorFlow and JAX compute the same orders bit for bit
(int32 overflow and unsigned types behave differently across the three; no value here overflows).
Any row of the order can be computed alone, so the compiled epoch draws each batch's rows where
it needs them: nothing of size K x n crosses from the host, and nothing that size is built.

On a CPU that bijection, with its cycle walking, costs more than the step it orders (a CPU has no
spare lanes to hide it in), so there each member's whole order for an epoch is a NumPy permutation
drawn from a generator seeded by the member's keys and the epoch number, one epoch ahead in a
thread while the device trains: a job's order still depends only on its own seed and n, and is the
same on TensorFlow and JAX; the step only looks its batch's rows up in it.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

ROUNDS = 6  # Feistel rounds; each round key is 15 bits
KEY_BITS = 15
KEY_MASK = (1 << KEY_BITS) - 1
MAX_ROWS = 1 << (2 * KEY_BITS)  # halves of at most 15 bits keep every product below 2**31
ON_HOST = ("CPU",)  # device kinds whose orders the host draws ahead of each epoch (bench/sweep.py)


def draw_keys(rng: np.random.Generator) -> np.ndarray:
    """A member's round keys, drawn from its own seeded generator: (ROUNDS,) int32."""
    return rng.integers(0, 1 << KEY_BITS, size=ROUNDS).astype(np.int32)


def mix(xp: Any, x: Any) -> Any:
    """A 15-bit integer hash of values in [0, 2**15); every intermediate stays below 2**31."""
    x = xp.multiply(x, 0x7FEB)  # < 2**30
    x = xp.bitwise_xor(x, xp.right_shift(x, 15))
    x = xp.add(xp.multiply(xp.bitwise_and(x, KEY_MASK), 0x68E3), xp.right_shift(x, 15))  # < 2**30 + 2**15
    x = xp.bitwise_xor(x, xp.right_shift(x, 13))
    return xp.bitwise_and(x, KEY_MASK)


def epoch_keys(xp: Any, keys: Any, epoch: Any) -> Any:
    """The round keys (K, ROUNDS) of one epoch: the member's keys hashed with the epoch number."""
    low = xp.bitwise_and(epoch, KEY_MASK)
    high = xp.bitwise_and(xp.right_shift(epoch, KEY_BITS), KEY_MASK)
    return mix(xp, xp.bitwise_xor(mix(xp, xp.bitwise_xor(keys, low)), high))


def encrypt(xp: Any, v: Any, keys: Any, bits: int) -> Any:
    """One pass of the Feistel bijection on [0, 2**bits) for v (K, B) with epoch keys (K, ROUNDS)."""
    lo = bits // 2
    a, b = xp.right_shift(v, lo), xp.bitwise_and(v, (1 << lo) - 1)  # a: bits - lo wide, b: lo wide
    widths = (bits - lo, lo)
    for r in range(ROUNDS):  # (a, b) -> (b, a ^ F(b)); the widths swap each round and are back after 6
        f = mix(xp, xp.bitwise_xor(b, keys[:, r : r + 1]))
        a, b = b, xp.bitwise_and(xp.bitwise_xor(a, f), (1 << widths[r % 2]) - 1)
    return xp.bitwise_or(xp.left_shift(a, lo), b)


def row_order(xp: Any, keys: Any, positions: Any, n: int, shuffle: Any) -> Any:
    """Rows at `positions` (K, B), each in [0, n), of every member's order for the epoch whose
    round keys are `keys` (K, ROUNDS); members whose `shuffle` (K,) is 0 keep the rows in order."""
    if n > MAX_ROWS:
        raise ValueError(f"at most {MAX_ROWS} rows can be shuffled, not {n}")
    bits = (n - 1).bit_length()
    out = encrypt(xp, positions, keys, bits)
    if xp is np:
        while np.any(out >= n):
            out = np.where(out >= n, encrypt(np, out, keys, bits), out)
    else:  # cycle walking: an index outside [0, n) is encrypted again until it falls inside

        def walk(v: Any) -> tuple[Any]:
            return (xp.where(v >= n, encrypt(xp, v, keys, bits), v),)

        (out,) = xp.while_loop(lambda v: xp.any(v >= n), walk, (out,))
    return xp.where(xp.expand_dims(shuffle, 1) > 0, out, positions)


def permutation(keys: np.ndarray, epoch: int, n: int, shuffle: bool = True) -> np.ndarray:
    """NumPy reference: each member's whole order for one epoch, (K, n)."""
    k = keys.shape[0]
    positions = np.broadcast_to(np.arange(n, dtype=np.int32), (k, n))
    flags = np.full(k, int(shuffle), np.int32)
    return row_order(np, epoch_keys(np, keys, np.int32(epoch)), positions, n, flags)  # type: ignore[no-any-return]


def on_host(device: str) -> bool:
    """Whether a group on `device` ("CPU:0", "GPU:0") takes its orders from the host."""
    return device.split(":")[0].upper() in ON_HOST


def host_order(keys: np.ndarray, epoch: int, n: int) -> np.ndarray:
    """A member's whole order for one epoch, drawn on the host: (n,) int32, a permutation of
    [0, n) from a generator seeded by the member's round keys (ROUNDS,) and the epoch number."""
    seed = [int(v) for v in keys] + [int(epoch)]
    return np.random.default_rng(seed).permutation(n).astype(np.int32)


def rows_at(xp: Any, keys: Any, order: Any, positions: Any, n: int, shuffle: Any) -> Any:
    """Rows at `positions` (K, B) of every member's order for the epoch: looked up in the host's
    `order` (K, n) when there is one, else computed from the epoch's round `keys` (`row_order`)."""
    if order is None:
        return row_order(xp, keys, positions, n, shuffle)
    return xp.take_along_axis(order, positions, axis=1)


class HostOrders:
    """A group's orders drawn by the host (`host_order`) in a thread: the first epoch's while the
    group is loaded, each next one while the epoch before it trains. Members whose shuffle flag
    is 0 (and padding members) keep the rows in order."""

    _pool = ThreadPoolExecutor(1, thread_name_prefix="row-order")  # one drawing thread per process
    _lock = threading.Lock()

    def __init__(self, keys: np.ndarray, flags: np.ndarray, n: int, epochs: int) -> None:
        self.keys, self.flags, self.n, self.epochs = np.asarray(keys), np.asarray(flags), n, epochs
        self.ahead: tuple[int, Future[np.ndarray]] | None = (1, self._pool.submit(self.draw, 1))

    def draw(self, epoch: int) -> np.ndarray:
        """Every member's order for `epoch`: (K, n) int32."""
        out = np.broadcast_to(np.arange(self.n, dtype=np.int32), (len(self.keys), self.n)).copy()
        for k in np.flatnonzero(self.flags):
            out[k] = host_order(self.keys[k], epoch, self.n)
        return out

    def get(self, epoch: int) -> np.ndarray:
        """The orders of `epoch` (drawn ahead when it follows the one asked before), and the next
        epoch's started in the background (none after the last)."""
        with self._lock:
            ahead, self.ahead = self.ahead, None
        order = ahead[1].result() if ahead is not None and ahead[0] == epoch else self.draw(epoch)
        if ahead is not None and ahead[0] != epoch:
            ahead[1].cancel()
        if epoch < self.epochs:
            with self._lock:
                self.ahead = (epoch + 1, self._pool.submit(self.draw, epoch + 1))
        return order

    def close(self) -> None:
        """Drop the epoch drawn ahead (the group ended, or another took the compiled model)."""
        with self._lock:
            ahead, self.ahead = self.ahead, None
        if ahead is not None:
            ahead[1].cancel()
