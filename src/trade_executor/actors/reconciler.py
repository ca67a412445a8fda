"""Reconciliation with the broker (CONTRACT section 5): every RECONCILE_INTERVAL the broker's
positions and orders are compared with the ledger.

Breaks (`domain.breaks.BreakKind`):
- `unexplained_position`: the broker holds a quantity of a symbol that the ledger's executions
  cannot add up to (an orphan: a manual trade, the original service's order);
- `missing_position`: the ledger holds shares of a symbol (a filled entry not known closed) and
  the broker has no position in it;
- `unprotected_position` (ORDER_PROTECTION=bracket): a position the ledger explains with no
  working stop at the broker (the bracket's DAY children expired at the close, or were cancelled);
- `fill_after_cancel`: an entry the ledger recorded `cancelled` that the broker lists with more
  fills (IB's error 10349). This one is corrected: the fills are posted to the executor
  (`FillsFound`), which records them; the reconciler never writes the ledger itself.

Each new break is logged `reconcile.break` (error, with its kind and ids) and counted in
`trade_executor_reconcile_breaks_total{kind}` once, then reminded at most every 15 minutes
(`actors.break_report`); every pass's breaks are stored (`Store.record_breaks`, table
`trade_executor_reconcile_breaks`) so that `status` lists it and /health reports degraded until a
pass no longer finds it. The reconciler only reads from the bridge: it never places, cancels or
changes an order.

How the ledger "explains" a position: each execution contributes the shares its entry filled,
signed by its side, as the broker's order list shows them (the ledger's own count where the list
does not show the order), minus what its bracket children the list shows filled (the recorded
exit where they are not listed, e.g. a previous bridge session's), nothing once its position is
`closed`. An entry in flight that the list does not show by id (`submitting`, `unknown`, a
previous session's order) may hold anything from its recorded fills to its quantity: a range.
A broker position outside the sum of its symbol's ranges is a break. Reads race with fills (the
list is read before the positions), so a pass that finds anything reads everything again after
`confirm_delay` and reports only what both reads found.

Positions follow the broker (v3, `domain.settlement`): a confirmed break where the broker holds
less of a symbol than its one open ledger position (a stop that filled while the bridge was
down, a restart with another client id) is settled: the position's exit is written
(Transition.POSITION, through the store like every exit) and reported to the executor
(`PositionExited`, so MAX_DAILY_REALIZED_LOSS counts it). Nothing is concluded from a read
taken while the bridge's /health says it is not connected to IB, and a positions answer with
nothing in it settles only once the pass before saw the same shortfall from a connected
bridge (IB's reset windows and a gateway restart answer empty for a while): a ledger position
is settled within two RECONCILE_INTERVALs of the broker going flat. The reconciler still never
places, cancels or changes an order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anyio
from anyio.abc import TaskStatus

from trade_executor.actors.break_report import BreakReport
from trade_executor.actors.messages import FillsFound, Message, PositionExited
from trade_executor.broker.errors import BrokerError, BrokerUnavailable
from trade_executor.broker.protocol import Broker
from trade_executor.config import Settings
from trade_executor.domain.breaks import BreakKind, ReconcileBreak
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import Action, BrokerOrder, BrokerStatus, Position
from trade_executor.domain.settlement import Settlement, settle
from trade_executor.domain.states import ExecutionState, IllegalTransition, Transition
from trade_executor.logging import clear_repeated, get_logger, log_repeated
from trade_executor.metrics import Metrics
from trade_executor.store.errors import StoreError
from trade_executor.store.protocol import Store

log = get_logger("trade_executor.reconciler")

S = ExecutionState
CONFIRM_DELAY = 2.0

# Entries whose order may still fill: anything between their recorded fills and their quantity.
_IN_FLIGHT = frozenset({S.SUBMITTING, S.SUBMITTED, S.PARTIALLY_FILLED, S.UNKNOWN})
# Order types that protect a position (a stop of some kind).
_STOP_TYPES = ("STP", "STOP", "TRAIL")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _symbol(text: str | None) -> str:
    return (text or "").strip().upper()


@dataclass(slots=True)
class _Range:
    """Signed shares a symbol may hold according to the ledger, and who holds them."""

    low: int = 0
    high: int = 0
    holders: list[UUID] = field(default_factory=list)

    def add(self, low: int, high: int, holder: UUID) -> None:
        self.low += low
        self.high += high
        if high or low:
            self.holders.append(holder)


@dataclass(frozen=True, slots=True)
class Comparison:
    """What one set of reads shows: the breaks, and the fills the ledger missed; the reads
    themselves for what a confirmed break leads to (a settlement)."""

    breaks: tuple[ReconcileBreak, ...]
    fills_found: tuple[FillsFound, ...]
    executions: tuple[Execution, ...] = ()
    orders: tuple[BrokerOrder, ...] = ()
    positions: tuple[Position, ...] = ()


def _working(order: BrokerOrder) -> bool:
    return not order.status.is_final and order.status is not BrokerStatus.UNKNOWN


def _entry_shares(execution: Execution, entry: BrokerOrder | None) -> tuple[int, int]:
    """Shares (unsigned) the entry bought or sold: (at least, at most). The broker's list is
    exact where it lists the order; an order it does not list by id (not yet answered, or a
    previous bridge session's) may be anything from its recorded fills to its quantity while
    it is in flight."""
    recorded = execution.filled_qty
    if entry is not None:
        filled = max(recorded, entry.filled_qty)
        return filled, filled
    if execution.state in _IN_FLIGHT:
        return recorded, max(recorded, execution.quantity or 0)
    return recorded, recorded


def _exit_shares(
    execution: Execution, orders: dict[int, BrokerOrder], held_low: int, held_high: int
) -> tuple[int, int]:
    """Shares (unsigned) still held after the exits: what the listed bracket children filled,
    else the exit the ledger recorded (children of a previous bridge session are not listed)."""
    children = [orders[i] for i in execution.child_order_ids if i in orders]
    exited = sum(c.filled_qty for c in children) if children else (execution.exit_qty or 0)
    return max(0, held_low - exited), max(0, held_high - exited)


def compare(
    executions: Iterable[Execution],
    orders: Sequence[BrokerOrder],
    positions: Sequence[Position],
    *,
    protection: bool,
) -> Comparison:
    """The breaks between the ledger and the broker's reads (pure; see the module docstring).
    `protection`: positions must have a working stop (ORDER_PROTECTION=bracket)."""
    by_id = {o.order_id: o for o in orders if o.order_id != 0}
    ranges: dict[str, _Range] = defaultdict(_Range)
    breaks: list[ReconcileBreak] = []
    fills: list[FillsFound] = []
    for execution in executions:
        symbol = _symbol(execution.symbol)
        if not symbol or execution.state in (S.RECEIVED, S.REJECTED, S.FAILED, S.DRY_RUN):
            continue
        entry = by_id.get(execution.order_id) if execution.order_id is not None else None
        if (
            execution.state is S.CANCELLED
            and entry is not None
            and entry.filled_qty > execution.filled_qty
        ):
            breaks.append(
                ReconcileBreak(
                    BreakKind.FILL_AFTER_CANCEL,
                    symbol,
                    execution.id,
                    entry.order_id,
                    {
                        "recorded_filled_qty": execution.filled_qty,
                        "broker_filled_qty": entry.filled_qty,
                        "broker_status": entry.status.value,
                    },
                )
            )
            fills.append(
                FillsFound(execution.id, entry.filled_qty, entry.avg_fill_price, entry.status.value)
            )
        if execution.position_state == "closed":
            continue
        low, high = _entry_shares(execution, entry)
        low, high = _exit_shares(execution, by_id, low, high)
        if execution.action == Action.SELL.value:
            low, high = -high, -low
        ranges[symbol].add(low, high, execution.id)

    held = {_symbol(p.symbol): p.quantity for p in positions if p.quantity != 0}
    for symbol in sorted(set(held) | set(ranges)):
        actual = held.get(symbol, 0)
        expected = ranges.get(symbol, _Range())
        detail: dict[str, Any] = {
            "broker_quantity": actual,
            "ledger_min": expected.low,
            "ledger_max": expected.high,
            "execution_ids": [str(i) for i in expected.holders],
        }
        if not expected.low <= actual <= expected.high:
            kind = BreakKind.MISSING_POSITION if actual == 0 else BreakKind.UNEXPLAINED_POSITION
            holder = expected.holders[0] if len(expected.holders) == 1 else None
            breaks.append(ReconcileBreak(kind, symbol, holder, None, detail))
        elif actual != 0 and protection and not _has_working_stop(symbol, actual, orders):
            holder = expected.holders[0] if len(expected.holders) == 1 else None
            breaks.append(
                ReconcileBreak(BreakKind.UNPROTECTED_POSITION, symbol, holder, None, detail)
            )
    return Comparison(tuple(breaks), tuple(fills))


def _has_working_stop(symbol: str, quantity: int, orders: Iterable[BrokerOrder]) -> bool:
    closing = Action.SELL if quantity > 0 else Action.BUY
    return any(
        _symbol(o.symbol) == symbol
        and o.action is closing
        and o.order_type.strip().upper().startswith(_STOP_TYPES)
        and _working(o)
        for o in orders
    )


class Reconciler:
    """The actor: a pass at start, then one every RECONCILE_INTERVAL, until cancelled.

    `report` is the executor's mailbox (`FillsFound`); `on_breaks(n)` is told how many breaks the
    last pass found (the service's /health fact)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: Broker,
        metrics: Metrics,
        report: Callable[[Message], None],
        *,
        clock: Callable[[], datetime] = _utcnow,
        confirm_delay: float = CONFIRM_DELAY,
        on_settled: Callable[[Execution], None] | None = None,
        break_report: BreakReport | None = None,
    ) -> None:
        """`on_settled` is told of each position settled from the broker (the exits re-read
        it); `break_report` logs and counts the breaks (once when new)."""
        self._settings = settings
        self._store = store
        self._broker = broker
        self._metrics = metrics
        self._report = report
        self._clock = clock
        self._confirm_delay = confirm_delay
        self._on_settled = on_settled
        self._break_report = break_report or BreakReport(metrics)
        self.open_breaks: tuple[ReconcileBreak, ...] = ()
        self.passes = 0  # completed passes, for tests and /health
        self.settled: list[Settlement] = []  # for tests
        # Shortfalls the previous completed pass confirmed, by (symbol, execution id): an
        # empty positions answer settles only what the pass before saw too.
        self._short_before: set[tuple[str, UUID]] = set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self.reconcile_once()
            await anyio.sleep(self._settings.reconcile_interval)

    async def reconcile_once(self) -> tuple[ReconcileBreak, ...] | None:
        """One pass. Returns the breaks it reported, or None when a read failed (nothing is
        concluded from a partial picture; the next pass tries again)."""
        first = await self._read_and_compare()
        if first is None:
            return None
        result = first
        if first.breaks:
            await anyio.sleep(self._confirm_delay)
            second = await self._read_and_compare()
            if second is None:
                return None
            seen_first = {b.key for b in first.breaks}
            missed = {f.execution_id for f in first.fills_found}
            result = Comparison(
                tuple(b for b in second.breaks if b.key in seen_first),
                tuple(f for f in second.fills_found if f.execution_id in missed),
                second.executions,
                second.orders,
                second.positions,
            )
        for fill in result.fills_found:
            self._report(fill)
        settled = await self._settle(result)
        await self._not_listed(result)
        result = Comparison(
            tuple(b for b in result.breaks if b.key not in settled), result.fills_found
        )
        self._break_report.report(result.breaks)  # logged and counted once when new
        try:
            await self._store.record_breaks(result.breaks, self._clock())
        except StoreError as error:
            log_repeated("reconcile.record_failed", "reconcile.record_failed", error=str(error))
        else:
            clear_repeated("reconcile.record_failed")
        self.open_breaks = result.breaks
        self.passes += 1
        log.info("reconcile.done", breaks=len(result.breaks))
        return result.breaks

    async def _settle(self, result: Comparison) -> set[tuple[str, str, UUID | None]]:
        """Settle each confirmed shortfall of one open ledger position (see the module
        docstring); the keys of the breaks it settled."""
        by_id = {e.id: e for e in result.executions}
        held = {_symbol(p.symbol): p.quantity for p in result.positions if p.quantity != 0}
        empty = not held
        short_now: set[tuple[str, UUID]] = set()
        done: set[tuple[str, str, UUID | None]] = set()
        for found in result.breaks:
            if found.kind not in (BreakKind.MISSING_POSITION, BreakKind.UNEXPLAINED_POSITION):
                continue
            execution = by_id.get(found.execution_id) if found.execution_id else None
            if execution is None or execution.position_state not in ("open", "unprotected"):
                continue
            if execution.state in _IN_FLIGHT:
                continue  # its entry may still fill: the range, not the ledger, says what
            plan = settle(execution, held.get(found.symbol, 0), result.orders, self._clock())
            if plan is None:
                continue
            short_now.add((found.symbol, execution.id))
            if empty and (found.symbol, execution.id) not in self._short_before:
                log.warning(
                    "reconcile.settle_deferred",
                    symbol=found.symbol,
                    execution_id=str(execution.id),
                    why="the broker answered no positions at all: the next pass confirms it",
                )
                continue
            if await self._record_settlement(execution, plan):
                done.add(found.key)
        self._short_before = short_now
        return done

    async def _not_listed(self, result: Comparison) -> None:
        """(v3) A confirmed `unprotected_position` of one `open` ledger position none of whose
        exit orders the bridge lists by id (a restart with another client id: IB may still
        work them, unseen, until the close expires them) is recorded `unprotected` as the
        exits record a lost protection (its exit orders forgotten, in the event's detail), so
        the ledger never calls protected what the bridge shows naked, and REPROTECT_AT_OPEN
        protects it at the next open (never before: the unseen orders may still work). Exit
        orders listed and final are the exits' business; a close under way is left alone."""
        by_id = {e.id: e for e in result.executions}
        listed = {o.order_id for o in result.orders if o.order_id != 0}
        for found in result.breaks:
            if found.kind is not BreakKind.UNPROTECTED_POSITION or found.execution_id is None:
                continue
            execution = by_id.get(found.execution_id)
            if execution is None or execution.position_state != "open":
                continue
            if execution.exit_order_id is not None and execution.exit_order_id >= 0:
                continue  # a close is under way: it cancels the children itself
            ids = [i for i in execution.child_order_ids if i > 0]
            if not ids or any(i in listed for i in ids):
                continue
            try:
                updated = await self._store.apply(
                    execution.id,
                    Transition.POSITION,
                    Changes(position_state="unprotected", child_order_ids=()),
                    {"protection": "not_listed", "order_ids": ids},
                )
            except (IllegalTransition, StoreError) as error:
                log.warning(
                    "reconcile.settle_failed", execution_id=str(execution.id), error=str(error)
                )
                continue
            log.error(
                "position.protection_not_listed",
                execution_id=str(updated.id),
                symbol=updated.symbol,
                exit_order_ids=ids,
                broker_quantity=found.detail.get("broker_quantity"),
            )
            if self._on_settled is not None:
                self._on_settled(updated)

    async def _record_settlement(self, execution: Execution, plan: Settlement) -> bool:
        detail = {
            "settled_from": "broker",
            "exit_reason": plan.exit_reason,
            "quantity": plan.quantity,
            "price_known": plan.price_known,
            "matched_order_id": plan.matched_order_id,
        }
        try:
            updated = await self._store.apply(
                execution.id,
                Transition.POSITION,
                plan.changes,
                detail,
                trade_notes=_notes(execution, plan),
            )
        except (IllegalTransition, StoreError) as error:
            log.warning("reconcile.settle_failed", execution_id=str(execution.id), error=str(error))
            return False
        moment = updated.closed_at or self._clock()
        day = moment.astimezone(self._settings.timezone).date()
        self._report(PositionExited(updated.id, plan.realized_pnl, day, plan.closed))
        self.settled.append(plan)
        numbers = {
            "execution_id": str(updated.id),
            "symbol": updated.symbol,
            "exit_reason": plan.exit_reason,
            "exit_qty": updated.exit_qty,
            "exit_avg_price": str(updated.exit_avg_price),
            "realized_pnl": str(updated.realized_pnl),
            "r_multiple": str(updated.r_multiple),
            "matched_order_id": plan.matched_order_id,
        }
        if plan.price_known:
            log.info("position.settled", **numbers)
        else:
            log.error(
                "position.settled_price_unknown",
                hint=f"resolve-position {updated.symbol} --exit-price P",
                **numbers,
            )
        if self._on_settled is not None:
            self._on_settled(updated)
        return True

    async def _read_and_compare(self) -> Comparison | None:
        # Orders first, then positions: a fill between the two reads then shows as an order
        # still working (a range that allows it), never as shares no order explains. /health
        # before and after: a read taken while the bridge is not connected to IB means nothing.
        try:
            if not (await self._broker.health()).connected:
                raise BrokerUnavailable("the bridge is not connected to IB", endpoint="GET /health")
            orders = await self._broker.orders()
            positions = await self._broker.positions()
            if not (await self._broker.health()).connected:
                raise BrokerUnavailable(
                    "the bridge lost IB during the read", endpoint="GET /health"
                )
        except BrokerError as error:
            self._short_before = set()
            log_repeated("reconcile.bridge_unavailable", "reconcile.skipped", error=str(error))
            return None
        try:
            executions = await self._store.executions_for_reconcile(
                sorted({o.order_id for o in orders if o.order_id != 0})
            )
        except StoreError as error:
            log_repeated("reconcile.database_unavailable", "reconcile.skipped", error=str(error))
            return None
        clear_repeated("reconcile.bridge_unavailable")
        clear_repeated("reconcile.database_unavailable")
        found = compare(
            executions,
            orders,
            positions,
            protection=self._settings.order_protection == "bracket",
        )
        return Comparison(
            found.breaks, found.fills_found, tuple(executions), tuple(orders), tuple(positions)
        )


def _notes(execution: Execution, plan: Settlement) -> str:
    """The `trades.notes` text of a settlement (see actors/exits/__init__.py)."""
    c = plan.changes
    price = c.exit_avg_price if plan.price_known else "price unknown"
    r = f" ({c.r_multiple} R)" if c.r_multiple is not None else ""
    state = "closed" if plan.closed else "partly exited"
    return f"{state}: {c.exit_reason} {c.exit_qty} @ {price}; realized P&L {c.realized_pnl}{r}"
