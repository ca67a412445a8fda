"""Vetting a claimed approval before its risk decision (the I/O half of the prepare step):
the original service's orders, the signal's validation, and the facts its guardrails need.

Guarantees:
- a signal the original service already ordered (CONTRACT section 5, switch-over) is rejected
  `already_executed` before anything else, so it is never ordered and the original's order id
  is never overwritten; when that cannot be checked, the execution fails
  (`internal: ...`) before any broker call: it is never ordered on a guess;
- outside TRADING_SESSION with OUTSIDE_SESSION=reject, an approval is rejected `market_closed`
  here, before any broker call (the session is built at start: `session_calendar`);
- the guardrail facts are read here and decided in the serial decide step
  (`domain.guardrails`); an error reading them becomes a rejection there (fail closed).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import anyio

from trade_executor.actors.execution.outcomes import Outcomes
from trade_executor.actors.execution.shared import Candidate, Shared, log, log_context
from trade_executor.config.session_calendar import trading_session
from trade_executor.domain.execution import Execution
from trade_executor.domain.guardrails import (
    ARTIFACT_NOT_APPROVED,
    INSTANCE_DISABLED,
    NO_GUARDRAILS,
    GuardrailFacts,
    GuardrailRejection,
)
from trade_executor.domain.models import Approval, Signal
from trade_executor.domain.validation import Rejection, validate
from trade_executor.store.errors import StoreError

ALREADY_EXECUTED = "already_executed"
MARKET_CLOSED = "market_closed"  # CONTRACT section 5, "Trading session" (v3)


async def vet(
    s: Shared,
    outcomes: Outcomes,
    execution: Execution,
    signal: Signal,
    approval: Approval,
    max_age: timedelta,
    seen_at: float | None = None,
) -> Candidate | None:
    """The candidate for the decide step, or None after recording why there is none."""
    try:
        evidence = await s.store.original_order(signal.id)
    except StoreError as error:
        await outcomes.fail(
            execution,
            f"internal: cannot check for an order of the original service: {error}",
            attempted=False,
        )
        return None
    if evidence is not None:
        log.warning("execution.already_executed", evidence=evidence, **log_context(execution))
        await outcomes.reject(execution, ALREADY_EXECUTED)
        return None
    now = s.clock()
    default_ttl = timedelta(seconds=s.settings.signal_default_ttl)
    result = validate(signal, approval, now, max_age, default_ttl)
    if isinstance(result, Rejection):
        await outcomes.reject(execution, result.reason)
        return None
    if s.settings.outside_session == "reject":
        session = trading_session(s.settings.trading_session, s.settings.trading_day_timezone)
        if not session.is_open(now):
            log.info(
                "execution.market_closed", session=session.describe(now), **log_context(execution)
            )
            await outcomes.reject(execution, MARKET_CLOSED)
            return None
    facts = await read_guardrails(s, signal, now)
    return Candidate(
        execution,
        result,
        anyio.current_time() if seen_at is None else seen_at,
        guardrails=facts,
    )


async def read_guardrails(s: Shared, signal: Signal, now: datetime) -> GuardrailFacts:
    """The facts the original's guards need (see `domain.guardrails`), as the settings and the
    database say: `auto` is on where the guard's table exists. Never raises: an error becomes
    `read_error`, which the decide step turns into a rejection."""
    settings = s.settings
    instances_mode, artifacts_mode = (
        settings.instance_guardrails,
        settings.require_artifact_approval,
    )
    if instances_mode == "off" and artifacts_mode == "off":
        return NO_GUARDRAILS
    try:
        tables = await s.store.original_tables()
        instances = instances_mode == "on" or (
            instances_mode == "auto" and tables.strategy_instances
        )
        artifacts = artifacts_mode == "on" or (
            artifacts_mode == "auto" and tables.artifact_approvals
        )
        if not instances and not artifacts:
            return NO_GUARDRAILS
        day = s.core.trading_day(now)
        return await s.store.guardrail_facts(
            signal.id,
            instances=instances,
            artifacts=artifacts,
            day_start=day_start(day, s),
            trading_day=day,
        )
    except StoreError as error:
        gate = INSTANCE_DISABLED if instances_mode != "off" else ARTIFACT_NOT_APPROVED
        log.warning("guardrails.read_failed", error=str(error), signal_id=str(signal.id))
        return GuardrailFacts(
            read_error=GuardrailRejection(gate, f"the guardrails could not be read: {error}")
        )


def day_start(day: date, s: Shared) -> datetime:
    """Midnight of trading day `day` in TRADING_DAY_TIMEZONE, as an aware moment."""
    return datetime.combine(day, time(0), tzinfo=s.settings.timezone)
