"""The JAX form of the compiled epoch: one `jax.jit`-compiled `lax.scan` (KERAS_BACKEND=jax)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from keras import ops

from workers.engine.shuffle import epoch_keys
from workers.engine.step import Compiled, Signature


class JaxCompiled(Compiled):
    """The epoch as one `jax.jit`-compiled `lax.scan` over batches, written with the layer's
    `stateless_call` and the optimizer's `stateless_apply` (KERAS_BACKEND=jax, CPU or GPU)."""

    def __init__(self, sig: Signature) -> None:
        super().__init__(sig)
        self._epoch = jax.jit(self._epoch_fn)
        self._evaluate = jax.jit(self._evaluate_fn)

    def put_data(self, arrays: dict[str, np.ndarray]) -> None:
        device = jax.devices("gpu" if self.sig.device.startswith("GPU") else "cpu")[0]
        for name, a in arrays.items():
            setattr(self, name, jax.device_put(a, device))

    def epoch(self, number: int) -> tuple[Any, Any, Any]:
        trainable = [v.value for v in self.layer.trainable_variables]
        state = [v.value for v in self.optimizer.variables]
        trainable, state, out = self._epoch(
            trainable, state, self.x, self.y, self.keys, self.shuffle, self.weight, np.int32(number), self.order(number)
        )
        for v, value in zip(self.layer.trainable_variables + self.optimizer.variables, trainable + state, strict=True):
            v.assign(value)
        return out  # type: ignore[no-any-return]

    def evaluate(self, x: Any, y: Any) -> tuple[Any, Any]:
        return self._evaluate([v.value for v in self.layer.trainable_variables], x, y)  # type: ignore[no-any-return]

    def _loss(self, trainable: list[Any], x: Any, y: Any, w: Any, weight: Any) -> tuple[Any, tuple[Any, Any]]:
        (pred, taps), _ = self.layer.stateless_call(trainable, [], x)
        per_member = self.member_loss(y, pred, w[None, :])
        return ops.sum(per_member * weight), (per_member, taps)

    def _epoch_fn(
        self,
        trainable: list[Any],
        state: list[Any],
        x: Any,
        y: Any,
        keys: Any,
        shuffle: Any,
        weight: Any,
        number: Any,
        order: Any,
    ) -> tuple[Any, ...]:
        keys = epoch_keys(ops, keys, number)  # the group's arrays are arguments: the compile does not bake them in
        grad_fn = jax.grad(self._loss, has_aux=True)

        def step(carry: tuple[Any, ...], i: Any) -> tuple[tuple[Any, ...], None]:
            trainable, state, loss_sum, grad_abs, live = carry
            xb, yb, w = self.batch(x, y, keys, shuffle, i, order)
            grads, (per_member, taps) = grad_fn(trainable, xb, yb, w, weight)
            trainable, state = self.optimizer.stateless_apply(state, grads, trainable)
            dl, dg, dn = self.step_stats(per_member, grads, taps, w)
            return (trainable, state, loss_sum + dl, grad_abs + dg, live + dn), None

        init = (trainable, state, *self.zero_stats())
        (trainable, state, loss_sum, grad_abs, live), _ = jax.lax.scan(step, init, jnp.arange(self.steps))
        return trainable, state, self.totals(loss_sum, grad_abs, live)

    def _evaluate_fn(self, trainable: list[Any], x: Any, y: Any) -> tuple[Any, Any]:
        (pred, _), _ = self.layer.stateless_call(trainable, [], x)
        return self.member_loss(y, pred, jnp.ones((1, x.shape[1]))), pred
