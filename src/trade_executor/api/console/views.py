"""What the console's pages show, read on each request (and each refresh) from the same typed
operations the command line uses: `ops.status.collect_view` (the state, the service's own
limits, today's risk and P&L, breaks, in flight, needing an operator), `lookup.load` (one
execution's trail), and the adapters for what other work builds (`adapters`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import anyio

from trade_executor.api.console import adapters
from trade_executor.api.console.chart import Close, pnl_chart
from trade_executor.api.gateway import Gateway
from trade_executor.config import Settings
from trade_executor.domain.execution import Execution
from trade_executor.domain.settlement import price_unknown
from trade_executor.domain.states import event_kind
from trade_executor.lookup import IdPattern, load, plain
from trade_executor.ops.status import collect_view
from trade_executor.startup import operating_mode
from trade_executor.store.postgres import PgStore
from trade_executor.store.protocol import StoredEvent

BRIDGE_CHECK_TIMEOUT = 2.0


class NotReady(Exception):
    """The console cannot read yet (no database connected); one sentence."""


def operator_store(gateway: Gateway) -> PgStore:
    """The service's pool, seen as the command line sees the database: a store of its own,
    never fenced (an operator's halt or resolve is not a leader's write)."""
    store = gateway.store
    if store is None:
        raise NotReady(
            f"not ready: this instance is {gateway.facts().role}, database not connected"
        )
    if not isinstance(store, PgStore):
        raise NotReady("the console needs the PostgreSQL store")
    return PgStore(store.pool)


@dataclass(frozen=True, slots=True)
class PositionRow:
    symbol: str
    broker_qty: int | None  # None: the bridge could not say
    ledger_qty: int
    agrees: bool | None
    avg_cost: Decimal | None
    market_price: Decimal | None
    unrealized_pnl: Decimal | None
    protection: str
    stop_loss: Decimal | None
    take_profit: Decimal | None
    executions: list[str]


def _signed(e: dict[str, Any]) -> int:
    quantity = int(e["quantity"] or 0)
    return -quantity if e["side"] == "SELL" else quantity


def position_rows(ledger: list[dict[str, Any]], broker: list[Any] | None) -> list[PositionRow]:
    """One row per symbol held by the ledger or the broker: the broker's quantity beside the
    ledger's (signed: short is negative), so a disagreement is seen at a glance."""
    by_symbol: dict[str, list[dict[str, Any]]] = {}
    for p in ledger:
        by_symbol.setdefault(p["symbol"] or "?", []).append(p)
    held = {p.symbol.strip().upper(): p for p in broker or []}
    rows = []
    for symbol in sorted(set(by_symbol) | set(held)):
        mine = by_symbol.get(symbol, [])
        theirs = held.get(symbol)
        ledger_qty = sum(_signed(p) for p in mine)
        broker_qty = None if broker is None else (theirs.quantity if theirs else 0)
        unrealized = None
        if theirs is not None:
            unrealized = theirs.unrealized_pnl
            if unrealized is None and theirs.market_price is not None:
                unrealized = (theirs.market_price - theirs.avg_cost) * theirs.quantity
        protections = sorted({p["protection"] for p in mine}) or ["not in the ledger"]
        rows.append(
            PositionRow(
                symbol=symbol,
                broker_qty=broker_qty,
                ledger_qty=ledger_qty,
                agrees=None if broker_qty is None else broker_qty == ledger_qty,
                avg_cost=theirs.avg_cost
                if theirs
                else (mine[0]["avg_fill_price"] if mine else None),
                market_price=theirs.market_price if theirs else None,
                unrealized_pnl=unrealized,
                protection=", ".join(protections),
                stop_loss=mine[0]["stop_loss"] if len(mine) == 1 else None,
                take_profit=mine[0]["take_profit"] if len(mine) == 1 else None,
                executions=[p["execution_id"] for p in mine],
            )
        )
    return rows


def _closed_today(positions: list[Execution], day_start: datetime) -> list[Execution]:
    return sorted(
        (
            e
            for e in positions
            if e.position_state == "closed" and e.closed_at is not None and e.closed_at >= day_start
        ),
        key=lambda e: e.closed_at or day_start,
    )


async def _bridge_up(gateway: Gateway) -> tuple[bool, str | None]:
    try:
        with anyio.fail_after(BRIDGE_CHECK_TIMEOUT):
            await gateway.check_bridge()
    except Exception as error:  # any failure: the bridge is not known to be up
        return False, str(error) or type(error).__name__
    return True, None


async def overview(settings: Settings, gateway: Gateway) -> dict[str, Any]:
    """Everything the console's main page shows."""
    store = operator_store(gateway)
    view = await collect_view(store, settings, read_bridge=False)
    zone = ZoneInfo(view["trading_day_timezone"])
    day = datetime.fromisoformat(view["trading_day"]).date()
    day_start = datetime.combine(day, time(0), tzinfo=zone)
    now: datetime = view["as_of"]
    closed = _closed_today(await store.positions_to_follow(day_start), day_start)
    bridge_url = view["positions"]["bridge_url"]
    broker, broker_error = await adapters.broker_positions(bridge_url)
    up, bridge_problem = await _bridge_up(gateway)
    facts = gateway.facts()
    enabled = view["execution_enabled"]
    mode = operating_mode(
        settings.execution_enabled if enabled is None else enabled,
        "paper" if facts.account == "paper" else "live" if facts.account == "live" else None,
        settings.allow_live_trading,
    )
    limits = view["limits"] or {}
    realized_limit = limits.get("max_daily_realized_loss")
    return {
        "view": view,
        "now": now,
        "zone": zone,
        "this_instance": facts.role,
        "mode": mode,
        "market": adapters.market_state(view),
        "bridge_up": up,
        "bridge_problem": bridge_problem,
        "positions": position_rows(view["positions"]["ledger"], broker),
        "broker_error": broker_error,
        "closed": closed,
        "realized_limit": realized_limit if realized_limit else None,
        "chart": pnl_chart(
            [
                Close(e.closed_at, e.symbol or "?", e.realized_pnl or Decimal(0))
                for e in closed
                if e.closed_at
            ],
            now,
            zone,
        ),
        "strategies": await adapters.strategy_table(store, closed),
        "token_set": bool(settings.api_token and settings.api_token.get_secret_value()),
    }


def _detail(value: Any) -> str:
    value = plain(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_detail(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_detail(v) for v in value) + "]"
    return "null" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class EventRow:
    at: datetime
    kind: str
    detail: list[tuple[str, str]]


def event_rows(events: list[StoredEvent]) -> list[EventRow]:
    return [
        EventRow(e.at, event_kind(e.kind), [(k, _detail(v)) for k, v in e.detail.items()])
        for e in events
    ]


async def execution_page(
    settings: Settings, gateway: Gateway, pattern: IdPattern
) -> dict[str, Any]:
    """One execution, its whole event trail, and whether it needs an operator now (raises
    lookup's errors for an unknown or ambiguous id)."""
    store = operator_store(gateway)
    execution, events = await load(store, pattern)
    view = await collect_view(store, settings, read_bridge=False)
    need = [n for n in view["needing_operator"] if n["execution_id"] == str(execution.id)]
    return {
        "e": execution,
        "events": event_rows(events),
        "why": need[0]["why"] if need else None,
        "open_position": execution.position_state in ("open", "unprotected"),
        "price_unknown": price_unknown(execution),
        "token_set": bool(settings.api_token and settings.api_token.get_secret_value()),
    }
