"""The compiled models of a worker process: built by this backend's form, kept in a small cache.

`compiled_for` picks the form (`workers.engine.tensorflow` or `workers.engine.jax`) for the
backend and keeps the last `CACHE_SIZE` models, so groups of equal signatures share one compile.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import keras
from keras import ops

from workers.engine.backend import BACKEND
from workers.engine.step import Compiled, Signature, zero_arrays

_CACHE: OrderedDict[Signature, Compiled] = OrderedDict()
CACHE_SIZE = 4  # compiled models kept per worker process
_CACHE_LOCK = threading.Lock()  # guards _CACHE and _BUILDING
_BUILDING: dict[Signature, threading.Lock] = {}  # one lock per signature being built


def compiled_for(sig: Signature, warm: bool = False) -> Compiled:
    """The cached compiled model for `sig`, built on first use by this backend's loop; with `warm`,
    also compiled now (`warm_up`). Safe from several threads: a signature is built once, and
    a caller asking for one that another thread is building (a worker's start-up warm-up) waits
    for it and gets it ready, while other signatures go ahead."""
    with _CACHE_LOCK:
        building = _BUILDING.setdefault(sig, threading.Lock())
    with building:
        with _CACHE_LOCK:
            if sig in _CACHE:
                _CACHE.move_to_end(sig)
                return _CACHE[sig]
        if BACKEND == "jax":  # imported here: only the backend in use is installed for sure
            from workers.engine.jax import JaxCompiled as form
        else:
            from workers.engine.tensorflow import TensorFlowCompiled as form  # type: ignore[assignment]
        model = form(sig)
        if warm:
            warm_up(model)
        with _CACHE_LOCK:
            _CACHE[sig] = model
            _BUILDING.pop(sig, None)
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
        return model


def warm_up(model: Compiled) -> None:
    """Compile the epoch and the final evaluation now, by running them once on a group of zeros
    (every member a padding member: weight 0, nothing learned); the next `load` resets it all.
    The evaluation is that of both splits, which a group runs after epochs and at the end."""
    sig = model.sig
    with keras.device(sig.device):
        model.put_data(zero_arrays(sig))
        model.put_orders(zero_arrays(sig), 1)
        ops.convert_to_numpy(model.epoch(1)[0])
        for x, y in [(model.x, model.y), *([(model.xv, model.yv)] if sig.n_val else [])]:
            ops.convert_to_numpy(model.evaluate(x, y)[0])
