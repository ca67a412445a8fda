"""Serving the paper bridge with Hypercorn, on asyncio or trio (whichever runs the caller)."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import cast

import anyio
from hypercorn.config import Config, Sockets
from hypercorn.typing import ASGIFramework
from hypercorn.utils import wrap_app

from .app import create_app
from .config import PaperConfig


def _listen(host: str, port: int) -> socket.socket:
    """Bind ourselves so that port 0 works and the real port is known before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


async def _until_signalled() -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def serve(
    config: PaperConfig,
    host: str = "127.0.0.1",
    port: int = 8092,
    *,
    ready: Callable[[int], None] | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    graceful_timeout: float = 1.0,
) -> None:
    """Serve until `shutdown_trigger()` returns (default: SIGINT or SIGTERM).

    `ready(port)` is called with the bound port (useful with port 0) once the app has started.
    """
    sock = _listen(host, port)
    bound_port: int = sock.getsockname()[1]
    app = create_app(config, on_startup=None if ready is None else lambda: ready(bound_port))
    hyper = Config()
    hyper.graceful_timeout = graceful_timeout
    hyper.accesslog = None
    sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
    trigger = shutdown_trigger or _until_signalled
    # Starlette's ASGI types and Hypercorn's describe the same protocol but are not unifiable.
    wrapped = wrap_app(cast(ASGIFramework, app), hyper.wsgi_max_body_size, "asgi")
    try:
        if _on_asyncio():
            from hypercorn.asyncio.run import worker_serve as asyncio_serve

            await asyncio_serve(wrapped, hyper, sockets=sockets, shutdown_trigger=trigger)
        else:
            from hypercorn.trio.run import worker_serve as trio_serve

            await trio_serve(wrapped, hyper, sockets=sockets, shutdown_trigger=trigger)
    finally:
        sock.close()
