"""`trade-executor demo`: the whole pipeline with no setup, narrated on the terminal.

What it starts, in one process, and stops again before it returns:
- PostgreSQL: a throwaway server (`devdb.server`) when DATABASE_URL is unset, else that database
  (migrated; it must have no approvals waiting, since the demo's executor would take them up);
- the paper bridge, on an ephemeral loopback port, with its price ticker on so LMT orders fill;
- the real service (`Service`: listener, executor, pollers, HTTP API on an ephemeral port) with
  execution enabled against the paper bridge.

Then it inserts a few sample signals, approves them one at a time through `trade_approvals` (the
trigger and the listener do the rest, as in production) and follows each one in the
`executions` and `execution_events` tables (the executor's own ledger) until it settles, printing
each step. Then the trades run to their exits: the paper price of the long is moved to its
stop-loss and that of the short to its take-profit, and the service's exits record each exit
with its realized P&L and R multiple. The service's JSON logs go to a file, not the terminal. It
ends with a summary table and the exits.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import anyio
import asyncpg
import httpx
from anyio.abc import TaskStatus
from pydantic import SecretStr

from trade_executor.broker.jsonnum import dumps
from trade_executor.broker.paper import PaperConfig, serve
from trade_executor.config import Settings
from trade_executor.devdb.server import EmbeddedPostgresError, embedded_postgres
from trade_executor.domain.riskbook import RiskBook
from trade_executor.domain.sizing import RiskLimits
from trade_executor.domain.states import event_kind
from trade_executor.logging import configure_logging
from trade_executor.redact import redact_dsn
from trade_executor.service import Service
from trade_executor.store.migrate import migrate
from trade_executor.systemd import SystemdNotifier

EX_FAILURE = 1
SETTLE_TIMEOUT = 20.0  # seconds to follow one approval before moving on
START_TIMEOUT = 60.0
POLL = 0.05
REASON_WIDTH = 44  # the summary table's reason column (the full reason is printed above it)
FINAL_STATES = frozenset({"filled", "cancelled", "rejected", "failed", "dry_run", "unknown"})
AT_BROKER = ("submitted", "partially_filled", "filled")


@dataclass(frozen=True)
class Sample:
    case: str  # what this signal shows
    symbol: str
    side: str
    entry: str
    stop: str
    target: str
    expires_in: timedelta = timedelta(hours=1)


SAMPLES = (
    Sample("a long", "AAPL", "BUY", "150", "145", "160"),
    Sample("a short", "TSLA", "SELL", "250", "260", "230"),
    Sample("over the daily risk budget", "NVDA", "BUY", "120", "114", "135"),
    Sample("stop on the wrong side", "MSFT", "BUY", "400", "410", "420"),
    Sample("expires before approval", "AMZN", "BUY", "180", "175", "190", timedelta(seconds=1)),
)

INSERT_SIGNAL = """
INSERT INTO strategy_signals (id, symbol, strategy_id, signal_type, confidence, entry_price,
                              stop_loss, take_profit, reasoning, generated_at, expires_at)
VALUES ($1, $2, 'demo', $3, 0.8, $4::numeric, $5::numeric, $6::numeric, $7, now(), $8)
"""
APPROVE = """
INSERT INTO trade_approvals (id, signal_id, approved, approved_at, approved_by)
VALUES ($1, $2, true, now(), 'demo')
"""
WAITING_APPROVALS = """
SELECT count(*) FROM trade_approvals a
WHERE a.approved AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.signal_id = a.signal_id)
"""
EXECUTION = "SELECT * FROM executions WHERE signal_id = $1"
EVENTS_AFTER = """
SELECT id, kind, detail::text AS detail FROM execution_events
WHERE execution_id = $1 AND id > $2 ORDER BY id
"""
DAILY_RISK_USED = """
SELECT coalesce(sum(risk_amount), 0) FROM executions
WHERE trading_day = $1
  AND (state IN ('submitted', 'partially_filled', 'filled')
       OR (state = 'cancelled' AND filled_qty > 0))
