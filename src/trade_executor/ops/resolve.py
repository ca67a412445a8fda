"""`resolve`: an operator settles an execution the service cannot settle itself (CONTRACT
sections 2 and 5, "operator settlement").

What may be resolved: an `unknown` execution at any time; one in `submitting`, `submitted` or
`partially_filled` only once it is past the bound of its state (`StateBounds`: before that the
service is still settling it, and the refusal names the bound). Final executions never.

`--as failed|submitted|filled|cancelled`; `submitted` needs `--order-id`. With `--order-id`
the order is looked up at the bridge (`GET /orders`) and must match the execution's symbol,
side and quantity; what the bridge says is printed, and a mismatch is refused. The change is
one guarded transition (`Transition.RESOLVE_*`, so a row that moved meanwhile is not
overwritten), then announced (`store.announce_change`), so the running service's executor
re-reads it within a second: risk released and symbol freed for `failed` and for `cancelled`
without a fill, risk kept for `filled`, the order followed for `submitted`.

The id is an execution id, a signal id, or an unambiguous prefix of either (`lookup`, as
`show` reads it). Exit codes: 2 for a malformed id (bad usage), 1 with one sentence for every
refusal.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError
from trade_executor.config.limits import state_bounds
from trade_executor.config.sources import Settings
from trade_executor.domain.bounds import StateBounds
from trade_executor.domain.breaker import RESOLVED_PREFIX
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import BrokerOrder, BrokerStatus
from trade_executor.domain.states import ExecutionState, IllegalTransition, Transition
from trade_executor.ops.common import fail, who, with_store
from trade_executor.ops.exit_codes import EX_USAGE, CommandError
from trade_executor.ops.exit_price import parse_price, resolve_position
from trade_executor.store.lookup import (
    ExecutionLookupError,
    IdPattern,
    IdSyntaxError,
    NoSuchExecution,
    find_execution,
    parse_id,
)
from trade_executor.store.postgres import PgStore

S = ExecutionState
OUTCOMES = ("failed", "submitted", "filled", "cancelled")
_TRANSITIONS = {
    "failed": Transition.RESOLVE_FAILED,
    "submitted": Transition.RESOLVE_SUBMITTED,
    "filled": Transition.RESOLVE_FILLED,
    "cancelled": Transition.RESOLVE_CANCELLED,
}
_PAST_BOUND_STATES = frozenset({S.SUBMITTING, S.SUBMITTED, S.PARTIALLY_FILLED})


@dataclass(frozen=True, slots=True)
class Resolution:
    transition: Transition
    changes: Changes
    detail: dict[str, Any]


def refusal(execution: Execution, outcome: str, bounds: StateBounds, now: datetime) -> str | None:
    """Why `execution` cannot be resolved as `outcome` now (one sentence), or None."""
    name = f"execution {execution.id}"
    state = execution.state
    if state.is_final:
        return (
            f"{name} is {state.value}, not unknown or past its bound: a final execution "
            "cannot be resolved"
        )
    if state is S.RECEIVED:
        return f"{name} is received: no order was attempted, the service decides it itself"
    if state in _PAST_BOUND_STATES:
        deadline = bounds.deadline(execution)
        if deadline is None or now < deadline:
            left = "" if deadline is None else f"; {(deadline - now).total_seconds():.0f} s left"
            return (
                f"{name} is {state.value} and within its bound ({bounds.describe(state)}"
                f"{left}): the service is still settling it"
            )
    if not _TRANSITIONS[outcome].allows(state):
        return f"{name} is {state.value} already, it cannot be resolved as {outcome}"
    return None


def describe_order(order: BrokerOrder) -> str:
    filled = f", filled {order.filled_qty}" if order.filled_qty else ""
    price = f" @ {order.avg_fill_price}" if order.filled_qty and order.avg_fill_price else ""
    return (
        f"order {order.order_id} at the bridge: {order.action.value} {order.quantity} "
        f"{order.symbol}, {order.status.value}{filled}{price}"
    )


def order_mismatch(execution: Execution, order: BrokerOrder, outcome: str) -> str | None:
    """Why the bridge's `order` cannot be this execution's (one sentence), or None."""
    theirs = (order.symbol.strip().upper(), order.action.value, order.quantity)
    ours = (execution.symbol, execution.action, execution.quantity)
    if theirs != ours:
        return (
            f"order {order.order_id} is {theirs[1]} {theirs[2]} {theirs[0]} at the bridge, but "
            f"execution {execution.id} is {ours[1]} {ours[2]} {ours[0]}: not resolved"
        )
    if outcome == "filled" and order.filled_qty <= 0:
        return f"order {order.order_id} has no fill at the bridge ({order.status.value})"
    if outcome == "cancelled" and order.status is BrokerStatus.FILLED:
        return f"order {order.order_id} is Filled at the bridge, not cancelled"
    return None


def plan(
    execution: Execution,
    outcome: str,
    by: str,
    order: BrokerOrder | None,
    now: datetime,
    fill_price: Decimal | None = None,
) -> Resolution:
    """The transition and fields that settle `execution` as `outcome`."""
    reason = f"{RESOLVED_PREFIX}_{outcome} by {by}"
    order_id = order.order_id if order is not None else None
    detail: dict[str, Any] = {"by": by, "as": outcome, "order_id": order_id}
    if fill_price is not None:
        detail["fill_price"] = str(fill_price)
    if order is not None:
        detail["bridge"] = {
            "status": order.status.value,
            "filled_qty": order.filled_qty,
            "avg_fill_price": order.avg_fill_price,
        }
    match outcome:
        case "failed":
            changes = Changes(reason=reason)
        case "submitted":
            changes = Changes(
                order_id=order_id,
                submitted_at=now,
                broker_status=order.status.value if order is not None else "Submitted",
            )
        case "filled":
            filled = order.filled_qty if order is not None else (execution.quantity or 1)
            changes = Changes(
                reason=reason,
                order_id=order_id,
                filled_qty=max(filled, execution.filled_qty, 1),
                avg_fill_price=fill_price_of(order, fill_price),
                broker_status=BrokerStatus.FILLED.value,
            )
        case _:  # cancelled: whatever filled stays filled (the risk of a fill is kept)
            filled = max(order.filled_qty if order is not None else 0, execution.filled_qty)
            changes = Changes(
                reason=reason,
                order_id=order_id,
                filled_qty=filled,
                avg_fill_price=order.avg_fill_price if order is not None and filled else None,
                broker_status=order.status.value if order is not None else "Cancelled",
            )
    return Resolution(_TRANSITIONS[outcome], changes, detail)


def fill_price_of(order: BrokerOrder | None, given: Decimal | None) -> Decimal | None:
    """The entry's fill price for `--as filled`: the operator's, else the bridge's."""
    if given is not None:
        return given
    return order.avg_fill_price if order is not None else None


