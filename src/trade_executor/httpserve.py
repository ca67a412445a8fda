"""Serving an ASGI app with Hypercorn on a socket we bind ourselves (so port 0 works and the
real port is known), on asyncio or trio, whichever runs the caller."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any, cast

from hypercorn.config import Config, Sockets
from hypercorn.typing import ASGIFramework
from hypercorn.utils import wrap_app


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
