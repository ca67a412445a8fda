"""Serving an ASGI app with Hypercorn on a socket we bind ourselves (so port 0 works and the
real port is known), on asyncio or trio, whichever runs the caller.

Every error answer is JSON (CONTRACT section 6), also those Hypercorn gives itself for a request
h11 cannot parse (an empty 400 otherwise), and a Content-Length of any size reaches the app, which
answers 413 for a body above its limit: h11 refuses one of more than 20 digits as malformed.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any, cast

import h11
import h11._headers
from hypercorn.config import Config, Sockets
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.typing import ASGIFramework
from hypercorn.utils import wrap_app

# Digits h11 accepts in a Content-Length: below Python's int-from-text limit (4300 digits), and the
# header line itself is bounded by h11's 16 KiB request head.
CONTENT_LENGTH_MAX_DIGITS = 4000
_PROTOCOL_ERRORS = {400: "bad request: the HTTP request could not be parsed"}


async def _send_json_error_response(self: H11Protocol, status_code: int) -> None:
    """Hypercorn's `_send_error_response` with a JSON body saying what went wrong."""
    message = _PROTOCOL_ERRORS.get(status_code, f"HTTP error {status_code}")
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *self.config.response_headers("h11"),
    ]
    await self._send_h11_event(h11.Response(status_code=status_code, headers=headers))
    await self._send_h11_event(h11.Data(data=body))
    await self._send_h11_event(h11.EndOfMessage())


def _json_protocol_errors() -> None:
    """Install the two changes of the module docstring (idempotent; both are process-wide, and
    every server of this process is ours)."""
    h11._headers.CONTENT_LENGTH_MAX_DIGITS = CONTENT_LENGTH_MAX_DIGITS
    H11Protocol._send_error_response = _send_json_error_response  # type: ignore[method-assign]


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without it, Nagle's algorithm holds a response's
        # body behind its headers until the client's delayed ACK (~40 ms a request).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.setblocking(False)
        sock.listen(512)
    except BaseException:
        sock.close()
        raise
    return sock


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def serve_asgi(
    app: Any,
    sock: socket.socket,
    shutdown_trigger: Callable[[], Awaitable[None]],
    *,
    graceful_timeout: float = 1.0,
) -> None:
    """Serve `app` on the bound `sock` until `shutdown_trigger()` returns; closes the socket."""
    _json_protocol_errors()
    hyper = Config()
    hyper.graceful_timeout = graceful_timeout
    hyper.accesslog = None
    hyper.errorlog = None
    sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
    # Starlette's ASGI types and Hypercorn's describe the same protocol but are not unifiable.
    wrapped = wrap_app(cast(ASGIFramework, app), hyper.wsgi_max_body_size, "asgi")
    try:
        if _on_asyncio():
            from hypercorn.asyncio.run import worker_serve as asyncio_serve

            await asyncio_serve(wrapped, hyper, sockets=sockets, shutdown_trigger=shutdown_trigger)
        else:
            from hypercorn.trio.run import worker_serve as trio_serve

            await trio_serve(wrapped, hyper, sockets=sockets, shutdown_trigger=shutdown_trigger)
    finally:
        sock.close()
