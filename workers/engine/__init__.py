"""The training engine: job specs and arrays in, learned parameters, history and metrics out.

`group` (members, masks, buckets), `step` (backend-neutral math), `tensorflow` and `jax` (one
compiled loop each), `factory` (the compiled models' cache), `diagnostics`, `export` (`.keras`
artifacts), `shuffle` (on-device order), and `netgroup` (networks: `model.layers`) with `netmetrics`.
"""

from workers.engine.backend import BACKEND, default_device, enable_compile_cache
from workers.engine.group import EpochReport, Group, Member, Result, bucket, save_artifact, train, train_group
from workers.engine.netgroup import NetworkGroup  # registers the group of networks

__all__ = [
    "BACKEND",
    "EpochReport",
    "Group",
    "Member",
    "NetworkGroup",
    "Result",
    "bucket",
    "default_device",
    "enable_compile_cache",
    "save_artifact",
    "train",
    "train_group",
]
