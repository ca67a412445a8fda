"""The HTTP API as a child of the supervisor: Hypercorn in the service's task group."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from trade_executor.api.app import create_app
from trade_executor.config import Settings
from trade_executor.httpserve import bind, serve_asgi
from trade_executor.logging import get_logger

if TYPE_CHECKING:
    from trade_executor.service import ServiceState

log = get_logger("trade_executor.api")


async def serve_api(
    settings: Settings,
    state: ServiceState,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; `started` with the bound port once the socket listens."""
    sock = bind(settings.http_host, settings.http_port)
    port: int = sock.getsockname()[1]
    state.http_port = port
    log.info("api.listening", host=settings.http_host, port=port)
    task_status.started(port)
    await serve_asgi(create_app(settings, state), sock, anyio.sleep_forever)
