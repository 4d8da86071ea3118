"""The OpenAPI document a generated client can use whole, and `/docs` and `/redoc` with no network.

- Operation ids are short and unique: `<tag>_<function>`, the tag's own word dropped from the
  function's name (`jobs_get`, `jobs_list`, `models_predict_latest`); a route may name its own.
- The bearer scheme is declared, and every route that `app.http.auth.check_key` guards lists it with
  its 401 (and, for writes, 403) and the 429 of the limits per caller (`app.http.quota`); the routes it
  leaves open list none. With no keys configured,
  each guarded route lists the scheme as optional. The document only
  describes: the keys-first middleware decides, as before.
- A multipart file field is declared `format: binary` beside its `contentMediaType`, so both
  OpenAPI 3.0 and 3.1 generators see a file to upload.
- The Swagger UI and ReDoc assets come from the installed `fastapi-offline` package, served here.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRoute

from app.errors import NotFound, is_v2
from app.http.auth import READ_METHODS, is_open
from app.http.responses import ErrorResponse
from app.serving import v2_router

SCHEME = "bearer"
ASSETS = "/docs/assets"  # open to all (app.http.auth.OPEN_PREFIXES)
ASSET_FILES = {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"}
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def assets_dir() -> Path:
    """Where the installed package keeps the docs' JavaScript, CSS and icon."""
    return Path(str(files("fastapi_offline"))) / "static"


def operation_id(route: APIRoute) -> str:
    """`<tag>_<name>` with the tag's word (singular or plural) left out of the function's name."""
    tag = str(route.tags[-1]) if route.tags else "api"
    words = {tag, tag.rstrip("s")}
    name = "_".join(w for w in route.name.split("_") if w not in words) or route.name
    return f"{tag}_{name}".replace("-", "_")


def _error(description: str, path: str) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/V2Error"} if is_v2(path) else ERROR_REF
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def secure(document: dict[str, Any], keys: bool = True) -> dict[str, Any]:
    """Add the bearer scheme, each guarded operation's `security` and 401/403, and binary uploads.
    Without `keys` (none configured) the scheme is optional: `{}` stands beside it."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    if "ErrorResponse" not in schemas:
        error = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(error.pop("$defs", {}))
        schemas["ErrorResponse"] = error
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `bumpfit keys new`, needed when the service has keys configured "
        "(`BUMPFIT_API_KEYS`). Scopes, each allowing what those before it allow: `read` (GET), `predict` "
        "(predictions and inference), `submit` (jobs, sweeps, uploads, cancelling), `admin` (deletes, "
        "labels, webhooks).",
    }
    for path, operations in document.get("paths", {}).items():
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            for response in responses.values():  # a body that is not JSON: text, or bytes
                for media, content in response.get("content", {}).items():
                    text = media.startswith("text/") or media.endswith("+xml")
                    content.setdefault("schema", {"type": "string"} if text else {"type": "string", "format": "binary"})
            if is_open(path):
                continue
            op["security"] = [{SCHEME: []}] if keys else [{SCHEME: []}, {}]
            responses.setdefault("401", _error("Missing or unknown API key", path))
            if method.upper() not in READ_METHODS:
                responses.setdefault("403", _error("The API key's scope does not allow this", path))
            responses.setdefault(
                "429",
                _error("Over a limit of this key (or client address): the rate, with Retry-After, or a cap", path),
            )
    for schema in schemas.values():
        for prop in schema.get("properties", {}).values():
            if prop.get("type") == "string" and prop.get("contentMediaType") == "application/octet-stream":
                prop["format"] = "binary"
    return document


def install(app: FastAPI) -> None:
    """The secured document at /openapi.json, and /docs and /redoc from local assets."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                separate_input_output_schemas=app.separate_input_output_schemas,
            )
            v2_router.add_schemas(document)
            app.openapi_schema = secure(document, keys=bool(app.state.api_keys))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    @app.get(ASSETS + "/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name not in ASSET_FILES:
            raise NotFound(f"no docs asset {name!r}")
        return FileResponse(assets_dir() / name, headers={"Cache-Control": "public, max-age=86400"})