"""


class DemoError(Exception):
    """The demo could not run; the message is one sentence for the terminal."""


class Terminal:
    """Progress lines, each stamped with the seconds since the demo started."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._started = time.monotonic()

    def line(self, text: str = "", *, stamp: bool = True) -> None:
        prefix = f"[{time.monotonic() - self._started:6.2f}s] " if stamp and text else ""
        print(prefix + text, file=self._out, flush=True)


@dataclass
class Outcome:
    sample: Sample
    signal_id: uuid.UUID
    row: dict[str, Any] | None = None
    exit: dict[str, Any] | None = None  # the execution once its position closed


def run_demo(settings: Settings, *, keep: bool = False, out: TextIO | None = None) -> int:
    """Run the demo; 0 when every sample signal was followed to its outcome."""
    terminal = Terminal(out or sys.stdout)
    workdir = Path(tempfile.mkdtemp(prefix="trade-executor-demo-"))
    log_path = workdir / "trade-executor.log"
    succeeded = False

    def clean_up() -> None:
        configure_logging(settings.log_format, settings.log_level)  # back off the closed file
        if keep or not succeeded:
            terminal.line(f"service logs (JSON lines): {log_path}", stamp=False)
        else:
            log_path.unlink(missing_ok=True)
            workdir.rmdir()

    with ExitStack() as stack:
        stack.callback(clean_up)
        log_file = stack.enter_context(log_path.open("a", encoding="utf-8"))
        configure_logging("json", "info", stream=log_file, secrets=settings.secret_values())
        terminal.line("trade-executor demo: signals -> approvals -> orders at a paper broker")
        try:
            if settings.database_url is None:
                try:
                    server = stack.enter_context(embedded_postgres(keep=keep))
                except EmbeddedPostgresError as error:
                    raise DemoError(str(error)) from None
                dsn, fresh = server.url, True
                terminal.line(
                    f"PostgreSQL {server.version}: a throwaway server in {server.directory} "
                    f"(binaries: {server.bindir})"
                )
            else:
                dsn, fresh = settings.dsn(), False
                terminal.line(f"PostgreSQL: DATABASE_URL {redact_dsn(dsn)}")
            code = asyncio.run(_demo(settings, dsn, fresh, terminal))
        except DemoError as error:
            terminal.line(f"demo failed: {error}", stamp=False)
            return EX_FAILURE
        succeeded = code == 0
        return code


def demo_settings(settings: Settings, dsn: str, bridge_url: str) -> Settings:
    """The user's settings with what the demo needs: its database and bridge, execution on,
    quick polling, the HTTP API on an ephemeral loopback port."""
    return settings.model_copy(
        update={
            "database_url": SecretStr(dsn),
            "database_password": None,  # already merged into `dsn`
            "ib_bridge_url": bridge_url,
            "execution_enabled": True,
            "http_host": "127.0.0.1",
            "http_port": 0,
            "order_poll_interval": 0.2,
            "order_poll_timeout": 30.0,
            "sweep_interval": 1.0,
            "listener_health_interval": 1.0,
            "cancelled_recheck_delay": 0.2,
            "shutdown_grace": 5.0,
        }
    )


async def _serve_bridge(
    stop: anyio.Event, *, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED
) -> None:
    def ready(port: int) -> None:
        task_status.started(f"http://127.0.0.1:{port}")

    # A new symbol's price starts at its first order's price; the ticker then moves it every
    # 50 ms, so a LMT entry fills at the first tick that crosses it.
    config = PaperConfig(seed=1, tick_interval=0.05)
    # The paper bridge's Hypercorn logs "Running on ..." to stderr; the service's own HTTP API
    # turns that log off (httpserve.py), and the demo keeps the terminal for its narrative.
    logging.getLogger("hypercorn.error").disabled = True
    await serve(config, "127.0.0.1", 0, ready=ready, shutdown_trigger=stop.wait)


