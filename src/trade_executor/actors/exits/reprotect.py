"""Overnight protection (CONTRACT section 5, REPROTECT_AT_OPEN): the bridge sends no time in
force, so IB's DAY default expires a bracket's children at the close and a position held
overnight is `unprotected` (`protection.Protection.lost`). At the next session's open it is
protected again, once.

Guarantees:
- Only while the session is open, and only positions recorded `unprotected` before this
  session's open (the children expired at the last close).
- Only when the bridge's list shows no working stop of ours for the symbol and the broker's
  quantity equals the ledger's (signed); otherwise it stays `unprotected` for an operator
  (`protect SYMBOL`), logged once per open.
- Once per session open, across restarts: `reprotected_at` (the open it is for) is written
  before the POST; a position whose `reprotected_at` is this open's is never sent again.
  `replace_existing` makes the bridge replace rather than double what a lost answer placed.
- It protects the broker's quantity of an existing position: it never opens or enlarges one.

When is "the open": a `SessionHours` (`is_open(at)`, `last_open(at)`): by default the
TRADING_SESSION's `trade_executor.domain.session.TradingSession` (the exchange calendar, its
holidays and early closes); tests inject their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from trade_executor.broker.errors import BrokerError, BrokerRejected
from trade_executor.domain.execution import Changes
from trade_executor.domain.states import IllegalTransition, Transition
from trade_executor.domain.truth import broker_quantity, signed_remaining
from trade_executor.observability.logging import log_context

from .positions import PositionState, remaining
from .shared import Followed, Shared, log

_STOP_TYPES = ("STP", "STOP", "TRAIL")


class SessionHours(Protocol):
    """When the market is open (the exchange calendar plugs in here)."""

    def is_open(self, at: datetime) -> bool: ...

    def last_open(self, at: datetime) -> datetime | None:
        """The start of the session open at `at` (or the latest before it)."""
        ...


class Reprotect:
    def __init__(self, shared: Shared, session: SessionHours) -> None:
        self._s = shared
        self._session = session

    async def due(self) -> None:
        """At each look while the session is open: protect again what the close left bare."""
        s = self._s
        if not s.settings.reprotect_at_open or s.settings.order_protection != "bracket":
            return
        now = s.clock()
        if not self._session.is_open(now):
            return
        opened = self._session.last_open(now)
        if opened is None:
            return
        waiting = [
            f
            for f in s.core.positions()
            if f.execution.position_state == PositionState.UNPROTECTED
            and f.closing is None
            and not f.lock.locked()
            and (f.execution.reprotected_at is None or f.execution.reprotected_at < opened)
            and (f.execution.updated_at is None or f.execution.updated_at < opened)
        ]
        if not waiting:
            return
        index = await s.fresh_list()
        if index is None:
            return
        try:
            positions = await s.broker.positions()
        except BrokerError as error:
            log.warning("position.reprotect_deferred", error=str(error))
            return
        for followed in waiting:
            execution = followed.execution
            symbol = execution.symbol or ""
            held = broker_quantity(symbol, positions)
            stop_working = any(
                o.symbol.strip().upper() == symbol
                and o.order_type.strip().upper().startswith(_STOP_TYPES)
                and not o.status.is_final
                for o in index.by_id.values()
            )
            if held != signed_remaining(execution) or stop_working:
                if s.core.first_skip(execution.id, opened):
                    log.warning(
                        "position.reprotect_skipped",
                        broker_quantity=held,
                        ledger_quantity=signed_remaining(execution),
                        stop_working=stop_working,
                        **log_context(execution),
                    )
                continue
            async with followed.lock:
                await self._protect(followed, opened)

    async def _protect(self, followed: Followed, opened: datetime) -> None:
        s = self._s
        execution = followed.execution
        quantity = remaining(execution)
        symbol, stop = execution.symbol, execution.stop_loss
        if stop is None or symbol is None or quantity <= 0:
            return
        # The intent first: once per open, even if we die before the answer.
        try:
            execution = await s.store.apply(
                execution.id,
                Transition.POSITION,
                Changes(reprotected_at=opened),
                {"reprotect": "at_open", "session_open": opened.isoformat()},
            )
        except IllegalTransition:
            return
        s.core.recorded(followed, execution)
        s.core.protect_sent()
        try:
            placed = await s.broker.protect_position(
                symbol,
                stop_loss=stop,
                take_profit=execution.take_profit,
                quantity=quantity,
                replace_existing=True,
            )
        except (BrokerRejected, BrokerError) as error:
            log.error("position.reprotect_failed", error=str(error), **log_context(execution))
            return
        updated = await s.store.apply(
            execution.id,
            Transition.POSITION,
            Changes(position_state=PositionState.OPEN.value, child_order_ids=placed.order_ids),
            {
                "protection": "reprotected_at_open",
                "session_open": opened.isoformat(),
                "quantity": quantity,
                "order_ids": list(placed.order_ids),
            },
        )
        s.core.recorded(followed, updated)
        await s.store.add_event(
            execution.id,
            "position.reprotected",
            {"session_open": opened.isoformat(), "order_ids": list(placed.order_ids)},
        )
        log.info(
            "position.reprotected",
            quantity=quantity,
            stop_loss=str(execution.stop_loss),
            take_profit=str(execution.take_profit),
            protect_order_ids=list(placed.order_ids),
            session_open=opened.isoformat(),
            **log_context(execution),
        )
