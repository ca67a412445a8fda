"""The paper bridge as the benchmark runs it: its own process, plus a counting middleware.

Run with the project's interpreter: `python bench/bridge.py --port 0 ...`; it prints
`PORT <n>` on stdout once it serves. On top of the paper bridge's API (unchanged) it serves:

- `GET /bench/stats`: requests counted by endpoint, and for `GET /orders/{id}` the requests per
  second and the gaps between successive polls of each order (since the last reset); the order
  list reads (`GET /orders`) are counted from the paper bridge's own request log
  (`GET /admin/requests`), not here;
- `POST /bench/reset-stats`;
- `POST /bench/seed` `{"count": n, "prefix": "SEED"}`: places n LMT orders straight into the book
  (fill_mode never keeps them working) and answers their ids and symbols;
- `GET /bench/wait/{symbol}?timeout=s`: waits until an order for that symbol has arrived and
  answers its `created_at` and `received_at` (a long poll: no busy loop on either side);
- `GET /bench/reads`: every `GET /account` and `GET /positions` since the bridge started, as
  `[path, start, end]` in wall-clock seconds (`time.time()`: request in, answer sent), so that
  the driver can place the executor's account snapshot on an approval's timeline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import time
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any, cast

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.typing import ASGIFramework
from hypercorn.utils import wrap_app
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trade_executor.broker import jsonnum
from trade_executor.domain.models import Action, OrderType
from trade_executor_dev.paper import Faults, PaperConfig, create_app
from trade_executor_dev.paper.app import PaperBridge


class Counting:
    """ASGI middleware: counts requests, notes order arrivals, serves /bench/*."""

    def __init__(self, app: ASGIApp, bridge: PaperBridge) -> None:
        self.app = app
        self.bridge = bridge
        self.counts: Counter[str] = Counter()
        self.polls_per_second: Counter[int] = Counter()
        self.last_poll: dict[int, float] = {}
        self.gaps: list[float] = []
        self.arrived: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.order_posts = 0
        self.order_waiters: list[tuple[int, asyncio.Event]] = []
        self.started = time.monotonic()
        self.reads: list[tuple[str, float, float]] = []

    def reset(self) -> None:
        self.counts.clear()
        self.polls_per_second.clear()
        self.last_poll.clear()
        self.gaps.clear()
        self.started = time.monotonic()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith("/bench/"):
            await self._bench(scope, receive, send)
            return
        now = time.monotonic()
        if path.startswith("/orders/") and path[8:].isdigit():
            key = f"{method} /orders/{{id}}"
            if method == "GET":
                order_id = int(path[8:])
                previous = self.last_poll.get(order_id)
                if previous is not None:
                    self.gaps.append(now - previous)
                self.last_poll[order_id] = now
                self.polls_per_second[int(now - self.started)] += 1
        else:
            key = f"{method} {path}"
        self.counts[key] += 1
        if method == "POST" and path in ("/orders", "/orders/bracket"):
            body = bytearray()

            async def tapped() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    body.extend(message.get("body", b""))
                return message

            await self.app(scope, tapped, send)
            try:
                parsed = json.loads(bytes(body))
            except ValueError:
                parsed = None
            # The executor's capability probe POSTs a JSON array (refused): no order.
            symbol = parsed.get("symbol") if isinstance(parsed, dict) else None
            if isinstance(symbol, str):
                self.arrived[symbol.upper()].set()
                self.order_posts += 1
            for target, event in self.order_waiters:
                if self.order_posts >= target:
                    event.set()
            return
        if method == "GET" and path in ("/account", "/positions"):
            start = time.time()
            await self.app(scope, receive, send)
            self.reads.append((path, start, time.time()))
            return
        await self.app(scope, receive, send)

    async def _bench(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        status, answer = 404, {"detail": "not found"}
        if path == "/bench/stats":
            status, answer = 200, self._stats()
        elif path == "/bench/reset-stats":
            self.reset()
            status, answer = 200, {"reset": True}
        elif path == "/bench/seed":
            body = await _read_body(receive)
            status, answer = 200, self._seed(int(body["count"]), str(body.get("prefix", "SEED")))
        elif path == "/bench/order-posts":
            # Waits until `count` order POSTs have been answered since the bridge started.
            query = _query(scope)
            event = asyncio.Event()
            waiter = (int(query.get("count", "0")), event)
            self.order_waiters.append(waiter)
            if self.order_posts >= waiter[0]:
                event.set()
            try:
                await asyncio.wait_for(event.wait(), float(query.get("timeout", "60")))
            except TimeoutError:
                pass
            finally:
                self.order_waiters.remove(waiter)
            status, answer = 200, {"order_posts": self.order_posts}
        elif path == "/bench/reads":
            status, answer = 200, {"reads": self.reads}
        elif path == "/bench/orders":
            prefix = _query(scope).get("prefix", "").upper()
            status, answer = 200, {"orders": self._orders_with(prefix)}
        elif path.startswith("/bench/wait/"):
            symbol = path[len("/bench/wait/") :].upper()
            timeout = float(_query(scope).get("timeout", "30"))
            try:
                await asyncio.wait_for(self.arrived[symbol].wait(), timeout)
            except TimeoutError:
                status, answer = 408, {"detail": f"no order for {symbol}"}
            else:
                status, answer = 200, self._order_of(symbol)
        payload = jsonnum.dumps(answer).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _orders_with(self, prefix: str) -> list[dict[str, Any]]:
        return [
            {
                "symbol": order.symbol,
                "order_id": order.order_id,
                "created_at": order.created_at.timestamp(),
                "received_at": order.received_at,
            }
            for order in self.bridge.broker.orders.values()
            if order.parent_id in (None, 0) and order.symbol.upper().startswith(prefix)
        ]

    def _order_of(self, symbol: str) -> dict[str, Any]:
        for order in reversed(self.bridge.broker.orders.values()):
            if order.symbol.upper() == symbol and order.parent_id in (None, 0):
                return {
                    "order_id": order.order_id,
                    "created_at": order.created_at.timestamp(),
                    "received_at": order.received_at,
                }
        return {"detail": "arrived but not in the book"}

    def _seed(self, count: int, prefix: str) -> dict[str, Any]:
        broker = self.bridge.broker
        broker.fill_mode = "never"
        orders = []
        for i in range(count):
            symbol = f"{prefix}{i:06d}"
            order = broker.place(
                symbol, Action.BUY, 1, OrderType.LMT, limit_price=Decimal(1), order_ref=symbol
            )
            orders.append([order.order_id, symbol])
        return {"orders": orders}

    def _stats(self) -> dict[str, Any]:
        return {
            "elapsed": time.monotonic() - self.started,
            "counts": dict(self.counts),
            "order_posts": self.order_posts,
            "polls_per_second": sorted(self.polls_per_second.items()),
            "polled_orders": len(self.last_poll),
            "gaps": self.gaps,
            "order_count": len(self.bridge.broker.orders),
        }


def _query(scope: Scope) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in scope["query_string"].decode().split("&") if part)
    return {key: value for key, value in pairs}


async def _read_body(receive: Receive) -> Any:
    body = bytearray()
    while True:
        message = await receive()
        body.extend(message.get("body", b""))
        if not message.get("more_body"):
            break
    return json.loads(bytes(body) or b"{}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--net-liquidation", default="1000000000000")
    parser.add_argument("--buying-power", default="1000000000000")
    parser.add_argument("--fill-mode", choices=["normal", "never"], default="never")
    parser.add_argument("--nagle", action="store_true", help="leave TCP_NODELAY off")
    parser.add_argument("--profile", choices=["ideal", "jax", "legacy"], default="ideal")
    parser.add_argument("--latency-scale", type=float, default=0.0, help="jax/legacy: 1 = real")
    parser.add_argument("--qualify-seconds", type=float, default=5.0)
    parser.add_argument("--request-log", type=int, default=20_000)
    args = parser.parse_args()
    nodelay = not args.nagle
    config = PaperConfig(
        seed=1,
        net_liquidation=Decimal(args.net_liquidation),
        buying_power=Decimal(args.buying_power),
        tick_interval=0.0,
        faults=Faults(
            fill_mode=args.fill_mode,
            latency_scale=args.latency_scale,
            qualify_seconds=args.qualify_seconds,
        ),
        profile=args.profile,
        request_log=args.request_log,
    )
    app = create_app(config)
    counting = Counting(cast(ASGIApp, app), app.state.bridge)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if nodelay:
        # Accepted connections inherit it (Linux): answers are not held back by Nagle's
        # algorithm waiting for the client's delayed ACK (40 ms) between head and body.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.setblocking(False)
    sock.listen(1024)
    hyper = Config()
    hyper.graceful_timeout = 1.0
    hyper.accesslog = None
    hyper.keep_alive_timeout = 600
    sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    wrapped = wrap_app(cast(ASGIFramework, counting), hyper.wsgi_max_body_size, "asgi")
    await worker_serve(wrapped, hyper, sockets=sockets, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    asyncio.run(main())
