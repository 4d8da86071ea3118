"""Which Keras backend trains (TensorFlow by default, JAX with KERAS_BACKEND=jax) and on what device."""

from __future__ import annotations

import os
from pathlib import Path

import keras

BACKEND = keras.backend.backend()  # "tensorflow" (the default) or "jax" (KERAS_BACKEND=jax)


def enable_compile_cache(directory: str) -> None:
    """Keep compiled epochs on disk under `directory`/<backend>, so a new worker process (or a
    restarted one) loads a shape compiled before instead of compiling it again: JAX's persistent
    compilation cache, or XLA's for TensorFlow (read at the first compile); "" leaves it off."""
    if not directory:
        return
    path = Path(directory).expanduser() / BACKEND
    path.mkdir(parents=True, exist_ok=True)
    if BACKEND == "jax":
        import jax

        # jax.config.update has no annotations
        jax.config.update("jax_compilation_cache_dir", str(path))  # type: ignore[no-untyped-call]
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # type: ignore[no-untyped-call]  # a CPU compiles an epoch in < 1 s
    else:
        flags = os.environ.get("TF_XLA_FLAGS", "")
        os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={path}".strip()


def default_device() -> str:
    """GPU:0 when the backend sees a GPU, else CPU:0."""
    if BACKEND == "jax":
        import jax

        return "GPU:0" if any(d.platform == "gpu" for d in jax.devices()) else "CPU:0"
    import tensorflow as tf

    return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
