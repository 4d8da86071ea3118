"""The training engine: job specs and arrays in, learned parameters, history and metrics out.

`group` (members, masks, buckets: one group for every job, a single layer being a one-layer
network), `step` (backend-neutral math), `tensorflow` and `jax` (one compiled loop each),
`factory` (the compiled models' cache), `diagnostics`, `evaluation` (history and final metrics,
with `netmetrics`), `export` (`.keras` artifacts) and `shuffle` (on-device order).
"""

from workers.engine.backend import BACKEND, default_device, enable_compile_cache
from workers.engine.group import Group, save_artifact, train, train_group
from workers.engine.result import EpochReport, Member, Result
from workers.engine.step import bucket

__all__ = [
    "BACKEND",
    "EpochReport",
    "Group",
    "Member",
    "Result",
    "bucket",
    "default_device",
    "enable_compile_cache",
    "save_artifact",
    "train",
    "train_group",
]
