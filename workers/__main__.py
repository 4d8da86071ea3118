"""`python -m workers` (or `bumpfit worker`): one worker process on this host's device."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX: take GPU memory as needed


def main() -> None:
    """Configure the device, then claim and train jobs until SIGTERM."""
    from app.logs import configure
    from app.settings import get_settings

    settings = get_settings()
    configure(settings.log_level)
    if settings.worker_device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from workers.engine import BACKEND, enable_compile_cache

    enable_compile_cache(settings.compile_cache_dir)

    if BACKEND == "tensorflow":  # KERAS_BACKEND=jax runs the JAX form, no TensorFlow
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    from workers.runner import Worker

    logging.getLogger("bumpfit.worker").info("settings: %s", settings.masked())
    Worker(settings).run()


if __name__ == "__main__":
    main()
