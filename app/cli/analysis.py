"""`bumpfit bounds` and `bumpfit optimize`: what a trained model can output over a box, and its best
input, asked of a running service (docs/bounds.md)."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from app.cli.client import Api, fmt, show, url_option

METHODS = click.Choice(["auto", "interval", "linear", "split", "exact"])


def _numbers(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint=flag) from None


def _request(lower: str | None, upper: str | None, method: str, budget: float | None) -> dict[str, Any]:
    lo, hi = _numbers(lower, "--lower"), _numbers(upper, "--upper")
    if (lo is None) != (hi is None):
        raise click.UsageError("give both --lower and --upper, or neither (the training split's box)")
    req: dict[str, Any] = {"method": method}
    if lo is not None:
        req["box"] = {"lower": lo, "upper": hi}
    if budget is not None:
        req["budget_s"] = budget
    return req


def _path(model: str, version: int | None, label: str | None, verb: str) -> str:
    if version and label:
        raise click.UsageError("give --version or --label, not both")
    pinned = f"/versions/{version}" if version else f"/labels/{label}" if label else ""
    return f"/v1/models/{model}{pinned}:{verb}"


def _common(f: Any) -> Any:
    for option in reversed(
        [
            url_option,
            click.option("--version", "version", type=int, help="model version (default: the latest)"),
            click.option("--label", "label", help="the version this label points at"),
            click.option("--lower", help="the box's lower ends, comma-separated (default: the training split's)"),
            click.option("--upper", help="the box's upper ends, comma-separated"),
            click.option("--method", type=METHODS, default="auto", show_default=True, help="how to bound"),
            click.option("--budget", type=click.FloatRange(min=0, min_open=True), help="seconds at most"),
            click.option("--json", "as_json", is_flag=True, help="print the whole answer"),
        ]
    ):
        f = option(f)
    return f


@click.command()
@_common
@click.argument("model")
def bounds(
    url: str,
    version: int | None,
    label: str | None,
    lower: str | None,
    upper: str | None,
    method: str,
    budget: float | None,
    as_json: bool,
    model: str,
) -> None:
    """Guaranteed bounds of each output of MODEL over a box, and the extremes inputs were found to reach."""
    answer = Api(url).call("POST", _path(model, version, label, "bounds"), _request(lower, upper, method, budget))
    if as_json:
        show(answer)
        return
    table = Table("output", "lower (sure)", "reached min", "reached max", "upper (sure)", "gap")
    for j, out in enumerate(answer["outputs"]):
        r = out["reached"]
        table.add_row(str(j), fmt(out["lower"]), fmt(r["min"]), fmt(r["max"]), fmt(out["upper"]), fmt(out["gap"]))
    Console().print(table)
    state = (
        "exact" if answer["exact"] else "complete" if answer["complete"] else "budget spent: looser than it could be"
    )
    click.echo(
        f"method {answer['method']} ({state}); box {fmt(answer['box']['lower'])} .. {fmt(answer['box']['upper'])}"
    )


@click.command()
@_common
@click.option("--output", "output", type=click.IntRange(min=0), default=0, show_default=True, help="output index")
@click.option("--min", "minimise", is_flag=True, help="find the least value (default: the greatest)")
@click.option("--fix", "fixed", multiple=True, help="NAME=VALUE: hold an input (by name or index) at a value")
@click.argument("model")
def optimize(
    url: str,
    version: int | None,
    label: str | None,
    lower: str | None,
    upper: str | None,
    method: str,
    budget: float | None,
    as_json: bool,
    output: int,
    minimise: bool,
    fixed: tuple[str, ...],
    model: str,
) -> None:
    """The input of MODEL (in the box, some inputs fixed) that gives an output its greatest (or least) value
    found, with a guaranteed bound on the true optimum."""
    req = _request(lower, upper, method, budget)
    req.update(output=output, goal="min" if minimise else "max", fixed={})
    for item in fixed:
        name, sep, value = item.partition("=")
        numbers = _numbers(value, "--fix") if sep else None
        if not numbers or len(numbers) != 1:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--fix")
        req["fixed"][name] = numbers[0]
    answer = Api(url).call("POST", _path(model, version, label, "optimize"), req)
    if as_json:
        show(answer)
        return
    click.echo(f"x     {fmt(answer['x'])}")
    click.echo(f"value {fmt(answer['value'])}  (output {output}, {answer['goal']})")
    click.echo(f"bound {fmt(answer['bound'])}  gap {fmt(answer['gap'])}  method {answer['method']}")


COMMANDS = [bounds, optimize]