async def _demo(settings: Settings, dsn: str, fresh: bool, terminal: Terminal) -> int:
    await migrate(dsn)
    if not fresh:
        conn = await asyncpg.connect(dsn)
        try:
            waiting = await conn.fetchval(WAITING_APPROVALS)
        finally:
            await conn.close()
        if waiting:
            raise DemoError(
                f"the database has {waiting} approved signal(s) not yet executed, which the "
                "demo's executor would take up against the paper bridge: use an empty database"
            )
    stop_bridge = anyio.Event()
    async with anyio.create_task_group() as tg:
        bridge_url: str = await tg.start(_serve_bridge, stop_bridge)
        terminal.line(f"paper bridge: {bridge_url} (net liquidation 100000, LMT orders fill)")
        config = demo_settings(settings, dsn, bridge_url)
        service = Service(config, notifier=SystemdNotifier(None))
        stopped = anyio.Event()
        exit_codes: list[int] = []
        story = anyio.CancelScope()

        async def run_service() -> None:
            try:
                exit_codes.append(await service.run())
            finally:
                stopped.set()
                story.cancel()  # the service stopped on its own (Ctrl-C, or it failed)

        tg.start_soon(run_service)
        outcomes: list[Outcome] = []
        with story:
            await _wait_active(service, terminal)
            outcomes = await _story(config, dsn, terminal)
            await _exits(dsn, bridge_url, outcomes, terminal)
        service.request_stop()
        await stopped.wait()
        stop_bridge.set()
    if story.cancelled_caught:
        terminal.line(f"the service stopped early (exit code {exit_codes[0]})")
        return exit_codes[0] or 130
    terminal.line("service stopped", stamp=True)
    terminal.line(stamp=False)
    for line in summary_table(outcomes):
        terminal.line(line, stamp=False)
    exits = exits_table(outcomes)
    if exits:
        terminal.line(stamp=False)
        for line in exits:
            terminal.line(line, stamp=False)
    return 0 if exit_codes == [0] and all(o.row is not None for o in outcomes) else EX_FAILURE


async def _wait_active(service: Service, terminal: Terminal) -> None:
    with anyio.fail_after(START_TIMEOUT):
        while service.role != "active":  # noqa: ASYNC110 - the service has no event
            await anyio.sleep(POLL)
    terminal.line(
        f"service active: listener, executor, pollers; HTTP API on 127.0.0.1:{service.http_port}"
    )


async def _story(settings: Settings, dsn: str, terminal: Terminal) -> list[Outcome]:
    conn = await asyncpg.connect(dsn)
    try:
        outcomes = []
        for sample in SAMPLES:
            signal_id = uuid.uuid4()
            expires_at = datetime.now(UTC) + sample.expires_in
            await conn.execute(
                INSERT_SIGNAL,
                signal_id,
                sample.symbol,
                sample.side,
                Decimal(sample.entry),
                Decimal(sample.stop),
                Decimal(sample.target),
                f"demo: {sample.case}",
                expires_at,
            )
            outcomes.append(Outcome(sample, signal_id))
        terminal.line(f"inserted {len(SAMPLES)} sample signals into strategy_signals")
        day = RiskBook(RiskLimits.from_settings(settings), settings.timezone).trading_day(
            datetime.now(UTC)
        )
        for number, outcome in enumerate(outcomes, 1):
            sample = outcome.sample
            if sample.expires_in < timedelta(minutes=1):
                # Approve only once it has expired: a slow approver, as it happens.
                deadline = time.monotonic() + sample.expires_in.total_seconds() + 0.2
                await anyio.sleep(max(0.0, deadline - time.monotonic()))
            terminal.line(stamp=False)
            terminal.line(
                f"approval {number}/{len(outcomes)}: {sample.side} {sample.symbol} "
                f"entry {sample.entry} stop {sample.stop} target {sample.target} "
                f"({sample.case})"
            )
            approval_id = uuid.uuid4()
            await conn.execute(APPROVE, approval_id, outcome.signal_id)
            terminal.line(f"  approved: trade_approvals {_short(approval_id)} (NOTIFY sent)")
            outcome.row = await _follow(conn, outcome.signal_id, terminal)
            if outcome.row is not None and outcome.row["state"] in AT_BROKER:
                used = await conn.fetchval(DAILY_RISK_USED, day)
                terminal.line(
                    f"  daily risk budget: {used:.2f} used of {settings.max_daily_loss:.2f}"
                )
        return outcomes
    finally:
        await conn.close()


