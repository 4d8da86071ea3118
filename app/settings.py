"""All configuration, from BUMPFIT_* environment variables or command-line flags."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """bumpfit settings; every field is also `BUMPFIT_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="BUMPFIT_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite:///./bumpfit.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host:5432/db",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(1, ge=0, description="worker processes `bumpfit serve` starts")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # queue
    lease_seconds: float = Field(60.0, gt=0, description="a claim lapses without a heartbeat")
    heartbeat_seconds: float | None = Field(None, gt=0, description="default: lease / 6")
    max_attempts: int = Field(3, ge=1, description="claims before a crashing job fails")
    poll_seconds: float = Field(0.25, gt=0, description="idle poll (and LISTEN fallback)")
    max_fuse: int = Field(512, ge=1, description="jobs one worker trains in one compiled model")
    worker_device: Literal["auto", "cpu", "gpu"] = "auto"
    compile_cache_dir: str = Field("~/.cache/bumpfit/jax", description="persistent compilation cache of "
                                   "workers on the JAX backend (KERAS_BACKEND=jax); empty: off")

    # limits
    max_body_bytes: int = 32 * 1024 * 1024
    max_upload_bytes: int = 64 * 1024 * 1024
    max_points: int = Field(2_000_000, description="samples in one job's data")
    max_inline_points: int = Field(200_000, description="samples sent inline in a job body")
    max_features: int = 64
    max_compute: int = Field(2_000_000_000, description="n x epochs x features for one job")
    max_sweep_jobs: int = 10_000
    max_predict_instances: int = 100_000

    def masked(self) -> str:
        """These settings as JSON for the start-up log, with the database password hidden."""
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url).render_as_string(hide_password=True)
        return self.model_copy(update={"database_url": url}).model_dump_json()

    # access
    api_keys: str = Field("", description="comma-separated `<sha256 of key>:read|submit` entries "
                          "(`bumpfit keys new`); required when serving on a non-loopback address")
    cors_origins: str = Field("", description="comma-separated origins allowed by CORS; empty: CORS off")

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between lease renewals: several within one lease."""
        return self.heartbeat_seconds or self.lease_seconds / 6


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
