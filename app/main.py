"""create_app(): routers, exception handlers and middleware (request id, trust boundary, API keys, body
limit)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry
from starlette.types import Scope

from app import __version__
from app.bounds.router import router as bounds_router
from app.dashboard.router import router as dashboard_router
from app.datasets.router import router as datasets_router
from app.http import handlers, openapi
from app.http.auth import parse_keys
from app.http.boundary import Boundary, parse_hosts
from app.http.middleware import BodyLimit, Observe, RequireKey, TrustBoundary
from app.http.quota import PerCaller, Streams
from app.jobs.router import router as jobs_router
from app.ops.metrics import REGISTRY, QueueCollector
from app.ops.router import router as ops_router
from app.outbox.router import router as webhooks_router
from app.serving.router import router as serving_router
from app.serving.v2_router import router as v2_router
from app.settings import Settings, get_settings
from app.sweeps.router import router as sweeps_router
from app.sweeps.service import Answers

MULTIPART_OVERHEAD = 64 * 1024  # room for the multipart framing around an upload at the upload limit
UPLOAD_PATH = "/v1/datasets"


def body_limit(settings: Settings) -> int:
    """The largest body a route other than the upload accepts."""
    return settings.max_body_bytes


def upload_body_limit(settings: Settings) -> int:
    """The largest body `POST /v1/datasets` accepts: a file at the upload limit fits in it."""
    return settings.max_upload_bytes + MULTIPART_OVERHEAD


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API application; no TensorFlow is imported here or below."""
    settings = settings or get_settings()
    app = FastAPI(
        title="bumpfit",
        docs_url=None,  # app/http/openapi.py serves /docs and /redoc from local assets
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
        version=__version__,
        description="Train and serve trainable threshold layers: bump (trainable sigma) and "
        "gaussian (a, b, c). Jobs queue in the database and run on TensorFlow workers.\n\n"
        f"Limits: request bodies up to {body_limit(settings)} bytes; uploads up to "
        f"{settings.max_upload_bytes} bytes (an .npz's arrays also once inflated); "
        f"{settings.max_points} samples a job, {settings.max_inline_points} inline, "
        f"{settings.max_features} features, {settings.max_cells} values an array (rows x columns), "
        f"{settings.max_sweep_jobs} jobs a sweep, "
        f"{settings.max_predict_instances} instances a prediction. Over a limit: 413 naming it. "
        'Every error is `{"error": {"type", "message", "details"}}`; an unexpected one '
        "is a 500 naming the request id (also in every response's `X-Request-ID` header).",
    )
    app.state.settings = settings
    app.state.api_keys = parse_keys(settings.api_keys)
    app.state.streams = Streams()  # open job event streams by caller (BUMPFIT_MAX_STREAMS)
    app.state.sweep_answers = Answers(int(settings.sweep_cache_mb * 2**20))
    app.state.registries = (REGISTRY, CollectorRegistry())
    app.state.registries[1].register(QueueCollector(settings.database_url))
    handlers.install(app)
    openapi.install(app)

    def limit_for(scope: Scope) -> int:
        upload = scope["method"] == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH
        return upload_body_limit(settings) if upload else body_limit(settings)

    # Added innermost first: Observe wraps everything, then the trust boundary, CORS (preflights need no
    # key), keys, limit.
    app.add_middleware(BodyLimit, limit_for=limit_for)
    app.add_middleware(PerCaller, rate=settings.rate_limit)  # after the key check
    app.add_middleware(RequireKey, keys=app.state.api_keys)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["X-Request-ID"],
        )
    if settings.allowed_hosts or not app.state.api_keys:  # keys stop rebinding and cross-site pages already
        app.add_middleware(TrustBoundary, boundary=Boundary(parse_hosts(settings.allowed_hosts), frozenset(origins)))
    app.add_middleware(Observe)
    routers = (jobs_router, sweeps_router, serving_router, v2_router, datasets_router, webhooks_router, ops_router)
    for router in (*routers, bounds_router, dashboard_router):
        app.include_router(router)
    return app
