"""A network's metrics by Keras name, computed with `keras.metrics` for every member at once from
the fused model's predictions (K, rows, outputs): one number per member."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

# `accuracy` means the accuracy that fits the loss, as Keras's compile() resolves it.
ACCURACY_OF = {
    "binary_crossentropy": "binary_accuracy",
    "sparse_categorical_crossentropy": "sparse_categorical_accuracy",
    "categorical_crossentropy": "categorical_accuracy",
}


def _per_member(values: Any) -> np.ndarray:
    """A metric's per-row values (K, rows, ...) -> their mean per member (K,)."""
    v = ops.convert_to_numpy(values)
    return v.reshape(v.shape[0], -1).mean(axis=1)  # type: ignore[no-any-return]


def _columns(t: Any) -> Any:
    """(K, rows, m) -> (rows * m, K): each member one column, for the metrics that keep columns apart."""
    k = t.shape[0]
    return ops.transpose(ops.reshape(t, (k, -1)))


def _exact(y: Any, pred: Any) -> np.ndarray:
    return _per_member(ops.cast(ops.equal(y, pred), "float32"))


def _r2(y: Any, pred: Any) -> np.ndarray:
    """R2Score per output column without class aggregation; a member's is the mean of its columns."""
    k, m = y.shape[0], y.shape[-1]
    r2 = keras.metrics.R2Score(class_aggregation=None)

    def cols(t: Any) -> Any:
        return ops.reshape(ops.transpose(t, (1, 0, 2)), (-1, k * m))

    r2.update_state(cols(y), cols(pred))
    return ops.convert_to_numpy(r2.result()).reshape(k, m).mean(axis=1)  # type: ignore[no-any-return]


def _auc(y: Any, pred: Any) -> np.ndarray:
    """ROC AUC per member: Keras's AUC (multi_label, one label per member) gathers the confusion
    counts, and the area is its interpolated Riemann sum taken per label instead of averaged."""
    auc = keras.metrics.AUC(multi_label=True, num_labels=int(y.shape[0]))
    auc.update_state(_columns(y), _columns(pred))
    tp, fp, tn, fn = (
        ops.convert_to_numpy(v)
        for v in (auc.true_positives, auc.false_positives, auc.true_negatives, auc.false_negatives)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.nan_to_num(tp / (tp + fn))
        fpr = np.nan_to_num(fp / (fp + tn))
    return np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2, axis=0)  # type: ignore[no-any-return]


METRICS: dict[str, Callable[[Any, Any], np.ndarray]] = {
    "binary_accuracy": lambda y, p: _per_member(keras.metrics.binary_accuracy(y, p)),
    "sparse_categorical_accuracy": lambda y, p: _per_member(keras.metrics.sparse_categorical_accuracy(y, p)),
    "categorical_accuracy": lambda y, p: _per_member(keras.metrics.categorical_accuracy(y, p)),
    "accuracy": _exact,
    "mae": lambda y, p: _per_member(keras.metrics.mean_absolute_error(y, p)),
    "mse": lambda y, p: _per_member(keras.metrics.mean_squared_error(y, p)),
    "rmse": lambda y, p: np.sqrt(_per_member(keras.metrics.mean_squared_error(y, p))),
    "r2": _r2,
    "auc": _auc,
}


def compute(names: list[str], loss: str, y: Any, pred: Any) -> dict[str, np.ndarray]:
    """Each asked metric (Keras's names) of each member: {name: (K,)}. Integer labels are compared
    one-hot with the predictions, except by the sparse accuracy."""
    out = {}
    dense = y
    if y.shape[-1] != pred.shape[-1]:
        dense = ops.one_hot(ops.cast(y[..., 0], "int32"), pred.shape[-1])
    for name in names:
        resolved = ACCURACY_OF.get(loss, "accuracy") if name == "accuracy" else name
        out[name] = METRICS[resolved](y if resolved.startswith("sparse") else dense, pred)
    return out
