"""Early stopping per member, in Keras's words: `keras.callbacks.EarlyStopping` with mode "min"
and no baseline, its epochs counted from 1 (Keras counts from 0).

An epoch's monitored value (its `loss` or `val_loss` history value) improves on the best one when
it is lower by more than `min_delta`. Epochs up to `start_from_epoch` are not monitored. Every
monitored epoch adds one to `wait`, an improvement sets it back to 0, and a member stops after the
first epoch without improvement where `wait >= patience` (never after epoch 1). With
`restore_best_weights` the member ends with the best epoch's parameters, whether it stopped early
or ran every epoch (as Keras's `on_train_end`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Stopper:
    """One member's EarlyStopping state."""

    monitor: str = "loss"
    min_delta: float = 0.0
    patience: int = 5
    restore_best_weights: bool = True
    start_from_epoch: int = 0
    wait: int = 0
    best: float | None = None
    best_epoch: int = 0  # from 1; 0 before any epoch was monitored
    best_row: dict[str, Any] | None = None  # the best epoch's history row, kept when restoring

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Stopper | None:
        """The stopper a job spec asks for, or None (`training.early_stopping` null or absent)."""
        settings = spec["training"].get("early_stopping")
        return None if settings is None else cls(**settings)

    def update(self, epoch: int, row: dict[str, Any]) -> bool:
        """Take epoch `epoch`'s history row (epochs from 1); True when the member stops after it."""
        current = row.get(self.monitor)
        if current is None or epoch - 1 < self.start_from_epoch:
            return False  # not reported (non-finite), or still warming up
        if self.restore_best_weights and self.best_row is None:
            self.best_row, self.best_epoch = row, epoch
        self.wait += 1
        if self.best is None or current + abs(self.min_delta) < self.best:
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights:
                self.best_row = row
            return False
        return self.wait >= self.patience and epoch > 1

    @property
    def restore(self) -> dict[str, Any] | None:
        """The history row whose parameters the member ends with, or None: its last ones."""
        return self.best_row if self.restore_best_weights else None
