"""bumpfit workers: Keras processes (TensorFlow, or JAX with KERAS_BACKEND=jax) that claim jobs from the
database and train them."""

import os

# LLVM -O1 for XLA's generated code: on the fused training step it compiles about 4x faster than
# the default -O3 (0.5 s instead of 1.9 s for 50 fused jobs, bench/single_job.py and bench/sweep.py)
# and ran no slower. Set before TensorFlow first compiles; a user's own setting wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=1").strip()
