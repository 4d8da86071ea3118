"""The `bumpfit` command: `serve` (API + workers) and `worker`."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click

from app.client import COMMANDS as CLIENT_COMMANDS
from app.settings import Settings

log = logging.getLogger("bumpfit.serve")
RESPAWN_CHECK_SECONDS = 1.0  # how often `serve` looks for dead worker processes
STOP_GRACE_SECONDS = 30.0  # workers get this long after SIGTERM to hand their jobs back
SWITCH_INTERVAL = 0.0005  # seconds a thread holds the GIL before others get a turn (Python: 0.005)


def _settings(**flags: Any) -> Settings:
    return Settings(**{k: v for k, v in flags.items() if v is not None})


def gpu_count() -> int:
    """GPUs `nvidia-smi -L` lists on this host (0 without the NVIDIA driver); no TensorFlow needed."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


class WorkerPool:
    """N `python -m workers` processes, respawned if one dies, stopped with SIGTERM. On a GPU host
    worker i sees only GPU i mod #GPUs (CUDA_VISIBLE_DEVICES): one process per GPU."""

    def __init__(self, n: int, env: dict[str, str], gpus: int = 0) -> None:
        self.n, self.env, self.gpus = n, env, gpus
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stopping = threading.Event()

    def spawn(self, i: int) -> subprocess.Popen[bytes]:
        env = {**self.env, "CUDA_VISIBLE_DEVICES": str(i % self.gpus)} if self.gpus else self.env
        return subprocess.Popen([sys.executable, "-m", "workers"], env=env)

    def start(self) -> None:
        self.procs = [self.spawn(i) for i in range(self.n)]
        threading.Thread(target=self.supervise, daemon=True, name="supervisor").start()

    def supervise(self) -> None:
        while not self.stopping.wait(RESPAWN_CHECK_SECONDS):
            for i, p in enumerate(self.procs):
                if p.poll() is not None and not self.stopping.is_set():
                    log.warning("worker pid %s exited with %s; starting another", p.pid, p.returncode)
                    self.procs[i] = self.spawn(i)

    def stop(self) -> None:
        self.stopping.set()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                p.kill()


class _Server:
    """uvicorn's server, except that SIGTERM/SIGINT end `serve` cleanly (exit 0 after the workers
    have handed their jobs back) instead of being re-raised once the API has stopped."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        self.server = uvicorn.Server(config)
        self.server.capture_signals = self._capture  # type: ignore[method-assign]

    @contextlib.contextmanager
    def _capture(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self.server.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def run(self) -> None:
        self.server.run()
        if not self.server.started:
            config = self.server.config
            raise SystemExit(f"could not start the API on {config.host}:{config.port}")


@click.group()
def main() -> None:
    """bumpfit: train and serve trainable threshold layers."""


@main.command()
@click.option("--host", default=None, help="bind address (default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (default 8000)")
@click.option("--database-url", default=None, help="SQLAlchemy URL (default: SQLite file ./bumpfit.db)")
@click.option("--workers", type=int, default=None, help="worker processes to start (default 1)")
def serve(host: str | None, port: int | None, database_url: str | None, workers: int | None) -> None:
    """Migrate the database, start the API and N workers; Ctrl-C / SIGTERM stops them all."""
    import uvicorn

    from app import migrate
    from app.auth import is_loopback, parse_keys
    from app.logs import configure
    from app.main import create_app

    settings = _settings(host=host, port=port, database_url=database_url, workers=workers)
    configure(settings.log_level)
    if not is_loopback(settings.host) and not parse_keys(settings.api_keys):
        raise click.UsageError(f"serving on {settings.host} needs API keys: run `bumpfit keys new --scope submit` "
                               "and set BUMPFIT_API_KEYS (or bind to 127.0.0.1)")
    log.info("settings: %s", settings.masked())
    migrate.upgrade(settings.database_url)
    env = {**os.environ, "BUMPFIT_DATABASE_URL": settings.database_url, "BUMPFIT_PARENT_PID": str(os.getpid())}
    pool = WorkerPool(settings.workers, env, gpu_count() if settings.worker_device != "cpu" else 0)
    pool.start()
    # A request that computes (a 10,000-job sweep, a large upload) holds the GIL between switches;
    # the event loop needs it a few times per request, so shorter turns keep /healthz and every
    # other request answering promptly (the default 5 ms made them wait hundreds of ms).
    sys.setswitchinterval(SWITCH_INTERVAL)
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port,
                            log_level=settings.log_level, log_config=None)
    try:
        _Server(config).run()
    finally:
        pool.stop()


@main.command()
@click.option("--database-url", default=None, help="SQLAlchemy URL of the shared database")
def worker(database_url: str | None) -> None:
    """Run one worker process against an existing database (one per GPU on GPU hosts)."""
    if database_url:
        os.environ["BUMPFIT_DATABASE_URL"] = database_url
    from workers.__main__ import main as worker_main

    worker_main()


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("new")
@click.option("--scope", type=click.Choice(["read", "submit"]), default="submit", show_default=True)
def new_key(scope: str) -> None:
    """Print a new API key (shown once) and the BUMPFIT_API_KEYS entry that stores its hash."""
    from app.auth import new_key as make

    key, entry = make(scope)
    click.echo(f"key (give it to the client; it is not stored): {key}")
    click.echo(f"BUMPFIT_API_KEYS={entry}   (comma-separate several entries)")


@main.command()
@click.option("--database-url", default=None, help="SQLAlchemy URL")
def migrate(database_url: str | None) -> None:
    """Bring the database to the latest migration (what `alembic upgrade head` does)."""
    from app import migrate as m

    m.upgrade(_settings(database_url=database_url).database_url)
    click.echo(f"database at migration {m.head()}")


for _command in CLIENT_COMMANDS:  # submit, sweep, watch, get, predict, cancel, jobs
    main.add_command(_command)


if __name__ == "__main__":
    main()
