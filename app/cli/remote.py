"""HTTP client commands of `bumpfit`: submit, sweep, watch, get, predict, jobs, cancel.

They talk to a running service (`--url`, env `BUMPFIT_URL`) and print its errors as it phrased them.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.cli.client import (
    WATCH_INTERVAL,
    Api,
    apply_flags,
    attach_data,
    fmt,
    fmt_params,
    job_options,
    read_json,
    show,
    url_option,
)
from app.jobs.models import FINISHED, JobStatus
from app.model import plan


@click.command()
@url_option
@job_options
@click.option("--watch", "-w", is_flag=True, help="then show its progress until it ends")
@click.option("--json", "as_json", is_flag=True, help="print the whole job resource")
def submit(url: str, file: str | None, watch: bool, as_json: bool, **flags: Any) -> None:
    """Submit a training job from flags and/or a JSON file (a network: {"model": {"layers": [...]}, ...});
    --data uploads a table first (--target names its label column); prints the job id."""
    api = Api(url)
    req = attach_data(api, read_json(file) if file else {}, flags)
    job = api.call("POST", "/v1/jobs", apply_flags(req, flags))
    if as_json:
        show(job)
    else:
        click.echo(job["id"])
    if watch:
        sys.exit(_watch(api, [job["id"]], WATCH_INTERVAL))


@click.command()
@url_option
@job_options
@click.option("--sigmas", help="comma-separated data sigmas, one job each (grid data.params.sigma)")
@click.option("--watch", "-w", is_flag=True, help="then show every job's progress until all end")
def sweep(url: str, file: str | None, sigmas: str | None, watch: bool, **flags: Any) -> None:
    """Submit a sweep: --file sweep.json ({"base": ..., "grid": ...}), or --sigmas 0.1,0.2 with the job
    flags (and --file, then a job request) making the base; flags override the file's base."""
    api = Api(url)
    if file and not sigmas:
        req = read_json(file)
        apply_flags(attach_data(api, req.setdefault("base", {}), flags), flags)
    elif sigmas:
        try:
            values = [float(s) for s in sigmas.replace(" ", "").split(",") if s]
        except ValueError:
            raise click.BadParameter(
                f"{sigmas!r} is not a comma-separated list of numbers", param_hint="--sigmas"
            ) from None
        base = apply_flags(attach_data(api, read_json(file) if file else {}, flags), flags)
        req = {"base": base, "grid": {"data.params.sigma": values}}
    else:
        raise click.UsageError("give --sigmas 0.1,0.2,... or --file sweep.json")
    created = api.call("POST", "/v1/sweeps", req)
    click.echo(f"sweep {created['id']}: {len(created['jobs'])} jobs")
    for job_id in created["jobs"]:
        click.echo(job_id)
    if watch:
        sys.exit(_watch(api, created["jobs"], WATCH_INTERVAL))


def _expand(api: Api, ids: tuple[str, ...]) -> list[str]:
    """Job ids; a sweep id stands for all its jobs."""
    out: list[str] = []
    for i in ids:
        try:
            api.call("GET", f"/v1/jobs/{i}")
            out.append(i)
        except click.ClickException as job_error:
            try:
                out.extend(row["id"] for row in api.call("GET", f"/v1/sweeps/{i}")["jobs"])
            except click.ClickException:
                raise job_error from None
    return out


