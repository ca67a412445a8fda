"""An HTTP proxy in front of the paper bridge that misbehaves on order POSTs only.

The paper bridge's knobs act on every IB route alike, so with `error_rate=1` the executor fails
at its account read and never reaches the POST. This proxy lets a test aim a fault at the order
POST itself while the reads pass through untouched:

- "400": answer 400 `{"detail"}` without forwarding (a definite refusal, nothing placed);
- "500": answer 500 without forwarding (nothing placed);
- "503": answer the documented 503 "not connected" without forwarding (nothing placed);
- "late": forward after `delay` seconds (past the client's timeout: the order lands later);
- "html": forward, then answer an HTML page (placed, answer unreadable);
- "reset": forward, then close the connection without an answer (placed, answer lost);
- "500-after": forward, then answer 500 `{"detail"}` (placed, and the answer says it failed);
- "503-after": forward, then answer the documented 503 "not connected" (placed all the same);
- "502-html": forward, then answer 502 with a proxy's HTML page (placed);
- "id-0", "id-missing", "id-string": forward, then answer the bridge's 2xx with its order id
  rewritten to 0, removed, or turned into a string (placed; the answer names no usable id);
- "trickle": forward, then send the bridge's answer one byte every `delay` seconds (default 1).

By default a mode acts on order POSTs; `set(..., on="GET /orders")` aims it at one method and
path instead (e.g. the list read, `GET /account`); `count=n` aims it at the next n such requests
only, then lets everything through. `forwarded_at` lists the `time.monotonic()` at which each
order POST was passed on to the bridge. `closed_by_client` counts the answers the
client hung up on while they were being trickled, and `closed` is set at the first.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class _Handler(BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _forward(self, body: bytes | None) -> httpx.Response:
        if self.command == "POST" and self.path in ("/orders", "/orders/bracket"):
            with self.server.lock:
                self.server.forwarded_at.append(time.monotonic())
        return httpx.request(
            self.command,
            self.server.target + self.path,
            content=body,
            headers={"content-type": self.headers.get("content-type", "application/json")},
            timeout=30,
        )

    def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _aimed_at(self) -> bool:
        on = self.server.on
        if on is None:
            return self.command == "POST"
        method, _, path = on.partition(" ")
        return self.command == method and self.path.split("?")[0] == path

    def _rewritten(self, upstream: httpx.Response, mode: str) -> bytes:
        data = json.loads(upstream.content)
        key = "parent_order_id" if "parent_order_id" in data else "order_id"
        if mode == "id-0":
            data[key] = 0
        elif mode == "id-missing":
            del data[key]
        else:
            data[key] = str(data[key])
        return json.dumps(data).encode()

    def _trickle(self, upstream: httpx.Response) -> None:
        body = upstream.content
        head = (
            f"HTTP/1.1 {upstream.status_code} OK\r\n"
            f"content-type: {upstream.headers.get('content-type', 'application/json')}\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode()
        self.close_connection = True
        try:
            for i in range(len(head + body)):
                self.wfile.write((head + body)[i : i + 1])
                self.wfile.flush()
                time.sleep(self.server.delay or 1.0)
        except OSError:  # the client gave up and closed the connection
            with self.server.lock:
                self.server.closed_by_client += 1
            self.server.closed.set()

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        with self.server.lock:
            mode = self.server.mode if self._aimed_at() else None
            if mode is not None:
                self.server.hits += 1
                if self.server.left is not None:
                    self.server.left -= 1
                    if self.server.left <= 0:
                        self.server.mode, self.server.left = None, None
        if mode == "400":
            self._answer(400, b'{"detail": "Order rejected by the proxy"}')
            return
        if mode == "500":
            self._answer(500, b'{"detail": "Internal Server Error"}')
            return
        if mode == "503":
            self._answer(503, b'{"detail": "Not connected to IB Gateway"}')
            return
        if mode == "late":
            time.sleep(self.server.delay)
        upstream = self._forward(body)
        if mode == "html":
            self._answer(200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
            return
        if mode == "500-after":
            self._answer(500, b'{"detail": "Internal Server Error"}')
            return
        if mode == "503-after":
            self._answer(503, b'{"detail": "Not connected to IB Gateway"}')
            return
        if mode == "502-html":
            self._answer(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
            return
        if mode in ("id-0", "id-missing", "id-string"):
            self._answer(upstream.status_code, self._rewritten(upstream, mode))
            return
        if mode == "trickle":
            self._trickle(upstream)
            return
        if mode == "reset":
            self.close_connection = True
            self.connection.close()
            return
        self._answer(
            upstream.status_code,
            upstream.content,
            upstream.headers.get("content-type", "application/json"),
        )

    do_GET = _handle
    do_POST = _handle
    do_DELETE = _handle


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, target: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.target = target
        self.mode: str | None = None
        self.on: str | None = None
        self.delay = 0.0
        self.hits = 0
        self.closed_by_client = 0
        self.left: int | None = None
        self.forwarded_at: list[float] = []
        self.closed = threading.Event()
        self.lock = threading.Lock()


class BridgeProxy:
    def __init__(self, server: _ProxyServer) -> None:
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"

    def set(
        self, mode: str | None, delay: float = 0.0, *, on: str | None = None, count: int = 0
    ) -> None:
        """`on`: "METHOD /path" the mode acts on; None for the order POSTs. `count`: only the
        next `count` of them (0: until set again)."""
        with self._server.lock:
            self._server.mode = mode
            self._server.delay = delay
            self._server.on = on
            self._server.left = count or None

    @property
    def forwarded_at(self) -> list[float]:
        with self._server.lock:
            return list(self._server.forwarded_at)

    @property
    def hits(self) -> int:
        return self._server.hits

    @property
    def closed_by_client(self) -> int:
        return self._server.closed_by_client

    def wait_closed(self, timeout: float) -> bool:
        """Whether the client hung up on a trickled answer within `timeout` seconds."""
        return self._server.closed.wait(timeout)


@contextmanager
def bridge_proxy(target: str) -> Iterator[BridgeProxy]:
    server = _ProxyServer(target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield BridgeProxy(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
