"""The request log: every IB API request the paper bridge received, for tests (`/admin/requests`).

Tests count requests with it (one list read per interval, exactly one POST for a lost answer) and
check pacing at the bridge's side (no one-second window above the limit), so an entry is stamped
when the request arrives, before any latency the bridge adds, with `time.monotonic()` and the wall
clock. Admin requests (`/admin/...`) are not logged. The log is bounded: past `limit` entries the
oldest are dropped and counted.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trade_executor.broker import jsonnum
from trade_executor.clock import utcnow


@dataclass(slots=True)
class LoggedRequest:
    method: str
    path: str
    received_at: float  # time.monotonic() on arrival
    received_wall: datetime
    status: int | None = None  # None until the answer starts (or if it never does)
    answered_at: float | None = None
    raw_body: bytes = b""

    def as_json(self) -> dict[str, object]:
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "received_at": self.received_at,
            "received_wall": jsonnum.rfc3339(self.received_wall),
            "answered_at": self.answered_at,
            "body": _body(self.raw_body),
        }


def _body(raw: bytes) -> object:
    """The body as JSON if it parses (numbers exact), else as text; None when empty."""
    if not raw:
        return None
    try:
        parsed: Any = json.loads(raw, parse_float=Decimal)
    except ValueError:
        return raw.decode("utf-8", errors="replace")
    return parsed


class RequestLog:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.entries: deque[LoggedRequest] = deque(maxlen=limit)
        self.dropped = 0

    def add(self, entry: LoggedRequest) -> None:
        if len(self.entries) == self.limit:
            self.dropped += 1
        self.entries.append(entry)

    def clear(self) -> None:
        self.entries.clear()
        self.dropped = 0


class RequestLogMiddleware:
    """ASGI middleware recording method, path, body, arrival and answer of every non-admin
    HTTP request, including those no route serves (a legacy bridge's 404s and 405s)."""

    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/admin") or self.log.limit == 0:
            await self.app(scope, receive, send)
            return
        entry = LoggedRequest(
            method=scope["method"],
            path=path,
            received_at=time.monotonic(),
            received_wall=utcnow(),
        )
        self.log.add(entry)

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                entry.raw_body += message.get("body", b"")
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = int(message["status"])
                entry.answered_at = time.monotonic()
            await send(message)

        await self.app(scope, receiving, sending)
