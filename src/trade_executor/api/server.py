"""The HTTP API as a child of the supervisor: Hypercorn in the service's task group."""

from __future__ import annotations

import anyio
from anyio.abc import TaskStatus

from trade_executor.api.app import create_app
from trade_executor.api.gateway import Gateway
from trade_executor.api.serving import bind, serve_asgi
from trade_executor.config.sources import Settings
from trade_executor.observability.logging import get_logger

log = get_logger("trade_executor.api")


async def serve_api(
    settings: Settings,
    gateway: Gateway,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; `started` with the bound port once the socket listens."""
    sock = bind(settings.http_host, settings.http_port)
    port: int = sock.getsockname()[1]
    log.info("api.listening", host=settings.http_host, port=port)
    task_status.started(port)
    # Hypercorn must be stopped through its shutdown trigger, never cancelled: cancelled with a
    # keep-alive connection open (a metrics scraper) it fails on the way out. So it runs
    # shielded, and our cancellation only pulls the trigger.
    stop = anyio.Event()

    async def serve() -> None:
        with anyio.CancelScope(shield=True):
            await serve_asgi(create_app(settings, gateway), sock, stop.wait)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        try:
            await anyio.sleep_forever()
        finally:
            stop.set()