async def _exits(dsn: str, bridge_url: str, outcomes: list[Outcome], terminal: Terminal) -> None:
    """Each filled trade to its exit: the long's price moved to its stop-loss, the short's to its
    take-profit (unless the ticker got there first); the exits record P&L and R."""
    filled = [o for o in outcomes if o.row is not None and o.row["state"] == "filled"]
    if not filled:
        return
    terminal.line(stamp=False)
    terminal.line("exits: each position's stop-loss and take-profit are followed after its fill")
    conn = await asyncpg.connect(dsn)
    try:
        async with httpx.AsyncClient(base_url=bridge_url, timeout=5) as bridge:
            for outcome in filled:
                row = await conn.fetchrow(EXECUTION, outcome.signal_id)
                if row is None:
                    continue
                if row["position_state"] == "open":
                    long = row["action"] == "BUY"
                    price, which = (
                        (row["stop_loss"], "stop-loss") if long else (row["take_profit"], "target")
                    )
                    terminal.line(
                        f"  {row['symbol']}: the price moves to {_money(price)} (its {which})"
                    )
                    body = dumps({"symbol": row["symbol"], "price": price}).encode()
                    await bridge.post("/admin/price", content=body)
                closed = await _wait_closed(conn, outcome.signal_id)
                if closed is None:
                    terminal.line(f"  {row['symbol']}: still open after {SETTLE_TIMEOUT:.0f}s")
                    continue
                outcome.exit = closed
                terminal.line(
                    f"  {closed['symbol']}: position closed by {closed['exit_reason']}: "
                    f"{closed['exit_qty']} @ {_money(closed['exit_avg_price'])}, realized P&L "
                    f"{_money(closed['realized_pnl'])} ({_r(closed['r_multiple'])})"
                )
        total = sum((o.exit["realized_pnl"] for o in outcomes if o.exit), Decimal(0))
        terminal.line(f"  realized P&L today: {_money(total)}")
    finally:
        await conn.close()


async def _wait_closed(conn: asyncpg.Connection, signal_id: uuid.UUID) -> dict[str, Any] | None:
    with anyio.move_on_after(SETTLE_TIMEOUT):
        while True:
            row = await conn.fetchrow(EXECUTION, signal_id)
            if row is not None and row["position_state"] == "closed":
                return dict(row)
            await anyio.sleep(POLL)
    return None


