"""ASGI middleware, outermost first: request id, metrics and the catch-all; the trust boundary (Host
names, cross-site writes); API keys; body limit.

Pure ASGI (no BaseHTTPMiddleware), so each runs before anything of the request body is read.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import BumpfitError, TooLarge, shaped
from app.http.auth import check_key
from app.http.boundary import Boundary
from app.ops.metrics import LATENCY, REQUESTS
from app.store import pages

log = logging.getLogger("bumpfit.api")


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


async def _answer(err: BumpfitError, scope: Scope, send: Send, headers: dict[str, str] | None = None) -> None:
    body, status = shaped(err.body(), err.status_code, scope["path"])
    await JSONResponse(body, status_code=status, headers=headers)(scope, _nothing, send)


class Observe:
    """Give every request an id (the `X-Request-ID` response header), count it in the metrics, and
    answer any unexpected exception with the contract's 500 body naming that id. The traceback goes
    to the log with the id, never to the client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id  # request.state.request_id for handlers
        start, status, started = time.perf_counter(), 500, False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unexpected error in %s %s", scope["method"], scope["path"], extra={"request_id": request_id})
            if started:  # nothing more can be said on a response already under way
                raise
            err = BumpfitError(
                f"unexpected error; the service log has its details under request id {request_id}",
                details={"request_id": request_id},
            )
            await _answer(err, scope, send, {"X-Request-ID": request_id})
        finally:
            LATENCY.observe(time.perf_counter() - start)
            REQUESTS.labels(scope["method"], str(status)).inc()


class TrustBoundary:
    """Refuse a Host name or a cross-site write outside the `boundary` (app/http/boundary.py) before anything
    of the request is read: 400 for the host, 403 for the write, each naming the reason."""

    def __init__(self, app: ASGIApp, boundary: Boundary) -> None:
        self.app, self.boundary = app, boundary

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            err = self.boundary.refusal(scope["method"], scope["scheme"], headers)
            if err is not None:
                return await _answer(err, scope, send)
        await self.app(scope, receive, send)


class RequireKey:
    """With API keys configured, refuse a request without the right key before its body is read; name
    every request's caller (`request.state.caller`: its key, or its client address without keys)."""

    def __init__(self, app: ASGIApp, keys: dict[str, str]) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            client = (scope.get("client") or ("",))[0]
            try:
                caller = check_key(self.keys, scope["method"], scope["path"], auth, client)
            except BumpfitError as err:
                return await _answer(err, scope, send)
            if caller is not None:
                scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over the limit for their route with 413, counted while they are read
    (a declared Content-Length over it is refused before reading), so no body is ever buffered here."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[Scope], int]) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope)
        err = TooLarge.at("body", f"is larger than the limit of {limit} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (pages.decimal(declared.decode("latin-1")) or 0) > limit:
            return await _answer(err, scope, send)
        size, over, answered = 0, False, False

        async def counted() -> Message:
            nonlocal size, over
            message = await receive()
            size += len(message.get("body", b""))
            if size > limit:
                over = True
                raise err  # stops the reader; whatever the app answers is replaced by the 413
            return message

        async def guarded(message: Message) -> None:
            nonlocal answered
            if not over:
                await send(message)
            elif not answered and message["type"] == "http.response.start":
                answered = True
                await _answer(err, scope, send)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over:
                raise
        if over and not answered:
            await _answer(err, scope, send)
