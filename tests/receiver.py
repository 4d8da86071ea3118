"""A real local HTTP receiver for webhook tests: records each request (headers and body) and answers
with the statuses it is told to, then 200; or with what `respond` says (a hostile reply, a
misbehaving MLflow), or a reply that trickles one byte every `trickle` seconds and never ends."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Requests received, and the statuses to answer next (200 once they run out)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/hooks?token=abc"
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        self.respond: Callable[[str, str], tuple[int, dict[str, str], bytes]] | None = None  # (method, path)
        self.trickle: float | None = None
        self.stopped = threading.Event()


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A receiver listening on a free loopback port until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with rec.lock:
                rec.requests.append(
                    {"headers": dict(self.headers.items()), "body": body, "path": self.path, "method": self.command}
                )
                status = rec.statuses.pop(0) if rec.statuses else 200
            if rec.trickle is not None:
                self.close_connection = True
                try:  # a status line that never ends: 12 bytes, one every `trickle` seconds
                    for byte in b"HTTP/1.1 200":
                        if rec.stopped.wait(rec.trickle):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:  # the client hung up
                    return
                return
            headers: dict[str, str] = {}
            reply = b""
            if rec.respond is not None:
                status, headers, reply = rec.respond(self.command, self.path)
            self.send_response(status)
            for name, value in {"content-length": str(len(reply)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(reply)
            except OSError:  # the client read what it wanted and hung up
                pass

        do_GET = do_PUT = do_POST  # noqa: N815

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec = Receiver(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.stopped.set()
        server.shutdown()
        server.server_close()
