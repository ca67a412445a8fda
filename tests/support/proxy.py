"""A TCP proxy in front of PostgreSQL that a test can cut (every connection reset, new ones
refused) and restore on the same port: "PostgreSQL refusing connections for a while".

`cut(starting_up=True)` plays a server that is restarting instead: every connection is reset,
and every new one is accepted and answered, as PostgreSQL does while it recovers, with the
FATAL error 57P03 "the database system is starting up" (`CannotConnectNowError` in asyncpg)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def _error_response(code: str, message: str) -> bytes:
    fields = b"".join(
        tag + value.encode() + b"\0"
        for tag, value in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", code), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


def answer_starting_up(client: socket.socket) -> None:
    """Read the startup packet (declining SSL/GSS first) and answer 57P03, as a recovering
    PostgreSQL does; then close."""
    try:
        client.settimeout(5)
        while True:
            length, code = struct.unpack("!II", _recv_exact(client, 8))
            _recv_exact(client, length - 8)
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                client.sendall(b"N")
                continue
            client.sendall(_error_response("57P03", "the database system is starting up"))
            return
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            client.close()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self.port = 0
        self.accepted = 0
        self.starting_up = False
        self.answered_starting_up = 0
        self._listen()

    def _listen(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self.port = server.getsockname()[1]
        self._server = server
        thread = threading.Thread(target=self._accept, args=(server,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            if self.starting_up:
                self.answered_starting_up += 1
                threading.Thread(target=answer_starting_up, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                cut = self._server is not server or self.starting_up  # cut meanwhile
                if not cut:
                    self._conns.update((client, upstream))
                    self.accepted += 1
            if cut:
                client.close()
                upstream.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._conns.discard(source)
                self._conns.discard(sink)

    def cut(self, *, starting_up: bool = False) -> None:
        """Reset every connection; refuse new ones (the port is closed) or, with `starting_up`,
        answer each with 57P03 "the database system is starting up"."""
        with self._lock:
            if starting_up:
                server = None
                self.starting_up = True
            else:
                server, self._server = self._server, None
            conns = list(self._conns)
            self._conns.clear()
        if server is not None:
            server.close()
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv()
            with contextlib.suppress(OSError):
                sock.close()

    def restore(self) -> None:
        self.starting_up = False
        if self._server is None:
            self._listen()

    def close(self) -> None:
        self.cut()

    def url_for(self, database_url: str) -> str:
        parts = urlsplit(database_url)
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0] + "@" if len(netloc) == 2 else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))


@contextmanager
def tcp_proxy(database_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    try:
        yield proxy
    finally:
        proxy.close()
