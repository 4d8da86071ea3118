"""HTTP client commands of `bumpfit` for the lifecycle: models, label, unlabel, delete,
delete-version, datasets, delete-dataset, sweeps."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from app.cli.client import Api, fmt, fmt_params, show, url_option


def _print(table: Table) -> None:
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


def _when(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "-"


@click.command()
@url_option
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="print the model resource(s)")
def models(url: str, name: str | None, as_json: bool) -> None:
    """List models (name, versions, labels), or one model's versions with NAME."""
    api = Api(url)
    if name is None:
        found: dict[str, Any] = {"models": []}
        token = None
        while True:  # every page
            page = api.call("GET", "/v1/models", limit=1000, page_token=token)
            found["models"] += page["models"]
            token = page.get("next_page_token")
            if not token:
                break
        if as_json:
            return show(found)
        table = Table("name", "versions", "latest", "labels")
        for m in found["models"]:
            labels = ", ".join(f"{k}={v}" for k, v in m["labels"].items()) or "-"
            table.add_row(m["name"], str(len(m["versions"])), str(m["latest_version"]), labels)
        return _print(table)
    model = api.call("GET", f"/v1/models/{name}")
    if as_json:
        return show(model)
    by_version: dict[int, list[str]] = {}
    for label, version in model["labels"].items():
        by_version.setdefault(version, []).append(label)
    table = Table("version", "job", "params", "loss", "labels", "created")
    for v in model["versions"]:
        table.add_row(
            str(v["version"]),
            v["job_id"],
            fmt_params(v["params"]),
            fmt((v["metrics"] or {}).get("loss")),
            ", ".join(by_version.get(v["version"], [])) or "-",
            _when(v["created_at"]),
        )
    _print(table)


@click.command()
@url_option
@click.argument("name")
@click.argument("label")
@click.argument("version", type=int)
def label(url: str, name: str, label: str, version: int) -> None:
    """Point LABEL (such as `stable`) of model NAME at VERSION; predict through it with
    `bumpfit predict NAME --label LABEL`."""
    out = Api(url).call("PUT", f"/v1/models/{name}/labels/{label}", {"version": version})
    click.echo(f"{out['name']} {out['label']} -> version {out['version']}")


@click.command()
@url_option
@click.argument("name")
@click.argument("label")
def unlabel(url: str, name: str, label: str) -> None:
    """Remove LABEL from model NAME (the version stays)."""
    Api(url).call("DELETE", f"/v1/models/{name}/labels/{label}")
    click.echo(f"{name} {label} removed")


@click.command()
@url_option
@click.argument("job_ids", nargs=-1, required=True)
def delete(url: str, job_ids: tuple[str, ...]) -> None:
    """Delete finished jobs with their history, artifact and model version (refused for a job that
    is queued or running, or whose version a label points at)."""
    api = Api(url)
    for job_id in job_ids:
        api.call("DELETE", f"/v1/jobs/{job_id}")
        click.echo(f"{job_id} deleted")


@click.command("delete-version")
@url_option
@click.argument("name")
@click.argument("version", type=int)
def delete_version(url: str, name: str, version: int) -> None:
    """Delete VERSION of model NAME and its artifact; the job that trained it stays."""
    Api(url).call("DELETE", f"/v1/models/{name}/versions/{version}")
    click.echo(f"{name} version {version} deleted")


@click.command()
@url_option
@click.option("--limit", type=int, default=20, show_default=True)
def datasets(url: str, limit: int) -> None:
    """List datasets, newest first, as a table."""
    page = Api(url).call("GET", "/v1/datasets", limit=limit)
    table = Table("id", "filename", "n", "features", "created")
    for d in page["datasets"]:
        table.add_row(d["id"], d["filename"], str(d["n"]), str(d["features"]), _when(d.get("created_at")))
    _print(table)


@click.command("delete-dataset")
@url_option
@click.argument("dataset_id")
def delete_dataset(url: str, dataset_id: str) -> None:
    """Delete a dataset (refused while a queued or running job uses it)."""
    Api(url).call("DELETE", f"/v1/datasets/{dataset_id}")
    click.echo(f"{dataset_id} deleted")


@click.command()
@url_option
@click.option("--limit", type=int, default=20, show_default=True)
def sweeps(url: str, limit: int) -> None:
    """List sweeps, newest first, with their jobs by status."""
    page = Api(url).call("GET", "/v1/sweeps", limit=limit)
    table = Table("id", "jobs", "by status", "done", "created")
    for s in page["sweeps"]:
        counts: dict[str, Any] = s["counts"]
        by_status = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"
        table.add_row(s["id"], str(s["job_count"]), by_status, "yes" if s["done"] else "no", _when(s["created_at"]))
    _print(table)


COMMANDS = [models, label, unlabel, delete, delete_version, datasets, delete_dataset, sweeps]
