"""All configuration, from BUMPFIT_* environment variables or command-line flags (and a file of such
variables only where BUMPFIT_ENV_FILE names one: a `.env` in the working directory is not read)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DRIVERS = ("sqlite", "postgresql", "postgresql+psycopg")
ENV_FILE = "BUMPFIT_ENV_FILE"  # names a file of BUMPFIT_* lines to read (docker compose's .env, say)
DEFAULT_MAX_CELLS = 128_000_000  # 2,000,000 rows x 64 columns, the largest array the old column cap let in


def public_url(url: str) -> str:
    """A URL fit for a log: scheme, host, port and path, without user, password, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class Settings(BaseSettings):
    """bumpfit settings; every field is also `BUMPFIT_<NAME>` in the environment."""

    # No env_file: docker compose reads its .env itself, and a .env left in a clone must not change
    # `bumpfit serve` or the tests; BUMPFIT_ENV_FILE names a file to read (load_settings).
    model_config = SettingsConfigDict(env_prefix="BUMPFIT_", extra="ignore")

    database_url: str = Field(
        "sqlite:///./bumpfit.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host:5432/db",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=0, description="worker processes `bumpfit serve` starts")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # queue
    lease_seconds: float = Field(60.0, gt=0, description="a claim lapses without a heartbeat")
    heartbeat_seconds: float | None = Field(None, gt=0, description="default: lease / 6")
    max_attempts: int = Field(3, ge=1, description="claims before a crashing job fails")
    poll_seconds: float = Field(0.25, gt=0, description="idle poll (and LISTEN fallback)")
    max_fuse: int = Field(512, ge=1, description="jobs one worker trains in one compiled model")
    worker_device: Literal["auto", "cpu", "gpu"] = "auto"
    retention_days: float | None = Field(
        None,
        gt=0,
        description="delete finished jobs older than this that no label keeps, and outbox events every "
        "target took or gave up on; unset: keep all",
    )
    warmup_shapes: int = Field(
        3,
        ge=0,
        le=4,  # workers keep 4 compiled shapes (workers.engine.factory.CACHE_SIZE)
        description="shapes a worker compiles in the background when it starts: those its deployment "
        "trained most lately, then the default job's (a CPU worker only on 4+ cores); 0: off",
    )
    compile_cache_dir: str = Field(
        "~/.cache/bumpfit",
        description="workers' persistent compilation cache "
        "(XLA's for TensorFlow, JAX's for KERAS_BACKEND=jax), a folder per backend; "
        "empty: off",
    )

    # limits
    max_body_bytes: int = Field(32 * 1024 * 1024, gt=0)
    max_upload_bytes: int = Field(64 * 1024 * 1024, gt=0)
    max_points: int = Field(2_000_000, gt=0, description="samples in one job's data")
    max_inline_points: int = Field(200_000, gt=0, description="samples sent inline in a job body")
    max_features: int = Field(
        4096,
        gt=0,
        description="columns of x in an upload, a job's data or a prediction's rows; the size of a table "
        "is bounded by max_cells and the byte limits",
    )
    max_cells: int = Field(
        DEFAULT_MAX_CELLS,
        gt=0,
        description="values in one array (x or y: rows x columns) of an upload or of a job's inline data; "
        "512 MiB as float32",
    )
    max_compute: int = Field(2_000_000_000, gt=0, description="n x epochs x features for one job")
    max_sweep_jobs: int = Field(10_000, gt=0)
    sweep_cache_mb: float = Field(
        128,
        ge=0,
        description="memory each API process keeps finished sweeps' whole answers in (GET /v1/sweeps/{id}), "
        "sent again until a job of the sweep changes; 0: none",
    )
    max_predict_instances: int = Field(100_000, gt=0)
    bounds_budget_s: float = Field(
        5.0,
        gt=0,
        le=600,
        description="seconds one `:bounds` or `:optimize` request may spend at most (its `budget_s` is capped "
        "by this); past it the answer holds the bounds found so far, marked `complete: false`",
    )

    # limits per caller: an API key, or the client address where keys are off (docs/access.md)
    rate_limit: str = Field(
        "",
        description="requests a caller may make, such as `50/second` or `50/second;2000/hour` (a moving "
        "window, counted by each API process); over it: 429 with Retry-After; empty: no limit",
    )
    max_queued_jobs: int | None = Field(
        None, gt=0, description="queued jobs a caller may have at once (each job of a sweep counts); unset: no cap"
    )
    max_webhooks: int | None = Field(None, gt=0, description="webhooks a caller may register; unset: no cap")
    max_dataset_bytes: int | None = Field(
        None, gt=0, description="bytes of uploaded datasets a caller may store (as stored: .npz); unset: no cap"
    )
    max_streams: int | None = Field(
        None, gt=0, description="job event streams a caller may hold open at once, in each API process; unset: no cap"
    )
    stream_seconds: float = Field(
        3600.0,
        gt=0,
        description="a job's event stream ends after this long with a `timeout` event, even while the job is "
        "queued or running (it ends at once with `end` when the job does); reconnect to follow on",
    )

    def masked(self) -> str:
        """These settings as JSON for the start-up log, with the database password and any
        credentials or query in the MLflow URI hidden."""
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url).render_as_string(hide_password=True)
        mlflow = public_url(self.mlflow_tracking_uri) if self.mlflow_tracking_uri else ""
        return self.model_copy(update={"database_url": url, "mlflow_tracking_uri": mlflow}).model_dump_json()

    # events out (app/outbox): webhooks always, MLflow when a tracking URI is set
    mlflow_tracking_uri: str = Field("", description="MLflow tracking server; empty: no MLflow export")
    outbox_retry_seconds: float = Field(1.0, gt=0, description="first retry delay of a failed delivery; doubles")
    outbox_retry_max_seconds: float = Field(300.0, gt=0, description="longest delay between delivery attempts")
    webhook_max_attempts: int = Field(12, ge=1, description="attempts before a webhook delivery is given up")
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, description="one webhook attempt's deadline, all told: resolving, connecting, sending, the reply"
    )
    mlflow_max_attempts: int = Field(100, ge=1, description="attempts before an MLflow delivery is given up")
    webhook_allow_private: bool = Field(
        False,
        description="let webhooks and MLflow reach loopback, private, link-local and other non-public addresses "
        "(tests, one machine); off: public addresses only",
    )
    webhook_allow_cidrs: str = Field(
        "", description="comma-separated CIDRs webhooks and MLflow may reach although not public (127.0.0.0/8)"
    )

    # access
    api_keys: str = Field(
        "",
        description="comma-separated `<sha256 of key>:read|submit` entries "
        "(`bumpfit keys new`); required when serving on a non-loopback address",
    )
    cors_origins: str = Field("", description="comma-separated origins allowed by CORS; empty: CORS off")
    allowed_hosts: str = Field(
        "",
        description="comma-separated host names (no port) the API answers besides localhost, 127.0.0.1 "
        "and [::1]; without API keys the Host and cross-site checks always apply, with keys only when "
        "this is set",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            driver = make_url(url).drivername
        except ArgumentError:
            raise ValueError(
                f"{url!r} is not a database URL (sqlite:///path or postgresql+psycopg://user@host:5432/db)"
            ) from None
        if driver not in DRIVERS:
            raise ValueError(f"unsupported driver {driver!r}: use sqlite:///path or postgresql+psycopg://...")
        return url

    @field_validator("webhook_allow_cidrs", "api_keys", "rate_limit", "allowed_hosts")
    @classmethod
    def _readable(cls, value: str, info: ValidationInfo) -> str:
        """These settings are read by their modules' parsers (imported here: they import settings),
        which raise ValueError naming the bad entry."""
        from app.http.auth import parse_keys
        from app.http.boundary import parse_hosts
        from app.http.quota import parse_rate
        from app.outbox.egress import networks

        parsers: dict[str, Callable[[str], object]] = {
            "webhook_allow_cidrs": networks,
            "api_keys": parse_keys,
            "rate_limit": parse_rate,
            "allowed_hosts": parse_hosts,
        }
        parsers[str(info.field_name)](value)
        return value

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between lease renewals: several within one lease."""
        return self.heartbeat_seconds or self.lease_seconds / 6


class SettingsError(SystemExit):
    """A misconfiguration: ends the process (status 1) printing one line per bad setting."""

    def __init__(self, error: ValidationError, flags: Iterable[str] = ()) -> None:
        def name(field: str) -> str:
            env = f"BUMPFIT_{field.upper()}"
            return f"--{field.replace('_', '-')}" if field in flags else env

        super().__init__(
            "\n".join(
                f"bumpfit: {name(str(e['loc'][0]))}: {e['msg'].removeprefix('Value error, ')}" for e in error.errors()
            )
        )


def load_settings(**flags: Any) -> Settings:
    """Settings from the environment (and the file BUMPFIT_ENV_FILE names) with command-line `flags` on
    top; a bad value raises SettingsError (one line naming the variable or flag) instead of a traceback."""
    env_file = os.environ.get(ENV_FILE) or None
    if env_file is not None and not os.path.isfile(env_file):
        raise SystemExit(f"bumpfit: {ENV_FILE}: {env_file!r} is not a file")
    try:
        return Settings(_env_file=env_file, **flags)
    except ValidationError as e:
        raise SettingsError(e, flags) from None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return load_settings()
