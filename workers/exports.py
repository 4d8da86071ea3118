"""Model exports made by idle workers: a version's `.keras` file as a TensorFlow SavedModel whose
`serving_default` signature maps `x` (float32 rows) to `output_0`, as TensorFlow Serving and Triton load it."""

from __future__ import annotations

import io
import logging
import tarfile
import tempfile
from pathlib import Path

import keras

import workers.layers  # noqa: F401 - registers the layers, so the `.keras` file opens
from app.serving import exports
from app.store.db import session_scope

log = logging.getLogger("bumpfit.worker")


def saved_model_tar(keras_file: bytes, version: int) -> bytes:
    """A gzipped tar of the model as a SavedModel directory named `version` (TensorFlow Serving's layout)."""
    import tensorflow as tf  # here, not at import: a JAX-form worker without TensorFlow still trains

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(keras_file)
        model = keras.saving.load_model(path, compile=False)
        shape = [None, *model.inputs[0].shape[1:]]  # rows (None, features), or (None, timesteps, features)
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            name="serving_default",
            fn=lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec(shape, tf.float32, name="x")],
        )
        archive.write_out(str(Path(tmp) / "saved_model"), verbose=False)
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz") as tar:
            tar.add(Path(tmp) / "saved_model", arcname=str(version))
        return out.getvalue()


def run_one(url: str, lease_seconds: float) -> bool:
    """Make one pending export, if there is one; True when one was taken."""
    with session_scope(url) as s:
        claimed = exports.claim(s, lease_seconds)
    if claimed is None:
        return False
    data, error = None, None
    try:
        data = saved_model_tar(claimed.keras, claimed.version)
    except Exception as exc:  # noqa: BLE001 - a model that cannot be exported fails its export, not the worker
        log.exception("export of job %s failed", claimed.job_id)
        error = f"{type(exc).__name__}: {exc}"
    with session_scope(url) as s:
        exports.finish(s, claimed.job_id, claimed.format, data, error)
    log.info("exported job %s as %s", claimed.job_id, claimed.format)
    return True
