"""The outbound trust boundary, in process: local addresses refused at registration (422 naming `url`)
and again at delivery after resolving; one slow receiver delays no other; a reply is read raw and
bounded (a gzip bomb costs nothing); the MLflow export gives up. Every receiver listens on 127.0.0.1,
and a host name is resolved by a fake resolver that knows one name: no traffic leaves loopback."""

from __future__ import annotations

import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.main import create_app
from app.ops.metrics import REGISTRY
from app.outbox import events
from app.outbox.dispatch import Dispatcher
from app.outbox.models import Delivery
from app.settings import Settings
from app.store import migrate
from app.store.db import session_scope
from tests.conftest import seed_job, wait_for
from tests.integration.test_webhooks import deliveries, run_job
from tests.receiver import Receiver, receiver

NAME = "hooks.example.test"  # resolves to 127.0.0.1, through the fake resolver only


def refused_urls(port: int) -> list[str]:
    """The issue's eleven: loopback spellings first, so code that accepts one fails at the first."""
    return [
        f"http://127.0.0.1:{port}/h",
        f"http://[::1]:{port}/h",
        f"http://localhost:{port}/h",
        f"http://0.0.0.0:{port}/h",
        f"http://2130706433:{port}/h",
        f"http://127.1:{port}/h",
        f"http://[::ffff:127.0.0.1]:{port}/h",
        "http://127.0.0.1:8000/v1/jobs",  # the API itself
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/h",
        "http://192.168.1.1/h",
    ]


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    """A migrated SQLite database (the dispatcher's bounds do not depend on the database)."""
    url = f"sqlite:///{tmp_path / 'bumpfit.db'}"
    migrate.upgrade(url)
    return url


def local(url: str, **more: Any) -> Settings:
    """Settings that let the loopback receivers through, with quick retries."""
    return Settings(**{"database_url": url, "webhook_allow_private": True, "outbox_retry_seconds": 0.01, **more})


def make_due(url: str) -> None:
    """Skip the backoff's wait."""
    with session_scope(url) as s:
        s.execute(update(Delivery).values(next_attempt_at=Delivery.updated_at))


def test_local_addresses_are_refused_at_registration(client: TestClient, db_url: str) -> None:
    with receiver() as rec:
        for url in refused_urls(urlsplit(rec.url).port or 0):
            r = client.post("/v1/webhooks", json={"url": url})
            assert r.status_code == 422, (url, r.text)  # checked before anything else happens
            error = r.json()["error"]
            assert (
                error["message"].startswith("url: must reach a public address") and error["details"][0]["loc"] == "url"
            )
        assert client.get("/v1/webhooks").json() == {"webhooks": []}
        job = client.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
        run_job(db_url, job, "succeeded")
        dispatcher = Dispatcher(Settings(database_url=db_url))
        assert dispatcher.run_once() == 0 and deliveries(db_url) == [] and rec.requests == []


def test_an_allowed_network_is_let_through(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, webhook_allow_cidrs="127.0.0.0/8")
    with TestClient(create_app(settings)) as client, receiver() as rec:
        hook_for(client, rec, "job.succeeded")
        assert client.post("/v1/webhooks", json={"url": "http://[::1]/h"}).status_code == 422
        job = client.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
        run_job(sqlite_url, job, "succeeded")
        assert Dispatcher(settings).run_once() == 1 and len(rec.requests) == 1


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver knows NAME (127.0.0.1) and address literals; any other name fails, unasked."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == NAME:
            return real("127.0.0.1", *args, **kwargs)
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in str(host) else socket.AF_INET, str(host))
        except OSError:
            raise socket.gaierror(socket.EAI_NONAME, "unknown to the test's resolver") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.usefixtures("fake_dns")
def test_a_name_that_resolves_to_loopback_is_refused_at_delivery(client: TestClient, db_url: str) -> None:
    with receiver() as rec:
        port = urlsplit(rec.url).port
        hook = client.post("/v1/webhooks", json={"url": f"http://{NAME}:{port}/h"})
        assert hook.status_code == 201  # a name: resolved and checked at each delivery
        job = client.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
        run_job(db_url, job, "succeeded")
        strict = Dispatcher(Settings(database_url=db_url))
        assert strict.run_once() == 1
        assert rec.requests == []
        with session_scope(db_url, readonly=True) as s:
            assert s.scalar(select(Delivery.last_error)) == "refused: 127.0.0.1 is loopback"
        make_due(db_url)
        allowing = Dispatcher(local(db_url))
        assert allowing.run_once() == 1 and deliveries(db_url) == [(f"webhook:{hook.json()['id']}", "done", 2)]
        # The checked address was connected to, with the name as the Host header.
        assert [r["headers"]["Host"] for r in rec.requests] == [f"{NAME}:{port}"]