async def _bridge_order(settings: Settings, order_id: int) -> BrokerOrder | str:
    """The bridge's listing of `order_id`, or one sentence saying why it cannot be checked."""
    try:
        async with BrokerClient(settings.ib_bridge_url, settings.ib_bridge_timeout) as broker:
            orders = await broker.orders()
    except (BrokerError, ValueError) as error:
        return f"cannot check order {order_id} at the bridge ({settings.ib_bridge_url}): {error}"
    for order in orders:
        if order.order_id == order_id and order.parent_id in (None, 0):
            return order
    return (
        f"order {order_id} is not in the bridge's order list, so its symbol, side and quantity "
        "cannot be checked"
    )


@dataclass(frozen=True, slots=True)
class ResolveOutcome:
    """What a resolve did: what the bridge said (when asked), and either the refusal (one
    sentence) or the execution resolved."""

    said: list[str]
    problem: str
    resolved: UUID | None


async def resolve_execution(
    store: PgStore,
    settings: Settings,
    pattern: IdPattern,
    outcome: str,
    order_id: int | None,
    by: str,
    fill_price: Decimal | None = None,
) -> ResolveOutcome:
    """The typed operation behind `resolve` (the checks, the guarded transition and its
    announcement); `outcome` is one of OUTCOMES, `submitted` with an `order_id`, `filled`
    with a price (`fill_price`, or the bridge's order's): never "filled 264 @ -"."""
    said: list[str] = []

    def refused(problem: str) -> ResolveOutcome:
        return ResolveOutcome(said, problem, None)

    if outcome not in OUTCOMES:
        return refused(f"cannot resolve as {outcome!r}: give one of {', '.join(OUTCOMES)}")
    if outcome == "submitted" and order_id is None:
        return refused("--as submitted needs the broker's --order-id")
    bounds = state_bounds(settings)
    try:
        execution = await find_execution(store, pattern)
    except NoSuchExecution as error:
        return refused(f"execution {pattern.text} not found: {error}")
    except ExecutionLookupError as error:  # ambiguous: it names the candidates
        return refused(str(error))
    now = datetime.now(UTC)
    problem = refusal(execution, outcome, bounds, now)
    if problem:
        return refused(problem)
    order: BrokerOrder | None = None
    if order_id is not None:
        looked_up = await _bridge_order(settings, order_id)
        if isinstance(looked_up, str):
            return refused(looked_up)
        order = looked_up
        said.append(describe_order(order))
        mismatch = order_mismatch(execution, order, outcome)
        if mismatch:
            return refused(mismatch)
    if outcome == "filled" and fill_price_of(order, fill_price) is None:
        return refused(
            f"--as filled needs the entry's price: give --fill-price P (or an --order-id whose "
            f"order has a fill price at the bridge) for execution {execution.id}"
        )
    resolution = plan(execution, outcome, by, order, now, fill_price)
    try:
        await store.apply(
            execution.id, resolution.transition, resolution.changes, resolution.detail
        )
    except IllegalTransition as moved:
        now_in = moved.current.value if moved.current is not None else "gone"
        return refused(f"execution {execution.id} changed meanwhile (it is {now_in}): not resolved")
    # The running service re-reads it at once: risk released or kept, symbol freed.
    await store.announce_change(execution.id)
    return ResolveOutcome(said, "", execution.id)