def exits_table(outcomes: list[Outcome]) -> list[str]:
    """The trades that reached their exit: how, at what price, and what they made."""
    headers = ("exit", "symbol", "side", "qty", "entry", "exit price", "realized P&L", "R")
    rows = [headers]
    for outcome in outcomes:
        row = outcome.exit
        if row is None:
            continue
        rows.append(
            (
                str(row["exit_reason"]),
                str(row["symbol"]),
                str(row["action"]),
                str(row["exit_qty"]),
                _money(row["avg_fill_price"]),
                _money(row["exit_avg_price"]),
                _money(row["realized_pnl"]),
                _r(row["r_multiple"]),
            )
        )
    if len(rows) == 1:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]

    def render(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [render(rows[0]), rule, *(render(r) for r in rows[1:])]


def _r(value: Any) -> str:
    return "? R" if value is None else f"{Decimal(str(value)):+.2f} R"


async def _follow(
    conn: asyncpg.Connection, signal_id: uuid.UUID, terminal: Terminal
) -> dict[str, Any] | None:
    """Print each event of the signal's execution until it settles (a final state, or an order
    whose entry has filled); the execution row at the end, or None if none appeared."""
    last_event = 0
    row: asyncpg.Record | None = None
    with anyio.move_on_after(SETTLE_TIMEOUT):
        while True:
            row = await conn.fetchrow(EXECUTION, signal_id)
            if row is not None:
                # Final before the events are read: the events then include the final one.
                settled = row["state"] in FINAL_STATES
                events = await conn.fetch(EVENTS_AFTER, row["id"], last_event)
                # Read after the events: at least as new as each of them (a fill's line needs
                # the fill, which commits with its event).
                row = await conn.fetchrow(EXECUTION, signal_id)
                assert row is not None
                for event in events:
                    last_event = event["id"]
                    text = describe_event(event["kind"], _json(event["detail"]), dict(row))
                    if text:
                        terminal.line("  " + text)
                if last_event and settled:
                    break
            await anyio.sleep(POLL)
    if row is None:
        terminal.line(f"  no execution after {SETTLE_TIMEOUT:.0f}s")
        return None
    if row["state"] not in FINAL_STATES:
        terminal.line(f"  still {row['state']} after {SETTLE_TIMEOUT:.0f}s: moving on")
    return dict(row)


def _json(text: str) -> dict[str, Any]:
    import json

    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def describe_event(kind: str, detail: dict[str, Any], row: dict[str, Any]) -> str:
    """One human line for an execution_events row (`row`: the execution as it is now)."""
    order_id = detail.get("order_id") or row.get("order_id")
    match event_kind(kind):
        case "execution.claimed":
            return f"claimed by the executor: execution {_short(row['id'])}"
        case "order.submitting":
            binding = str(detail.get("binding", "?")).replace("_", " ")
            return (
                f"risk gates passed; sized {detail.get('quantity')} shares, risk "
                f"{_money(detail.get('risk_amount'))}, position value "
                f"{_money(detail.get('position_value'))} (bound by {binding})"
            )
        case "order.submitted" | "order.adopted":
            children = detail.get("child_order_ids") or []
            kids = f" + stop-loss/take-profit {', '.join(map(str, children))}" if children else ""
            verb = "placed" if kind == "order.submitted" else "adopted"
            return (
                f"order {order_id} {verb}: {row.get('action')} {row.get('quantity')} "
                f"{row.get('symbol')} {row.get('order_type')} @ "
                f"{_money(row.get('entry_price'))}{kids}"
            )
        case "order.progress" | "order.partially_filled":
            status = detail.get("broker_status", row.get("broker_status"))
            return f"order {row.get('order_id')}: {status}, filled {_fill(row)}"
        case "order.filled":
            return f"order {row.get('order_id')} filled: {_fill(row)}"
        case "order.cancelled":
            return f"order {row.get('order_id')} cancelled ({row.get('reason')}): {_fill(row)}"
        case "execution.rejected":
            return f"rejected: {row.get('reason')}"
        case "execution.failed":
            return f"failed: {row.get('reason')}"
        case "execution.dry_run":
            return "dry run: sized and recorded, not sent"
        case "order.unknown":
            return f"UNKNOWN at the broker: {row.get('reason')} (needs `trade-executor resolve`)"
        case _:
            return kind


def summary_table(outcomes: list[Outcome]) -> list[str]:
    headers = ("case", "signal", "symbol", "side", "state", "reason", "qty", "order", "filled")
    rows = [headers]
    for outcome in outcomes:
        row = outcome.row or {}
        rows.append(
            (
                outcome.sample.case,
                _short(outcome.signal_id),
                outcome.sample.symbol,
                outcome.sample.side,
                str(row.get("state", "(none)")),
                _clip(str(row.get("reason") or "-"), REASON_WIDTH),
                str(row.get("quantity") or "-"),
                str(row.get("order_id") or "-"),
                _fill(row) if row.get("quantity") else "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]

    def render(cells: tuple[str, ...]) -> str:
        line = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return line.rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [render(rows[0]), rule, *(render(r) for r in rows[1:])]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _fill(row: dict[str, Any]) -> str:
    filled, quantity = row.get("filled_qty") or 0, row.get("quantity") or 0
    price = row.get("avg_fill_price")
    at = f" @ {_money(price)}" if filled and price is not None else ""
    return f"{filled}/{quantity}{at}"


def _money(value: Any) -> str:
    if value is None:
        return "?"
    try:
        return f"{Decimal(str(value)):,.2f}"
    except ArithmeticError:
        return str(value)


def _short(value: uuid.UUID | str) -> str:
    return str(value)[:8]
