"""create_app(): routers, error handlers, body-size limit and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import __version__
from app.auth import parse_keys, require_key
from app.dashboard.router import router as dashboard_router
from app.datasets.router import router as datasets_router
from app.errors import BumpfitError, TooLarge, Unavailable
from app.jobs.router import router as jobs_router
from app.metrics import LATENCY, REGISTRY, REQUESTS, QueueCollector
from app.ops.router import router as ops_router
from app.serving.router import router as serving_router
from app.settings import Settings, get_settings
from app.sweeps.router import router as sweeps_router

log = logging.getLogger("bumpfit.api")


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, whether or not Content-Length is sent.

    A chunked body is read up to the limit before the app sees it, then replayed.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.limit:
                return await self._refuse(scope, send)
            return await self.app(scope, receive, send)
        messages: list[Message] = []
        size, more = 0, True
        while more:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                return await self._refuse(scope, send)
            more = message["type"] == "http.request" and message.get("more_body", False)

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        err = TooLarge.at("body", f"is larger than the limit of {self.limit} bytes")
        await JSONResponse(err.body(), status_code=413)(scope, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


UNION_TAGS = {"data": {"synthetic", "inline", "dataset"}, "layer": {"bump", "gaussian"}}


def _loc(loc: tuple[Any, ...]) -> str:
    """A field's dotted path as the user wrote it: no "body", no discriminated-union tag."""
    parts: list[str] = []
    for p in loc:
        if p == "body" and not parts or (parts and str(p) in UNION_TAGS.get(parts[-1], ())):
            continue
        parts.append(str(p))
    return ".".join(parts) or "body"


def _msg(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API application; no TensorFlow is imported here or below."""
    settings = settings or get_settings()
    app = FastAPI(title="bumpfit", version=__version__, dependencies=[Depends(require_key)],
                  description="Train and serve trainable threshold layers: bump (trainable sigma) and "
                  "gaussian (a, b, c). Jobs queue in the database and run on TensorFlow workers.")
    app.state.settings = settings
    app.state.api_keys = parse_keys(settings.api_keys)
    app.state.registries = (REGISTRY, CollectorRegistry())
    app.state.registries[1].register(QueueCollector(settings.database_url))

    @app.exception_handler(BumpfitError)
    async def _bumpfit(_: Request, exc: BumpfitError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": _loc(e["loc"]), "msg": _msg(e["msg"])} for e in exc.errors()]
        first = errors[0] if errors else {"loc": "body", "msg": "invalid"}
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        if first["loc"] == "body" and "json" not in request.headers.get("content-type", ""):
            more += "; send the body as JSON with the header Content-Type: application/json"
        body = {"error": {"type": "validation_error", "message": f"{first['loc']}: {first['msg']}{more}",
                          "details": errors}}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": {"type": kind, "message": str(exc.detail), "details": None}},
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _db_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database error: %s", exc)
        err = Unavailable("the database is unavailable; retry shortly")
        return JSONResponse(err.body(), status_code=503, headers={"Retry-After": "1"})

    @app.middleware("http")
    async def _count(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        start = time.perf_counter()
        response = await call_next(request)
        LATENCY.observe(time.perf_counter() - start)
        REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=[o.strip() for o in settings.cors_origins.split(",")],
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key"])
    for router in (jobs_router, sweeps_router, serving_router, datasets_router, ops_router,
                   dashboard_router):
        app.include_router(router)
    return app