def resolve(settings: Settings, args: argparse.Namespace) -> int:
    if getattr(args, "exit_price", None) is not None:
        if args.outcome is not None:
            raise CommandError("give either --as or --exit-price, not both", EX_USAGE)
        return resolve_position(settings, args)
    try:
        pattern = parse_id(str(args.execution_id))
    except IdSyntaxError as error:  # the parser checks it already; a direct call lands here
        raise CommandError(str(error), EX_USAGE) from None
    if args.outcome is None:
        raise CommandError("give --as OUTCOME (or --exit-price P for a closed position)", EX_USAGE)
    outcome = str(args.outcome)
    if outcome == "submitted" and args.order_id is None:
        raise CommandError("--as submitted needs the broker's --order-id", EX_USAGE)
    fill_price: Decimal | None = None
    if getattr(args, "fill_price", None) is not None:
        try:
            fill_price = parse_price(str(args.fill_price))
        except ValueError as error:
            raise CommandError(f"--fill-price: {error}", EX_USAGE) from None
    by = who(args)
    result = with_store(
        settings,
        lambda store: resolve_execution(
            store, settings, pattern, outcome, args.order_id, by, fill_price
        ),
    )
    for line in result.said:  # what the bridge says, whether or not it matched
        print(line)
    if result.problem:
        return fail(result.problem)
    print(f"execution {result.resolved} resolved as {outcome}")
    return 0


__all__ = [
    "OUTCOMES",
    "ResolveOutcome",
    "order_mismatch",
    "plan",
    "refusal",
    "resolve",
    "resolve_execution",
]
