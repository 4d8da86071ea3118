"""MkDocs hook: the reference pages rendered at build time from the code, so they cannot drift from it:
the HTTP API from the app's own OpenAPI document (create_app(...).openapi(), default settings), and
every setting from app.settings.Settings."""

from __future__ import annotations

import json
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

PAGE = "reference/http-api.md"
SETTINGS_PAGE = "reference/settings.md"
METHODS = ("get", "put", "post", "patch", "delete")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated page to the site's files."""
    files.append(File.generated(config, PAGE, content=render(document())))
    files.append(File.generated(config, SETTINGS_PAGE, content=settings_page()))
    return files


def settings_page() -> str:
    """Every BUMPFIT_* setting with its default and description, from app.settings.Settings."""
    from app.settings import Settings

    out = [
        "# Settings",
        "",
        "Generated when the docs are built from `app/settings.py`. Every setting is a `BUMPFIT_<NAME>`",
        "environment variable (the `bumpfit serve`, `worker` and `migrate` flags override some); a file of",
        "such lines is read only where `BUMPFIT_ENV_FILE` names it. A bad value ends the process with one",
        "line naming the variable.",
        "",
        "| variable | default | description |",
        "| --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        default = "" if field.default is None else f"`{field.default}`"
        out.append(f"| `BUMPFIT_{name.upper()}` | {default} | {cell(field.description or '')} |")
    return "\n".join(out) + "\n"


def document() -> dict[str, Any]:
    """The OpenAPI document the service serves at /openapi.json with its default settings."""
    from app.main import create_app
    from app.settings import Settings

    return create_app(Settings(database_url="sqlite://")).openapi()


def render(doc: dict[str, Any]) -> str:
    """The whole reference: every operation by tag, then every schema."""
    info = doc["info"]
    out = [
        "# HTTP API reference",
        "",
        f"Generated when the docs are built from the OpenAPI document of bumpfit {info['version']} (the one "
        "the service serves at `/openapi.json`, with `/docs` and `/redoc` on top of it), with the default "
        "settings: the limits below are the defaults.",
        "",
        info.get("description", ""),
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((method, path, op))
    for tag, ops in by_tag.items():
        out += [f"## {tag}", ""]
        for method, path, op in ops:
            out += operation(method, path, op)
    out += ["## Schemas", ""]
    for name, schema in doc["components"]["schemas"].items():
        out += component(name, schema)
    return "\n".join(out) + "\n"


def operation(method: str, path: str, op: dict[str, Any]) -> list[str]:
    """One operation: summary, description, parameters, body and responses."""
    out = [f"### `{method.upper()} {path}`", "", f"**{op.get('summary', '')}** (`{op.get('operationId', '')}`)", ""]
    if op.get("description"):
        out += [op["description"], ""]
    if op.get("security"):
        out += ["Needs an API key when keys are configured (`Authorization: Bearer <key>`).", ""]
    params = op.get("parameters") or []
    if params:
        out += ["| parameter | in | type | required | description |", "| --- | --- | --- | --- | --- |"]
        for p in params:
            desc = cell(p.get("description") or p.get("schema", {}).get("description", ""))
            req = "yes" if p.get("required") else ""
            out.append(f"| `{p['name']}` | {p['in']} | {type_of(p.get('schema', {}))} | {req} | {desc} |")
        out.append("")
    body = op.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            out += [f"Body ({media}): {type_of(content.get('schema', {}))}", ""]
    out += ["| status | meaning | body |", "| --- | --- | --- |"]
    for status, resp in op.get("responses", {}).items():
        content = resp.get("content") or {}
        kinds = ", ".join(type_of(c.get("schema", {})) for c in content.values()) or ""
        out.append(f"| {status} | {cell(resp.get('description', ''))} | {kinds} |")
    return [*out, ""]


def component(name: str, schema: dict[str, Any]) -> list[str]:
    """One schema: its description and a row per property (or its variants or values)."""
    out = [f"### {name}", ""]
    if schema.get("description"):
        out += [schema["description"], ""]
    props = schema.get("properties")
    if props:
        required = set(schema.get("required", []))
        out += ["| field | type | required | description |", "| --- | --- | --- | --- |"]
        for field, sub in props.items():
            desc = sub.get("description", "")
            if "default" in sub and field not in required:
                desc = f"{desc} (default `{json.dumps(sub['default'])}`)".strip()
            out.append(f"| `{field}` | {type_of(sub)} | {'yes' if field in required else ''} | {cell(desc)} |")
        out.append("")
    elif "properties" not in schema:
        out += [f"Type: {type_of(schema)}", ""]
    return out


def type_of(schema: dict[str, Any]) -> str:
    """A schema in a few words, with links to named schemas."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " or ".join(type_of(s) for s in schema[key])
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return f"object of {type_of(schema['additionalProperties'])}"
    if schema.get("format"):
        return f"{kind} ({schema['format']})"
    return str(kind)


def cell(text: str) -> str:
    """Text fit for one table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")
