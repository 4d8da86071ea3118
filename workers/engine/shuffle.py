"""Each member's row order for an epoch, computed on the device from its keys and the epoch number.

The order is a keyed bijection on [0, n): a Feistel network on the smallest power of two >= n
(halves of unequal width when the bit count is odd), with cycle walking to land back in [0, n).
It is written once against an array namespace, NumPy or `keras.ops`, and uses only int32 values
that never exceed 2**31 - 1, so NumPy, TensorFlow and JAX compute the same orders bit for bit
(int32 overflow and unsigned types behave differently across the three; no value here overflows).
Any row of the order can be computed alone, so the compiled epoch draws each batch's rows where
it needs them: nothing of size K x n crosses from the host, and nothing that size is built.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ROUNDS = 6  # Feistel rounds; each round key is 15 bits
KEY_BITS = 15
KEY_MASK = (1 << KEY_BITS) - 1
MAX_ROWS = 1 << (2 * KEY_BITS)  # halves of at most 15 bits keep every product below 2**31


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
