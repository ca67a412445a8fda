"""The paper bridge's run-time state and the pieces every profile's handlers share."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from trade_executor.broker import jsonnum

from .config import Faults, PaperConfig
from .exchange import DAY, GTC, PaperBroker, PaperOrder
from .requestlog import RequestLog

NOT_CONNECTED = "Not connected to IB Gateway"


class JSON(Response):
    """JSON whose Decimals go out as exact numbers (and floats as `repr`)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return jsonnum.dumps(content).encode()


class DroppedResponse(Response):
    """Sends a status line promising a body, then nothing: the server must close the connection.

    (Hypercorn answers 500 for an app that fails before responding, so a response that starts and
    never finishes is the closest an ASGI app gets to dropping the connection.)
    """

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})


class Refusal(Exception):
    """Answer `status` with `{"detail": detail}` (a text, or FastAPI's list of errors)."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


class PaperBridge:
    """The app's state: the brokerage, the fault knobs and the fault dice, the request log and
    what the simulated IB session knows (unknown symbols, paper or live)."""

    def __init__(self, config: PaperConfig) -> None:
        self.config = config
        self.profile = config.profile
        self.broker = PaperBroker(config)
        self.requests = RequestLog(config.request_log)
        self.monotonic = time.monotonic
        self.reset()

    def reset(self) -> None:
        self.faults = self.config.faults.model_copy()
        self._dice = random.Random(self.config.seed)
        self.broker.reset()
        # The real bridge sends no time in force, so IB's default (DAY) applies to every order.
        self.broker.default_tif = GTC if self.profile == "ideal" else DAY
        self.paper_trading = self.config.paper_trading
        self.unknown_symbols = {s.upper() for s in self.config.unknown_symbols}
        self.requests.clear()
        self.reconnect()

    # ---- the IB connection (1100 lost / 1102 restored, data kept) ----------------------------

    def disconnect(self, seconds: float | None = None) -> None:
        """IB's connectivity is lost (error 1100): for `seconds`, or until `reconnect`."""
        self._disconnected_until = math.inf if seconds is None else self.monotonic() + seconds

    def reconnect(self) -> None:
        """Connectivity restored with data kept (error 1102): the same session goes on."""
        self._disconnected_until = 0.0

    @property
    def connected(self) -> bool:
        return self.monotonic() >= self._disconnected_until

    def disconnected_for(self) -> float | None:
        """Seconds until the connection comes back by itself (None: until `reconnect`; 0:
        connected)."""
        if self._disconnected_until == math.inf:
            return None
        return max(0.0, self._disconnected_until - self.monotonic())

    def set_faults(self, changes: dict[str, Any]) -> None:
        self.faults = Faults.model_validate({**self.faults.model_dump(), **changes})
        self.broker.fill_mode = self.faults.fill_mode
        self.broker.fill_slice = self.faults.partial_fill_qty

    def roll(self, rate: float) -> bool:
        # Rates of 0 consume no randomness, so fault-free runs stay reproducible.
        return rate > 0 and self._dice.random() < rate

    def maybe_phantom(self, order: PaperOrder) -> None:
        """With probability `cancelled_before_fill`, its first reads will say `Cancelled`."""
        if self.roll(self.faults.cancelled_before_fill):
            order.phantom_reads = self.faults.cancelled_reads

    async def ib_sleep(self, seconds: float) -> None:
        """One of the real bridge's own waits, scaled by `latency_scale` (0: none)."""
        scaled = seconds * self.faults.latency_scale
        if scaled > 0:
            await anyio.sleep(scaled)


Handler = Callable[[Request, PaperBridge], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
