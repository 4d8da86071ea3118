"""The reference V2 server for the differential test: the `tritonserver` binary that the
`nvidia-pytriton` wheel ships, on the CPU, with Python-backend models computing bumpfit's math.
The wheel (and NumPy 1.x, which its Python backend is built against) are fetched once with pip
into ~/.cache/bumpfit-tests and unpacked there; nothing is installed into this environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from tests.conftest import free_port, wait_for

WHEELS = ["nvidia-pytriton==0.7.0", "numpy==1.26.4"]
CACHE = Path(os.environ.get("BUMPFIT_TEST_TRITON_DIR", Path.home() / ".cache/bumpfit-tests/triton"))
PY = f"{sys.version_info.major}.{sys.version_info.minor}"

# The Python backend's models, written from the contract's words, not imported from bumpfit: the
# bump exp(-s / (s - x^2)) where |x| < s and x^2 < s (and s / (s - x^2) < 80, past which it is 0 in
# float32 anyway), and a per-feature gaussian a * exp(-b * (x - c)^2), in float32.
MODEL = """
import sys
sys.path.insert(0, {pylib!r})
import numpy as np
import triton_python_backend_utils as pb_utils

PARAMS = {{k: np.asarray(v, np.float32) for k, v in {params!r}.items()}}


def f(x):
    with np.errstate(all="ignore"):
        if {kind!r} == "bump":
            s = PARAMS["sigma"]
            inside = (x * x < s * s) & ((s - x * x) * np.float32(80) > s)
            return np.where(inside, np.exp(-s / np.where(inside, s - x * x, 1)), np.float32(0))
        return PARAMS["a"] * np.exp(-PARAMS["b"] * (x - PARAMS["c"]) ** 2)


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            y = f(x.astype(np.float32)).astype(np.float32)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("output_0", y)]))
        return out
"""
CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "x", data_type: TYPE_FP32, dims: [ -1, {width} ] }} ]
output [ {{ name: "output_0", data_type: TYPE_FP32, dims: [ -1, {width} ] }} ]
instance_group [ {{ kind: KIND_CPU, count: 1 }} ]
"""


def unpacked() -> Path:
    """The unpacked wheels (fetched with pip on first use)."""
    done = CACHE / ".unpacked"
    if not done.exists():
        wheels = CACHE / "wheels"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), *WHEELS],
            check=True,
            timeout=900,
        )
        for wheel in wheels.glob("*.whl"):
            target = CACHE / ("pylib" if wheel.name.startswith("numpy") else "pytriton")
            with zipfile.ZipFile(wheel) as z:
                z.extractall(target)
        binary = CACHE / "pytriton/pytriton/tritonserver/bin/tritonserver"
        binary.chmod(0o755)
        for stub in (CACHE / "pytriton/pytriton/tritonserver/python_backend_stubs").glob(
            "*/triton_python_backend_stub"
        ):
            stub.chmod(0o755)
        done.write_text("\n".join(WHEELS))
    return CACHE


class TritonServer:
    """`tritonserver` over a model repository of `models` ({name: (kind, width, params)}), HTTP only."""

    def __init__(self, root: Path, models: dict[str, tuple[str, int, dict[str, object]]]) -> None:
        cache = unpacked()
        server = cache / "pytriton/pytriton/tritonserver"
        backends = root / "backends" / "python"
        backends.mkdir(parents=True)
        for f in (server / "backends/python").iterdir():
            shutil.copy(f, backends / f.name)
        shutil.copy(server / f"python_backend_stubs/{PY}/triton_python_backend_stub", backends)
        repo = root / "repo"
        for name, (kind, width, params) in models.items():
            (repo / name / "1").mkdir(parents=True)
            (repo / name / "config.pbtxt").write_text(CONFIG.format(name=name, width=width))
            code = MODEL.format(pylib=str(cache / "pylib"), params=params, kind=kind)
            (repo / name / "1" / "model.py").write_text(code)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = root / "triton.log"
        cmd = [
            str(server / "bin/tritonserver"),
            f"--model-repository={repo}",
            f"--backend-directory={root / 'backends'}",
            f"--http-port={self.port}",
            "--allow-grpc=false",
            "--allow-metrics=false",
            "--exit-on-error=true",
        ]
        env = {**os.environ, "LD_LIBRARY_PATH": str(cache / "pytriton/nvidia_pytriton.libs")}
        self.proc = subprocess.Popen(cmd, env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
        wait_for(self.ready, 120, "tritonserver to be ready", every=0.5)

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"tritonserver exited: {self.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.base}/v2/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