def hook_for(client: TestClient, rec: Receiver, event: str) -> str:
    r = client.post("/v1/webhooks", json={"url": rec.url, "events": [event]})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_a_trickling_receiver_delays_no_other(sqlite_url: str) -> None:
    settings = local(sqlite_url, webhook_timeout_seconds=3, outbox_retry_seconds=60)
    with TestClient(create_app(settings)) as client, receiver() as slow, receiver() as fast:
        slow.trickle = 2.0  # a byte every 2 s: a per-read timeout of 3 s would never fire
        slow_hook = hook_for(client, slow, "job.failed")
        hook_for(client, fast, "job.succeeded")
        first, second = (client.post("/v1/jobs", json=seed_job(n=100)).json()["id"] for _ in range(2))
        dispatcher = Dispatcher(settings)
        dispatcher.start()
        try:
            run_job(sqlite_url, first, "failed")
            wait_for(lambda: len(slow.requests) == 1, 10, "the slow receiver's request")
            began = time.monotonic()
            run_job(sqlite_url, second, "succeeded")
            wait_for(lambda: len(fast.requests) == 1, 5, "the other receiver's event within 5 s")

            def slow_attempt_ended() -> bool:
                with session_scope(sqlite_url, readonly=True) as s:
                    return (
                        s.scalar(select(Delivery.last_error).where(Delivery.target == f"webhook:{slow_hook}"))
                        is not None
                    )

            wait_for(slow_attempt_ended, 8, "the slow attempt to end by its 3 s deadline")
            assert time.monotonic() - began < 8
        finally:
            dispatcher.stop()


def rss() -> int:
    """This process's resident memory in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_during(work: Callable[[], Any]) -> int:
    """The highest RSS seen (every millisecond) while `work` runs, above the RSS before it."""
    before, peak, done = rss(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        work()
    finally:
        done.set()
        sampler.join()
    return max(peak[0], rss()) - before


def gzip_bomb(mib: int) -> bytes:
    """`mib` MiB of zeros, gzipped (about 1/1000 of that)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(2**20)
    return b"".join(packer.compress(zeros) for _ in range(mib)) + packer.flush()


def test_a_gzip_bomb_reply_costs_no_memory(sqlite_url: str) -> None:
    bomb = gzip_bomb(400)
    assert len(bomb) < 600 * 1024
    settings = local(sqlite_url)
    with TestClient(create_app(settings)) as client, receiver() as rec:
        rec.respond = lambda *_: (200, {"content-encoding": "gzip", "content-type": "application/json"}, bomb)
        hook_for(client, rec, "job.succeeded")
        hook_for(client, rec, "job.failed")
        first, second = (client.post("/v1/jobs", json=seed_job(n=100)).json()["id"] for _ in range(2))
        dispatcher = Dispatcher(settings)
        run_job(sqlite_url, first, "failed")
        dispatcher.run_once()  # a first delivery warms up what any delivery allocates
        run_job(sqlite_url, second, "succeeded")
        grown = peak_during(dispatcher.run_once)
        assert grown < 20 * 2**20, f"delivering grew the process by {grown / 2**20:.0f} MiB"
        assert [d[1] for d in deliveries(sqlite_url)] == ["done", "done"]
        sent = [{k.lower(): v for k, v in r["headers"].items()} for r in rec.requests]
        assert {h["accept-encoding"] for h in sent} == {"identity"}


@pytest.fixture
def mlflow_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Job ends write an MLflow delivery (events read the process-wide settings otherwise)."""
    monkeypatch.setattr(events, "_mlflow", lambda: True)


@pytest.mark.usefixtures("mlflow_on")
def test_the_mlflow_export_gives_up_on_a_misbehaving_server(client: TestClient, db_url: str) -> None:
    def contrary(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        """The experiment does not exist, and cannot be created because it exists."""
        json = {"content-type": "application/json"}
        if "get-by-name" in path:
            return 404, json, b'{"error_code": "RESOURCE_DOES_NOT_EXIST"}'
        if path.endswith("/experiments/create"):
            return 400, json, b'{"error_code": "RESOURCE_ALREADY_EXISTS"}'
        return 500, {}, b""

    def dead() -> float:
        return REGISTRY.get_sample_value("bumpfit_outbox_deliveries_dead_total", {"target": "mlflow"}) or 0.0

    with receiver() as server:
        server.respond = contrary
        base = f"http://127.0.0.1:{urlsplit(server.url).port}"
        job = client.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
        run_job(db_url, job, "succeeded")
        assert deliveries(db_url) == [("mlflow", "pending", 0)]
        settings = local(db_url, mlflow_tracking_uri=base, mlflow_max_attempts=3)
        dispatcher, before = Dispatcher(settings), dead()
        for _ in range(4):
            dispatcher.run_once()
            make_due(db_url)
        assert deliveries(db_url) == [("mlflow", "dead", 3)]
        assert dead() == before + 1
        assert len(server.requests) <= 3 * 3  # get, create, get again: no loop, no recursion
        with session_scope(db_url, readonly=True) as s:
            assert "RESOURCE_DOES_NOT_EXIST" in (s.scalar(select(Delivery.last_error)) or "")


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    yield
    wait_for(lambda: not [t for t in threading.enumerate() if t.name == "delivery"], 10, "deliveries to end")
