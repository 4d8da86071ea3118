"""V2 inference against TF Serving's predict on the same model, in one real `bumpfit serve` (no
worker: the model's parameters are written as a worker would): JSON rows, V2 JSON tensors and V2
binary tensors, for batches of 1 and 10,000 rows. Bounded: `--reps` sequential requests each.

    python -m bench.v2_infer [--reps 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.conftest import Service, seed_job
from tests.integration.test_hostile_requests import succeeded

HEADER = "Inference-Header-Content-Length"


def main() -> None:
    """Print the median and p90 latency of each form at each batch size."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        svc = Service(url, workers=0)
        try:
            job = svc.http.post("/v1/jobs", json={**seed_job(n=100), "model_name": "m"}).json()["id"]
            succeeded(url, job, {"sigma": 0.5})
            print(f"{'rows':>6} {'form':<22} {'median ms':>10} {'p90 ms':>8}")
            for n in (1, 10_000):
                x = np.random.default_rng(0).uniform(-1, 1, (n, 1)).astype(np.float32)
                head = json.dumps(
                    {
                        "inputs": [
                            {
                                "name": "x",
                                "shape": [n, 1],
                                "datatype": "FP32",
                                "parameters": {"binary_data_size": x.nbytes},
                            }
                        ],
                        "parameters": {"binary_data_output": True},
                    }
                ).encode()
                forms = {
                    "v1 :predict (JSON)": ("/v1/models/m:predict", {"json": {"instances": x[:, 0].tolist()}}),
                    "v2 infer (JSON)": (
                        "/v2/models/m/infer",
                        {
                            "json": {
                                "inputs": [{"name": "x", "shape": [n, 1], "datatype": "FP32", "data": x[:, 0].tolist()}]
                            }
                        },
                    ),
                    "v2 infer (binary)": (
                        "/v2/models/m/infer",
                        {"content": head + x.tobytes(), "headers": {HEADER: str(len(head))}},
                    ),
                }
                for name, (path, kw) in forms.items():
                    times = []
                    for _ in range(args.reps):
                        t = time.perf_counter()
                        r = svc.http.post(path, **kw)  # type: ignore[arg-type]
                        times.append((time.perf_counter() - t) * 1000)
                        assert r.status_code == 200, r.text[:200]
                    p90 = statistics.quantiles(times, n=10)[-1]
                    print(f"{n:>6} {name:<22} {statistics.median(times):>10.2f} {p90:>8.2f}")
        finally:
            svc.stop()


if __name__ == "__main__":
    main()
