"""The HTTP client of `bumpfit`'s remote commands: `Api`, the shared options and job flags, and
the output helpers. Errors are printed as the service phrased them."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
WATCH_INTERVAL = 0.5  # seconds between looks at the watched jobs
TIMEOUT = 30.0  # seconds for one HTTP request

url_option = click.option(
    "--url", envvar="BUMPFIT_URL", default=DEFAULT_URL, show_default=True, help="the bumpfit API (env BUMPFIT_URL)"
)


class Api:
    """A thin HTTP client: JSON in, JSON out, the API's error message as a ClickException."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        key = os.environ.get("BUMPFIT_API_KEY")  # needed when the service has API keys configured
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=self.url, timeout=TIMEOUT, headers=headers)

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """Send one request; raise ClickException with the API's message on a 4xx/5xx answer."""
        query = {k: v for k, v in params.items() if v is not None}
        try:
            res = self.http.request(method, path, json=body, params=query)
        except httpx.TransportError as exc:
            raise click.ClickException(
                f"cannot reach bumpfit at {self.url} ({exc}); is `bumpfit serve` running? Set --url or BUMPFIT_URL"
            ) from None
        if res.status_code >= 400:
            try:
                message = res.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {res.status_code}: {res.text[:200]}"
            raise click.ClickException(message)
        return res.json() if res.content else None  # 204 on a delete

    def upload(self, path: str) -> Any:
        """Upload a CSV or .npz file as a dataset; the dataset resource."""
        try:
            with open(path, "rb") as f:
                res = self.http.post("/v1/datasets", files={"file": (Path(path).name, f)})
        except httpx.TransportError as exc:
            raise click.ClickException(f"cannot reach bumpfit at {self.url} ({exc})") from None
        if res.status_code >= 400:
            raise click.ClickException(f"{path}: {res.json().get('error', {}).get('message', res.text[:200])}")
        return res.json()


def show(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2))


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:.3e}" if v and (abs(v) < 1e-3 or abs(v) >= 1e5) else f"{v:.6g}"
    return str(v)


def fmt_params(p: dict[str, Any] | None) -> str:
    """Parameters in a line; a network's threshold layers by layer and parameter, as the median
    and range of their units."""
    parts = []
    for k, v in (p or {}).items():
        if isinstance(v, dict):
            for name, units in v.items():
                vals = sorted(u for u in units if u is not None)
                mid = vals[len(vals) // 2] if vals else None
                span = f" in [{fmt(vals[0])}, {fmt(vals[-1])}]" if vals else ""
                parts.append(f"{k}.{name}=median {fmt(mid)}{span} ({len(units)} units)")
        else:
            parts.append(f"{k}={fmt(v)}")
    return " ".join(parts) or "-"


def read_json(path: str) -> dict[str, Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise click.ClickException(f"{path} must hold a JSON object")
    return obj


def _set(req: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path in a nested request, when the value was given."""
    if value is None:
        return
    *parents, last = path.split(".")
    node = req
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def job_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Flags that fill in a job request; each overrides the same field of --file."""
    options = [
        click.option("--file", "-f", "file", type=click.Path(allow_dash=True), help="JSON request body ('-' = stdin)"),
        click.option("--layer", type=click.Choice(["bump", "gaussian"]), help="layer family (default bump)"),
        click.option("--sigma-init", type=float, help="the bump's initial sigma (default random)"),
        click.option("--function", type=click.Choice(["bump", "gaussian"]), help="synthetic target (default bump)"),
        click.option("--sigma", type=float, help="the data's sigma (default 0.5)"),
        click.option("--n", type=int, help="samples (default 100000)"),
        click.option("--noise-std", type=float, help="Gaussian noise on y (default 0)"),
        click.option("--data-seed", type=int, help="seed of the synthetic data"),
        click.option("--epochs", type=int, help="epochs (default 5)"),
        click.option("--batch-size", type=int, help="batch size (default 32)"),
        click.option("--learning-rate", type=float, help="learning rate (default 0.001)"),
        click.option("--optimizer", type=click.Choice(["adam", "sgd", "rmsprop"]), help="optimizer (default adam)"),
        click.option("--seed", type=int, help="training seed"),
        click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), help="device (default auto)"),
        click.option("--model-name", help="model name (default: the job id)"),
        click.option(
            "--data",
            "data_file",
            type=click.Path(exists=True, dir_okay=False),
            help="upload this CSV or .npz and train on it",
        ),
        click.option("--target", help="the target column(s) of the uploaded table, comma-separated (networks)"),
        click.option("--normalize", is_flag=True, default=None, help="standardise the features (networks)"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


FLAG_PATHS = {
    "layer": "layer.type",
    "sigma_init": "layer.sigma_init",
    "function": "data.function",
    "sigma": "data.params.sigma",
    "n": "data.n",
    "noise_std": "data.noise_std",
    "data_seed": "data.seed",
    "epochs": "training.epochs",
    "batch_size": "training.batch_size",
    "learning_rate": "training.learning_rate",
    "optimizer": "training.optimizer",
    "seed": "training.seed",
    "device": "device",
    "model_name": "model_name",
}


def attach_data(api: Api, req: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """With --data, upload the file and make it the request's data (with --target and --normalize)."""
    if flags.get("data_file"):
        dataset = api.upload(flags["data_file"])
        click.echo(f"uploaded {flags['data_file']} as dataset {dataset['id']} ({dataset['n']} rows)", err=True)
        req["data"] = {"kind": "dataset", "id": dataset["id"]}
    if flags.get("target"):
        req.setdefault("data", {})["target"] = [c.strip() for c in flags["target"].split(",") if c.strip()]
    if flags.get("normalize"):
        req.setdefault("data", {})["normalize"] = "standard"
    return req


def apply_flags(req: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """Set the given job flags in a job request (synthetic data unless it says otherwise)."""
    req.setdefault("data", {}).setdefault("kind", "synthetic")
    for name, path in FLAG_PATHS.items():
        _set(req, path, flags.get(name))
    return req
