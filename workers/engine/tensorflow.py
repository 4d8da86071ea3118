"""The TensorFlow form of the compiled epoch: one XLA-compiled `tf.while_loop`."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from keras import ops

from workers.engine.shuffle import ROUNDS, epoch_keys
from workers.engine.step import Compiled, Signature


class TensorFlowCompiled(Compiled):
    """The epoch as one XLA-compiled `tf.while_loop`; the group's arrays live in device variables."""

    def __init__(self, sig: Signature) -> None:
        super().__init__(sig)

        def var(shape: int | tuple[int, ...], dtype: Any = tf.float32) -> Any:
            return tf.Variable(tf.zeros(shape, dtype), trainable=False)

        k, f, m = sig.k, sig.x_shape, sig.y_width
        with tf.device(sig.device):
            self.x, self.y = var((k, sig.n_train, *f)), var((k, sig.n_train, m))
            self.xv, self.yv = var((k, sig.n_val, *f)), var((k, sig.n_val, m))
            self.keys, self.shuffle, self.weight = var((k, ROUNDS), tf.int32), var(k, tf.int32), var(k)
        self._epoch = tf.function(self._epoch_fn, jit_compile=True, autograph=False)
        self._evaluate = tf.function(self._evaluate_fn, autograph=False)  # used once an epoch: not worth an XLA compile

    def put_data(self, arrays: dict[str, np.ndarray]) -> None:
        for name, a in arrays.items():
            getattr(self, name).assign(a)

    def epoch(self, number: int) -> tuple[Any, Any, Any]:
        order = self.order(number)
        order = None if order is None else tf.convert_to_tensor(order)  # a tensor: no retrace
        return self._epoch(tf.constant(number, tf.int32), order)  # type: ignore[no-any-return]

    def evaluate(self, x: Any, y: Any) -> tuple[Any, Any]:
        return self._evaluate(x, y)  # type: ignore[no-any-return]

    def gather(self, a: Any, rows: Any) -> Any:
        return tf.gather(a, rows, batch_dims=1)

    def _epoch_fn(self, number: Any, order: Any) -> tuple[Any, Any, Any]:
        keys, shuffle = epoch_keys(ops, tf.convert_to_tensor(self.keys), number), tf.convert_to_tensor(self.shuffle)
        variables = self.layer.trainable_variables

        def body(i: Any, loss_sum: Any, grad_abs: Any, live: Any) -> tuple[Any, ...]:
            xb, yb, w = self.batch(self.x, self.y, keys, shuffle, i, order)
            with tf.GradientTape() as tape:
                pred, taps = self.layer(xb)
                per_member = self.member_loss(yb, pred, w[None, :])
                total = ops.sum(per_member * self.weight)
            grads = tape.gradient(total, variables)
            self.optimizer.apply(grads, variables)
            dl, dg, dn = self.step_stats(per_member, grads, taps, w)
            return i + 1, loss_sum + dl, grad_abs + dg, live + dn

        zeros = self.zero_stats()
        _, loss_sum, grad_abs, live = tf.while_loop(lambda i, *_: i < self.steps, body, (tf.constant(0), *zeros))
        return self.totals(loss_sum, grad_abs, live)

    def _evaluate_fn(self, x: Any, y: Any) -> tuple[Any, Any]:
        pred, _ = self.layer(x)
        return self.member_loss(y, pred, tf.ones((1, tf.shape(x)[1]))), pred