def _describe(job: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
    """The progress-bar fields of a job: status, latest loss and parameters."""
    params = job.get("params") or (last or {}).get("params")
    done = job["status"] == JobStatus.SUCCEEDED
    loss = (job.get("metrics") or {}).get("loss") if done else (last or {}).get("loss")
    return {"status": job["status"], "loss": fmt(loss), "params": fmt_params(params)}


def _watch(api: Api, ids: list[str], interval: float) -> int:
    """A rich progress bar per job until every job ends; 0 if all succeeded, else 1."""
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        TextColumn("[bold]{task.fields[status]:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs  loss {task.fields[loss]:<9}  {task.fields[params]}"),
        TimeElapsedColumn(),
    )
    jobs: dict[str, dict[str, Any]] = {}
    with Progress(*columns, console=console) as progress:
        tasks: dict[str, TaskID] = {}
        seen_epoch: dict[str, int] = {}
        last: dict[str, dict[str, Any] | None] = {}
        while True:
            for job_id in ids:
                if job_id in jobs and jobs[job_id]["status"] in FINISHED:
                    continue
                job = jobs[job_id] = api.call("GET", f"/v1/jobs/{job_id}")
                epoch, epochs = job["progress"]["epoch"], job["progress"]["epochs"]
                if epoch and seen_epoch.get(job_id) != epoch:  # fetch the loss once per new epoch
                    seen_epoch[job_id] = epoch
                    history = api.call("GET", f"/v1/jobs/{job_id}/history")["history"]
                    last[job_id] = history[-1] if history else None
                fields = _describe(job, last.get(job_id))
                if job_id not in tasks:
                    tasks[job_id] = progress.add_task(job_id, total=epochs, **fields)
                progress.update(tasks[job_id], completed=epoch, **fields)
            if all(j["status"] in FINISHED for j in jobs.values()):
                break
            time.sleep(interval)
    for job in jobs.values():
        line = f"{job['id']} {job['status']} {fmt_params(job['params'])}"
        if job.get("metrics"):
            line += f" loss={fmt(job['metrics'].get('loss'))}"
        if job.get("error"):
            line += f" error: {job['error']['message']}"
        click.echo(line)
    return 0 if all(j["status"] == JobStatus.SUCCEEDED for j in jobs.values()) else 1


@click.command()
@url_option
@click.argument("ids", nargs=-1, required=True)
@click.option("--interval", type=float, default=WATCH_INTERVAL, show_default=True, help="seconds between looks")
def watch(url: str, ids: tuple[str, ...], interval: float) -> None:
    """Show live progress (epoch, loss, parameters) of jobs or sweeps until they end; exit 1 unless all
    succeeded."""
    api = Api(url)
    sys.exit(_watch(api, _expand(api, ids), interval))


@click.command()
@url_option
@click.argument("job_id")
def get(url: str, job_id: str) -> None:
    """Print a job resource as JSON."""
    show(Api(url).call("GET", f"/v1/jobs/{job_id}"))


@click.command(context_settings={"ignore_unknown_options": True})
@url_option
@click.option("--version", "version", type=int, help="model version (default: the latest)")
@click.option("--label", "label", help="the version this label points at (`bumpfit label`)")
@click.argument("model")
@click.argument("xs", nargs=-1, type=float, required=True)
def predict(url: str, version: int | None, label: str | None, model: str, xs: tuple[float, ...]) -> None:
    """Predict with a model at the given x values; prints one prediction per line."""
    if version and label:
        raise click.UsageError("give --version or --label, not both")
    pinned = f"/versions/{version}" if version else f"/labels/{label}" if label else ""
    path = f"/v1/models/{model}{pinned}:predict"
    for y in Api(url).call("POST", path, {"instances": list(xs)})["predictions"]:
        click.echo(repr(y))


@click.command()
@url_option
@click.argument("job_id")
def cancel(url: str, job_id: str) -> None:
    """Cancel a queued or running job."""
    job = Api(url).call("POST", f"/v1/jobs/{job_id}:cancel")
    click.echo(f"{job['id']} {job['status']}" + (" (cancel requested)" if job["status"] == JobStatus.RUNNING else ""))


@click.command()
@url_option
@click.option("--status", type=click.Choice([s.value for s in JobStatus]))
@click.option("--sweep", "sweep_id", help="only the jobs of this sweep")
@click.option("--limit", type=int, default=20, show_default=True)
def jobs(url: str, status: str | None, sweep_id: str | None, limit: int) -> None:
    """List jobs, newest first, as a table."""
    page = Api(url).call("GET", "/v1/jobs", status=status, sweep_id=sweep_id, limit=limit)
    table = Table("id", "status", "layer", "data sigma", "learned", "progress", "loss", "device", "worker", "created")
    for j in page["jobs"]:
        job_plan, params = plan.of(j["spec"]), j["params"] or {}
        layer = job_plan.name
        learned = fmt(params.get("sigma")) if job_plan.single and layer == "bump" else fmt_params(params)
        progress = f"{j['progress']['epoch']}/{j['progress']['epochs']}"
        table.add_row(
            j["id"],
            j["status"],
            layer,
            fmt((j["spec"]["data"].get("params") or {}).get("sigma")),
            learned,
            progress,
            fmt((j["metrics"] or {}).get("loss")),
            j["device"] or "-",
            j["worker"] or "-",
            j["created_at"][:19].replace("T", " "),
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


COMMANDS = [submit, sweep, watch, get, predict, cancel, jobs]
