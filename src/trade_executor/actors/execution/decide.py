"""Decisions: serial, one batch at a time, against the RiskBook.

Guarantees: every decision sees every earlier reservation, because the RiskBook is changed only
by synchronous calls from this one task; a batch's account snapshot was read less than
ACCOUNT_SNAPSHOT_MAX_AGE ago and after every order, fill, close or protection of ours seen
before the batch asked (`actors.account_snapshot`); a bridge that cannot give the snapshot
fails the batch (`bridge_unavailable`), it never decides on stale numbers. While draining,
nothing is decided: the claims stay `received` and the next start decides them.

Gates, in order (CONTRACT section 5): the kill switch; live or paper (the bridge's account mode,
read at start and after every reconnect: a live or unknown account needs ALLOW_LIVE_TRADING);
the original's guardrails that need no sizing (their read failing rejects: fail closed); the
RiskBook (positions, budget, sizing, reservation); the instance's own limits with the new
trade's risk (a refusal returns the reservation). Dry run passes the same gates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from trade_executor.actors.execution.outcomes import Outcomes
from trade_executor.actors.execution.shared import Candidate, Shared, log, log_context
from trade_executor.broker.errors import BrokerError, BrokerUnavailable
from trade_executor.domain.guardrails import (
    LIVE_TRADING_NOT_ALLOWED,
    UsageItem,
    check_account_mode,
    check_entry,
    check_instance_limits,
)
from trade_executor.domain.riskbook import Decision, Halted
from trade_executor.domain.sizing import RiskRejection

DECISION_BATCH = 256


class Decider:
    def __init__(
        self,
        shared: Shared,
        outcomes: Outcomes,
        submit: Callable[[Candidate, Decision], None],
        draining: Callable[[], bool],
    ) -> None:
        self._s = shared
        self._outcomes = outcomes
        self._submit = submit
        self._draining = draining

    async def decide_forever(self, candidates: MemoryObjectReceiveStream[Candidate]) -> None:
        async for first in candidates:
            batch = [first]
            while len(batch) < DECISION_BATCH:
                try:
                    batch.append(candidates.receive_nowait())
                except anyio.WouldBlock:
                    break
            await self.decide_batch(batch)

    async def decide_batch(self, batch: list[Candidate]) -> None:
        s = self._s
        if self._draining():
            return  # left `received`: the next start decides them again
        if s.riskbook.halted:
            for candidate in batch:
                self._rejected(candidate, "halted")
            return
        assert s.tg is not None
        unread = await self.read_account_mode()
        if unread is not None:
            # Not knowing whether the account is live is a bridge failure, not a live account.
            for candidate in batch:
                self._failed(candidate, f"bridge_unavailable: account mode unreadable: {unread}")
            return
        try:
            account, positions = await s.snapshots.current()  # see account_snapshot.py
        except BrokerError as error:
            s.account_mode_read = False  # read it again once the bridge is back
            for candidate in batch:
                self._failed(candidate, f"bridge_unavailable: {error}")
            return
        held = {p.symbol.upper(): abs(p.quantity) for p in positions if p.quantity != 0}
        s.riskbook.set_broker_positions(held)
        # The broker's buying power does not yet reflect orders that are working but unfilled.
        unfilled = s.working.unfilled_value(held)
        available = replace(account, buying_power=account.buying_power - unfilled)
        now = s.clock()
        for candidate in batch:
            refused = check_account_mode(
                s.paper_trading, s.settings.allow_live_trading
            ) or check_entry(candidate.guardrails, now)
            if refused is not None:
                self._rejected(candidate, refused.reason, refused.detail)
                continue
            decision = s.riskbook.decide(candidate.execution.id, candidate.valid, available, now)
            if isinstance(decision, RiskRejection):
                s.metrics.risk_rejections.labels(gate=decision.gate.value).inc()
                self._rejected(candidate, decision.reason, numbers=self._numbers(decision, now))
                continue
            if isinstance(decision, Halted):
                self._rejected(candidate, decision.reason, numbers={"halt_reason": decision.detail})
                continue
            if not self._within_instance_limits(candidate, decision):
                continue
            sizing = decision.sizing
            s.working.add(
                candidate.execution.id,
                candidate.valid.symbol,
                sizing.quantity,
                candidate.valid.entry,
            )
            available = replace(
                available, buying_power=available.buying_power - sizing.position_value
            )
            s.submissions.begin()
            self._submit(candidate, decision)
        s.metrics.set_daily_risk(s.riskbook.daily_risk_used(now))

    def _numbers(self, rejection: RiskRejection, now: datetime) -> dict[str, Any]:
        """What a risk rejection was decided on, for the log line and the audit trail."""
        book = self._s.riskbook
        return {
            "gate": rejection.gate.value,
            "detail": rejection.detail,
            "daily_risk_used": book.daily_risk_used(now),
            "daily_risk_left": book.daily_risk_left(now),  # None: no daily budget
            "daily_budget": book.limits.daily_loss_cap,
            "open_positions": book.open_count(),
            "max_open_positions": book.limits.open_positions_cap,
        }

    async def read_account_mode(self) -> BrokerError | None:
        """The bridge's account mode, unless already read since the last (re)connection.
        Returns the error when the bridge could not be asked (the batch then fails
        `bridge_unavailable`); a bridge that answers without saying leaves the mode unknown,
        which is never taken as paper."""
        s = self._s
        if s.account_mode_read:
            return None
        try:
            health = await s.broker.health()
        except BrokerError as error:
            log.warning("bridge.account_mode_unknown", error=str(error))
            s.paper_trading = None
            return error
        if not health.connected:  # its account is unknown until it reconnects to IB
            log.warning("bridge.account_mode_unknown", error="the bridge is not connected to IB")
            return BrokerUnavailable("the bridge is not connected to IB", endpoint="GET /health")
        s.paper_trading, s.account_mode_read = health.paper_trading, True
        mode = {True: "paper", False: "live", None: "unknown"}[health.paper_trading]
        log.info("bridge.account_mode", mode=mode, allow_live_trading=s.settings.allow_live_trading)
        return None

    def _within_instance_limits(self, candidate: Candidate, decision: Decision) -> bool:
        """The instance's config limits with the new trade counted; on a refusal the
        reservation is returned. On success the trade joins the instance's tally."""
        s = self._s
        facts = candidate.guardrails
        if not facts.instance_checked or facts.instance_id is None or facts.instance is None:
            return True
        day = decision.reservation.trading_day
        decided = s.instance_tally.items(facts.instance_id, day)
        refused = check_instance_limits(
            facts, decided, candidate.valid.symbol, decision.sizing.risk_amount
        )
        if refused is not None:
            s.riskbook.release(candidate.execution.id)
            self._rejected(candidate, refused.reason, refused.detail)
            return False
        item = UsageItem(
            str(candidate.execution.id), candidate.valid.symbol, decision.sizing.risk_amount, True
        )
        s.instance_tally.add(facts.instance_id, day, item)
        return True

    def _rejected(
        self,
        candidate: Candidate,
        reason: str,
        detail: str = "",
        numbers: dict[str, Any] | None = None,
    ) -> None:
        """`detail`: a guardrail's words (logged); `numbers`: what a risk decision was made on
        (in the rejection's log line and audit trail)."""
        execution = candidate.execution
        if reason == LIVE_TRADING_NOT_ALLOWED:
            # Not a routine refusal: the operator believes the service trades (CONTRACT 5).
            log.warning("guardrail.refused", reason=reason, detail=detail, **log_context(execution))
        elif detail:
            log.info("guardrail.refused", reason=reason, detail=detail, **log_context(execution))
        self._s.spawn("reject", lambda: self._outcomes.reject(execution, reason, numbers))

    def _failed(self, candidate: Candidate, reason: str) -> None:
        execution = candidate.execution
        self._s.spawn("fail", lambda: self._outcomes.fail(execution, reason, attempted=False))
