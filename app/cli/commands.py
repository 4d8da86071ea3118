"""The `bumpfit` command: `serve` (API + workers) and `worker`."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import click

from app.cli.analysis import COMMANDS as ANALYSIS_COMMANDS
from app.cli.manage import COMMANDS as LIFECYCLE_COMMANDS
from app.cli.remote import COMMANDS as CLIENT_COMMANDS
from app.settings import Settings, load_settings

log = logging.getLogger("bumpfit.serve")
RESPAWN_CHECK_SECONDS = 1.0  # how often `serve` looks for dead worker processes
STOP_GRACE_SECONDS = 30.0  # workers get this long after SIGTERM to hand their jobs back
SWITCH_INTERVAL = 0.0005  # seconds a thread holds the GIL before others get a turn (Python: 0.005)


def _settings(**flags: Any) -> Settings:
    return load_settings(**{k: v for k, v in flags.items() if v is not None})


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
        self.wake_fds: list[int] = []  # write ends of each worker's wake-up pipe
        self.stopping = threading.Event()

    def spawn(self, i: int) -> subprocess.Popen[bytes]:
        env = {**self.env, "CUDA_VISIBLE_DEVICES": str(i % self.gpus)} if self.gpus else dict(self.env)
        read, write = os.pipe()
        os.set_blocking(write, False)
        env["BUMPFIT_WAKE_FD"] = str(read)
        proc = subprocess.Popen([sys.executable, "-m", "workers"], env=env, pass_fds=(read,))
        os.close(read)
        if i < len(self.wake_fds):
            os.close(self.wake_fds[i])
            self.wake_fds[i] = write
        else:
            self.wake_fds.append(write)
        return proc

    def start(self) -> None:
        self.procs = [self.spawn(i) for i in range(self.n)]
        threading.Thread(target=self.supervise, daemon=True, name="supervisor").start()

    def wake(self) -> None:
        """Tell every worker that jobs were queued (a byte down its pipe; a full pipe already says so)."""
        for fd in list(self.wake_fds):
            with contextlib.suppress(OSError):
                os.write(fd, b"\0")

    def supervise(self) -> None:
        while not self.stopping.wait(RESPAWN_CHECK_SECONDS):
            for i, p in enumerate(self.procs):
                if p.poll() is not None and not self.stopping.is_set():
                    log.warning("worker pid %s exited with %s; starting another", p.pid, p.returncode)
                    self.procs[i] = self.spawn(i)

    def ask_to_stop(self) -> None:
        """SIGTERM every worker now (each ends its epoch and hands its jobs back); no waiting."""
        self.stopping.set()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()

    def stop(self) -> None:
        self.ask_to_stop()
        for p in self.procs:
            try:
                p.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                p.kill()


class _Server:
    """uvicorn's server, except that SIGTERM/SIGINT end `serve` cleanly (exit 0 after the workers
    have handed their jobs back) instead of being re-raised once the API has stopped, and call
    `on_signal` at once (the workers start handing back while the API shuts down)."""

    def __init__(self, config: Any, on_signal: Callable[[], None]) -> None:
        import uvicorn

        self.server = uvicorn.Server(config)
        self.server.capture_signals = self._capture  # type: ignore[method-assign]
        self.on_signal = on_signal

    def _handle(self, sig: int, frame: Any) -> None:
        self.on_signal()
        self.server.handle_exit(sig, frame)

    @contextlib.contextmanager
    def _capture(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
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

    from app.http.auth import is_loopback, parse_keys
    from app.logs import configure
    from app.main import create_app
    from app.outbox.dispatch import Dispatcher
    from app.store import migrate, queue

    settings = _settings(host=host, port=port, database_url=database_url, workers=workers)
    configure(settings.log_level)
    if not is_loopback(settings.host) and not parse_keys(settings.api_keys):
        raise click.UsageError(
            f"serving on {settings.host} needs API keys: run `bumpfit keys new --scope submit` "
            "and set BUMPFIT_API_KEYS (or bind to 127.0.0.1)"
        )
    log.info("settings: %s", settings.masked())
    migrate.upgrade(settings.database_url)
    env = {**os.environ, "BUMPFIT_DATABASE_URL": settings.database_url, "BUMPFIT_PARENT_PID": str(os.getpid())}
    pool = WorkerPool(settings.workers, env, gpu_count() if settings.worker_device != "cpu" else 0)
    pool.start()
    queue.on_enqueue(pool.wake)  # SQLite has no NOTIFY: a queued job wakes the workers at once
    outbox = Dispatcher(settings)  # webhooks and MLflow, after commit, beside the API
    outbox.start()
    # A request that computes (a 10,000-job sweep, a large upload) holds the GIL between switches;
    # the event loop needs it a few times per request, so shorter turns keep /healthz and every
    # other request answering promptly (the default 5 ms made them wait hundreds of ms).
    sys.setswitchinterval(SWITCH_INTERVAL)
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level, log_config=None
    )
    try:
        _Server(config, on_signal=pool.ask_to_stop).run()
    finally:
        outbox.stop()
        pool.stop()


@main.command()
@click.option("--database-url", default=None, help="SQLAlchemy URL of the shared database")
@click.option(
    "--healthcheck",
    is_flag=True,
    help="exit 0 if a worker of this host has a heartbeat younger than one lease, else 1 (no TensorFlow)",
)
def worker(database_url: str | None, healthcheck: bool) -> None:
    """Run one worker process against an existing database (one per GPU on GPU hosts)."""
    if healthcheck:
        from app.ops.service import host_worker_alive

        settings = _settings(database_url=database_url)
        if not host_worker_alive(settings.database_url, socket.gethostname(), settings.lease_seconds):
            raise SystemExit(
                f"no worker on {socket.gethostname()} with a heartbeat in the last {settings.lease_seconds:g} s"
            )
        return
    _settings(database_url=database_url)  # a misconfiguration ends here, before TensorFlow loads
    if database_url:
        os.environ["BUMPFIT_DATABASE_URL"] = database_url
    from workers.__main__ import main as worker_main

    worker_main()


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("new")
@click.option(
    "--scope",
    type=click.Choice(["read", "predict", "submit", "admin"]),
    default="submit",
    show_default=True,
    help="read: GET; predict: also predictions; submit: also jobs, sweeps, uploads; admin: also deletes, "
    "labels and webhooks",
)
@click.option(
    "--dotenv",
    is_flag=True,
    help="print .env lines on stdout (the key goes to stderr): BUMPFIT_API_KEYS with this key added to "
    "the configured ones and, while the PostgreSQL URL has no password, a new POSTGRES_PASSWORD",
)
def new_key(scope: str, dotenv: bool) -> None:
    """Print a new API key (shown once) and the BUMPFIT_API_KEYS entry that stores its hash."""
    from sqlalchemy.engine import make_url

    from app.http.auth import new_key as make

    key, entry = make(scope)
    if not dotenv:
        click.echo(f"key (give it to the client; it is not stored): {key}")
        click.echo(f"BUMPFIT_API_KEYS={entry}   (comma-separate several entries)")
        return
    settings = _settings()
    click.echo(f"bumpfit API key ({scope}; shown once, only its hash goes to .env): {key}", err=True)
    click.echo(f"# bumpfit keys new --scope {scope} --dotenv")
    click.echo(f"BUMPFIT_API_KEYS={','.join(filter(None, [settings.api_keys, entry]))}")
    url = make_url(settings.database_url)
    if url.drivername.startswith("postgresql") and url.username and not url.password:
        click.echo(f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}")


@main.command()
@click.option("--database-url", default=None, help="SQLAlchemy URL")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="seconds to keep trying while the database does not accept connections yet",
)
def migrate(database_url: str | None, wait: float) -> None:
    """Bring the database to the latest migration (what `alembic upgrade head` does)."""
    from app.store import migrate as m

    url = _settings(database_url=database_url).database_url
    m.wait_for_database(url, wait)
    m.upgrade(url)
    click.echo(f"database at migration {m.head()}")


for _command in (*CLIENT_COMMANDS, *LIFECYCLE_COMMANDS, *ANALYSIS_COMMANDS):  # submit ... jobs; models ...; bounds
    main.add_command(_command)
