"""Limits per caller (an API key, or the client address where keys are off; `app.http.auth.Caller`)
that the HTTP shell holds: the request rate and open event streams. The caps counted in the database
(queued jobs, webhooks, stored upload bytes) are `app.store.caps`'s. A limit's error names its setting
(docs/access.md). Every limit is off by default."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from app import logs
from app.errors import BumpfitError, TooMany, shaped
from app.http.auth import Caller
from app.store.caps import who


def parse_rate(rate: str) -> list[RateLimitItem]:
    """`50/second` or `50/second;2000/hour` -> the limits' items; empty: none. ValueError if unreadable."""
    if not rate.strip():
        return []
    try:
        return list(parse_many(rate))
    except ValueError:
        raise ValueError(f"{rate!r} is not a rate such as 50/second or 50/second;2000/hour") from None


class PerCaller:
    """Put each request's caller (named by `RequireKey`, which runs before it) in its log lines as
    `key`, the access log's included, and hold it to the rate limit: past it, 429 with Retry-After
    before anything of the request is read."""

    def __init__(self, app: ASGIApp, rate: str = "") -> None:
        self.app, self.items = app, parse_rate(rate)
        self.limiter = MovingWindowRateLimiter(MemoryStorage()) if self.items else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = scope.get("state", {}).get("caller") if scope["type"] == "http" else None
        if caller is not None:
            logs.KEY_ID.set(caller.key_id)
            try:
                self.check_rate(caller)
            except BumpfitError as err:
                body, status = shaped(err.body(), err.status_code, scope["path"])
                return await JSONResponse(body, status_code=status, headers=err.headers)(scope, receive, send)
        await self.app(scope, receive, send)

    def check_rate(self, caller: Caller) -> None:
        """Count this request; TooMany with Retry-After once the caller is past a rate."""
        if self.limiter is None:
            return
        for item in self.items:
            if not self.limiter.hit(item, caller.id):
                reset = self.limiter.get_window_stats(item, caller.id).reset_time
                wait = max(1, math.ceil(reset - time.time()))
                raise TooMany(
                    f"{who(caller)} is over the rate limit of {item} (BUMPFIT_RATE_LIMIT); retry in {wait} s",
                    details={"limit": "rate_limit", "rate": str(item), "retry_after": wait},
                    headers={"Retry-After": str(wait)},
                )


async def get_caller(request: Request) -> Caller:
    """The request's caller, named by `PerCaller`."""
    caller: Caller = request.state.caller
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


class Streams:
    """The job event streams open in this API process, by caller."""

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, caller: Caller, limit: int | None) -> Callable[[], None]:
        """Count one more open stream of the caller (TooMany past `limit`); call what is returned, once
        or more, when it closes."""
        with self._lock:
            if limit is not None and self._open[caller.id] >= limit:
                raise TooMany(
                    f"{who(caller)} has {self._open[caller.id]} event streams open, the limit "
                    f"(BUMPFIT_MAX_STREAMS is {limit}); close one first",
                    details={"limit": "max_streams", "max": limit},
                )
            self._open[caller.id] += 1
        done = threading.Event()

        def give_back() -> None:
            with self._lock:
                if not done.is_set():
                    done.set()
                    self._open[caller.id] -= 1
                    if self._open[caller.id] <= 0:
                        del self._open[caller.id]

        return give_back

    def open(self, caller: Caller) -> int:
        """How many streams the caller has open."""
        with self._lock:
            return self._open[caller.id]


class ClosingStream(StreamingResponse):
    """A streaming response that calls `on_close` once it has ended, however it ends (its content
    done, the client gone, an error)."""

    def __init__(self, content: Any, on_close: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()
