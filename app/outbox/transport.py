"""The HTTP client of webhooks and the MLflow export: every connection goes to an address the egress
policy checked (the name is resolved once, each address checked, and that very address connected to,
while the Host header, TLS SNI and certificate check keep the name: no DNS-rebinding window); each
request runs under one total deadline (connect, send and reply together, not per read); replies are
streamed, read raw (never decompressed) and at most `limit` bytes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from app.outbox.egress import IP, Policy, literal

DEADLINE: ContextVar[float | None] = ContextVar("bumpfit_egress_deadline", default=None)


def lookup(host: str, port: int) -> list[IP]:
    """Every address the system resolver gives for `host` (tests replace this function)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[IP] = []
    for info in infos:
        ip = literal(str(info[4][0]))
        if ip is not None and ip not in out:
            out.append(ip)
    return out


def _left(timeout: float | None, late: type[Exception]) -> float | None:
    """Seconds an operation may take: its own timeout, cut to what is left of the deadline."""
    deadline = DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise late("the delivery's deadline passed")
    return min(left, timeout) if timeout is not None else left


def resolve(host: str, port: int, timeout: float | None) -> list[IP]:
    """The addresses of `host`, resolved in a daemon thread so the deadline bounds a slow resolver too."""
    ip = literal(host)
    if ip is not None:
        return [ip]
    box: list[list[IP] | OSError] = []

    def run() -> None:
        try:
            box.append(lookup(host, port))
        except OSError as exc:
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True, name="resolve")
    thread.start()
    thread.join(_left(timeout, httpcore.ConnectTimeout))
    if not box:
        raise httpcore.ConnectTimeout("name resolution took too long")
    if isinstance(box[0], OSError) or not box[0]:
        raise httpcore.ConnectError(f"cannot resolve {host}")
    return box[0]


class _Stream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to `max_bytes`, within the deadline."""
        return self.inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """All of `buffer`, within the deadline."""
        self.inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        """Close the connection."""
        self.inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        """TLS for `server_hostname` (the URL's name, not the address), within the deadline."""
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self.inner.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        """The connection's details (httpcore asks whether it is still readable)."""
        return self.inner.get_extra_info(info)


class Guarded(httpcore.NetworkBackend):
    """Connects only to addresses `policy` lets through: resolves the name once, checks every
    address it got (egress.Refused if any is refused) and connects to those very addresses."""

    def __init__(self, policy: Policy, inner: httpcore.NetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """A connection to a checked address of `host`."""
        ips = resolve(host, port, timeout)
        self.policy.check_all(ips)
        error: Exception = httpcore.ConnectError(f"cannot connect to {host}")
        for ip in ips:
            try:
                left = _left(timeout, httpcore.ConnectTimeout)
                stream = self.inner.connect_tcp(str(ip), port, left, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return _Stream(stream)
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        """Never: deliveries go over TCP only."""
        raise httpcore.ConnectError("unix sockets are not a delivery target")

    def sleep(self, seconds: float) -> None:
        """Wait (httpcore's retries; there are none)."""
        time.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a `Guarded` backend: no proxies from the environment, no unix sockets."""

    def __init__(self, policy: Policy) -> None:
        ssl_context = httpx.create_ssl_context(trust_env=False)  # verifies the URL's name
        super().__init__(verify=ssl_context, trust_env=False)
        self._pool = httpcore.ConnectionPool(  # httpx's own pool, with the guarded backend
            ssl_context=ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=Guarded(policy),
        )


def client(policy: Policy) -> httpx.Client:
    """An httpx client that reaches only what `policy` lets through; redirects are never followed."""
    return httpx.Client(transport=GuardedTransport(policy), follow_redirects=False, trust_env=False)


@dataclass(frozen=True)
class Reply:
    """A reply's status, headers and first `limit` raw bytes (`whole`: nothing was left unread)."""

    status: int
    headers: httpx.Headers
    body: bytes
    whole: bool


def fetch(http: httpx.Client, method: str, url: str, *, seconds: float, limit: int, **kwargs: Any) -> Reply:
    """One request, all of it (resolving, connecting, sending, the reply's first `limit` bytes) within
    `seconds`; asks for and reads the body undecoded (`Accept-Encoding: identity`). Raises
    egress.Refused for an address the policy refuses, httpx.HTTPError for the rest."""
    headers = {**kwargs.pop("headers", {}), "accept-encoding": "identity"}
    token = DEADLINE.set(time.monotonic() + seconds)
    try:
        with http.stream(method, url, headers=headers, timeout=seconds, **kwargs) as r:
            body = bytearray()
            whole = True
            for chunk in r.iter_raw():
                body += chunk
                if len(body) > limit:
                    whole = False
                    break
            return Reply(r.status_code, r.headers, bytes(body[:limit]), whole)
    finally:
        DEADLINE.reset(token)
