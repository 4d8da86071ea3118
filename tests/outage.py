"""A database outage as its clients see it, without stopping a server other tests share: a TCP proxy
in front of PostgreSQL (on TCP, or on the Unix socket of the tests' own throwaway server) that a test
cuts (every open connection reset, new ones refused) and restores on the same port."""

from __future__ import annotations

import socket
import struct
import threading

from sqlalchemy import make_url

from tests.conftest import free_port

ACCEPT_POLL = 0.1  # seconds: how soon the accept loop notices a cut


class Proxy:
    """Forwards 127.0.0.1:`port` to the database of `url`; `via` is `url` through it."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        socket_dir = parsed.query.get("host")
        port = parsed.port or 5432
        # A Unix socket (`?host=/dir`, as the throwaway server listens) or a TCP address.
        self.target: str | tuple[str, int] = (
            f"{socket_dir}/.s.PGSQL.{port}" if isinstance(socket_dir, str) else (parsed.host or "127.0.0.1", port)
        )
        self.port = free_port()
        via = parsed.set(host="127.0.0.1", port=self.port).difference_update_query(["host"])
        self.via = via.render_as_string(hide_password=False)
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        """Accept connections again (the database is back)."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        sock.settimeout(ACCEPT_POLL)
        self.listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and reset every open one: the database is away."""
        sock, self.listener = self.listener, None
        if sock is not None:
            sock.close()
        with self.lock:
            conns, self.open = self.open, []
        for conn in conns:
            try:  # shutdown wakes the pump blocked on it (close alone would not); linger 0: a RST
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Stop forwarding for good."""
        self.cut()

    def _accept(self, sock: socket.socket) -> None:
        while self.listener is sock:
            try:
                client, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                if isinstance(self.target, str):
                    server = socket.socket(socket.AF_UNIX)
                    server.connect(self.target)
                else:
                    server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        with self.lock:
            self.open = [s for s in self.open if s not in (src, dst)]
