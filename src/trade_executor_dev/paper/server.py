"""Serving the paper bridge with Hypercorn, on asyncio or trio (whichever runs the caller)."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import anyio

from trade_executor.api.serving import bind, serve_asgi

from .app import create_app
from .config import PaperConfig


async def _until_signalled() -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


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
    sock = bind(host, port)
    bound_port: int = sock.getsockname()[1]
    app = create_app(config, on_startup=None if ready is None else lambda: ready(bound_port))
    await serve_asgi(
        app, sock, shutdown_trigger or _until_signalled, graceful_timeout=graceful_timeout
    )
