"""How an idle worker waits for work: a PostgreSQL LISTEN connection that a NOTIFY wakes (reopened
with backoff when it is lost), else a byte on `bumpfit serve`'s wake-up pipe (SQLite), else the
poll interval."""

from __future__ import annotations

import logging
import os
import random
import select as os_select
import threading
import time
from typing import Any

from app.store import wake

log = logging.getLogger("bumpfit.worker")
LISTEN_RETRY_MIN = 0.5  # first pause before reopening a lost LISTEN connection; doubles each try ...
LISTEN_RETRY_MAX = 30.0  # ... up to this: the longest pause between tries


class Wakeups:
    """The LISTEN connection (None while there is none) and the wake-up pipe of one worker."""

    def __init__(self, url: str, poll_seconds: float, stopping: threading.Event) -> None:
        self.url, self.poll_seconds, self.stopping = url, poll_seconds, stopping
        # `bumpfit serve` wakes its workers through a pipe when jobs are queued (SQLite has no NOTIFY).
        self.wake_fd = int(os.environ.get("BUMPFIT_WAKE_FD", "0")) or None
        self.listener: Any = None
        self.tries, self.next_try = 0, 0.0

    def wait(self) -> None:
        """Sleep until a NOTIFY (PostgreSQL), a byte on the wake-up pipe, or the poll interval passes.
        A LISTEN connection that fails is closed; `ensure_listening` reopens it."""
        if self.listener is not None:
            try:
                for _ in self.listener.notifies(timeout=self.poll_seconds, stop_after=1):
                    pass
                return
            except Exception as exc:  # noqa: BLE001 - any failure of that connection: reopen it
                log.warning("LISTEN connection lost (%s); reopening it, polling meanwhile", type(exc).__name__)
                self.close()
                pause = LISTEN_RETRY_MIN * random.uniform(0.5, 1.0)
                self.next_try = time.monotonic() + pause
                self.stopping.wait(min(pause, self.poll_seconds))
                return
        if self.wake_fd is not None:
            if os_select.select([self.wake_fd], [], [], self.poll_seconds)[0]:
                if not os.read(self.wake_fd, 4096):  # end of file: `bumpfit serve` is gone; poll
                    self.wake_fd = None
            return
        self.stopping.wait(self.poll_seconds)

    def ensure_listening(self) -> None:
        """On PostgreSQL, (re)open the LISTEN connection when there is none, with backoff between
        tries (from LISTEN_RETRY_MIN up to LISTEN_RETRY_MAX seconds); polling covers the gaps."""
        if self.listener is not None or not self.url.startswith("postgresql") or time.monotonic() < self.next_try:
            return
        self.listener = wake.listen(self.url)
        if self.listener is None:
            if self.tries == 0:
                log.warning("could not LISTEN; polling, and trying again with backoff")
            self.tries += 1
            pause = min(LISTEN_RETRY_MAX, LISTEN_RETRY_MIN * 2**self.tries) * random.uniform(0.5, 1.0)
            self.next_try = time.monotonic() + pause
        elif self.tries:
            log.info("listening for new jobs again")
            self.tries = 0

    def close(self) -> None:
        """Close the LISTEN connection, if any, whatever state it is in."""
        conn, self.listener = self.listener, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - it is already broken; nothing to keep
                pass
