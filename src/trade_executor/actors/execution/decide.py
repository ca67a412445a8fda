"""Decisions: serial, one batch at a time, against the RiskBook; the shell around
`ExecutionCore.decide`, which does the I/O (the account mode, the account snapshot) and carries
out the core's verdicts (submit, or record the refusal).

Guarantees: every decision sees every earlier reservation, because the core decides a whole
batch in one synchronous call from this one task; a batch's account snapshot was read less than
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
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from trade_executor.actors.execution.core import Reject, Submit
from trade_executor.actors.execution.outcomes import Outcomes
from trade_executor.actors.execution.shared import Candidate, Shared, log, log_context
from trade_executor.broker.errors import BrokerError, BrokerUnavailable
from trade_executor.domain.guardrails import LIVE_TRADING_NOT_ALLOWED
from trade_executor.domain.riskbook import Decision

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
        """The I/O around one batch (the account mode, the account snapshot), the core's
        decisions on it, and what they ask for: a submission, or a recorded refusal."""
        s = self._s
        core = s.core
        if self._draining():
            return  # left `received`: the next start decides them again
        if core.halted:
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
            core.account_mode_unknown()  # read it again once the bridge is back
            for candidate in batch:
                self._failed(candidate, f"bridge_unavailable: {error}")
            return
        now = s.clock()
        verdicts = core.decide(
            batch, account, positions, now, allow_live=s.settings.allow_live_trading
        )
        for verdict in verdicts:
            match verdict:
                case Submit(candidate=candidate, decision=decision):
                    s.submissions.begin()
                    self._submit(candidate, decision)
                case Reject(candidate=candidate, gate=gate):
                    if gate is not None:
                        s.metrics.risk_rejections.labels(gate=gate).inc()
                    self._rejected(candidate, verdict.reason, verdict.detail, verdict.numbers)
        s.metrics.set_daily_risk(core.daily_risk_used(now))

    async def read_account_mode(self) -> BrokerError | None:
        """The bridge's account mode, unless already read since the last (re)connection.
        Returns the error when the bridge could not be asked (the batch then fails
        `bridge_unavailable`); a bridge that answers without saying leaves the mode unknown,
        which is never taken as paper."""
        s = self._s
        if s.core.account_mode_read:
            return None
        try:
            health = await s.broker.health()
        except BrokerError as error:
            log.warning("bridge.account_mode_unknown", error=str(error))
            s.core.account_mode_unknown()
            return error
        if not health.connected:  # its account is unknown until it reconnects to IB
            log.warning("bridge.account_mode_unknown", error="the bridge is not connected to IB")
            return BrokerUnavailable("the bridge is not connected to IB", endpoint="GET /health")
        s.core.account_mode(health.paper_trading)  # unsaid (None) is never taken as paper
        mode = {True: "paper", False: "live", None: "unknown"}[health.paper_trading]
        log.info("bridge.account_mode", mode=mode, allow_live_trading=s.settings.allow_live_trading)
        return None

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
