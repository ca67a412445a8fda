"""`resolve`: an operator settles an execution the service cannot settle itself (CONTRACT
sections 2 and 5, "operator settlement").

What may be resolved: an `unknown` execution at any time; one in `submitting`, `submitted` or
`partially_filled` only once it is past the bound of its state (`StateBounds`: before that the
service is still settling it, and the refusal names the bound). Final executions never.

`as_` failed|submitted|filled|cancelled (`--as`); `submitted` needs an order id. With an
order id the order is looked up at the bridge (`GET /orders`) and must match the execution's
symbol, side and quantity; what the bridge says is said (`said`), and a mismatch is refused.
The change is one guarded transition (`Transition.RESOLVE_*`, so a row that moved meanwhile is
not overwritten), announced in the same transaction (`Store.apply(announce=True)`: PostgreSQL
delivers the notification at the commit), so the running service's executor re-reads it at
once: risk released and symbol freed for `failed` and for `cancelled` without a fill, risk
kept for `filled`, the order followed for `submitted`.

The id is an execution id, a signal id, or an unambiguous prefix of either (`lookup`, as
`show` reads it). Every refusal is a `Refusal` (one sentence; the command line exits 1 with it,
and 2 for a malformed id, see `commands.resolve_command`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError
from trade_executor.config.limits import state_bounds
from trade_executor.domain.bounds import StateBounds
from trade_executor.domain.breaker import RESOLVED_PREFIX
from trade_executor.domain.execution import Changes, Execution
from trade_executor.domain.models import BrokerOrder, BrokerStatus
from trade_executor.domain.states import ExecutionState, IllegalTransition, Transition
from trade_executor.ops.common import Context, Refusal
from trade_executor.ops.exit_price import (
    ExitPriceGiven,
    resolve_exit_price,
)
from trade_executor.store.lookup import (
    ExecutionLookupError,
    IdPattern,
    IdSyntaxError,
    NoSuchExecution,
    find_execution,
    parse_id,
)

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


async def _bridge_order(bridge_url: str, timeout: float, order_id: int) -> BrokerOrder | str:
    """The bridge's listing of `order_id`, or one sentence saying why it cannot be checked."""
    try:
        async with BrokerClient(bridge_url, timeout) as broker:
            orders = await broker.orders()
    except (BrokerError, ValueError) as error:
        return f"cannot check order {order_id} at the bridge ({bridge_url}): {error}"
    for order in orders:
        if order.order_id == order_id and order.parent_id in (None, 0):
            return order
    return (
        f"order {order_id} is not in the bridge's order list, so its symbol, side and quantity "
        "cannot be checked"
    )


@dataclass(frozen=True, slots=True)
class Resolved:
    """An execution resolved as `outcome`, and what the bridge said of its order (when asked)."""

    execution_id: UUID
    outcome: str
    said: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        return f"execution {self.execution_id} resolved as {self.outcome}"


async def resolve(
    ctx: Context,
    ref: IdPattern | str,
    as_: str | None = None,
    *,
    by: str,
    order_id: int | None = None,
    fill_price: Decimal | None = None,
    exit_price: Decimal | None = None,
) -> Resolved | ExitPriceGiven | Refusal:
    """Settle the execution `ref` names (an id, a signal id or a prefix of either) as `as_`
    (one of OUTCOMES: `submitted` with the broker's `order_id`, `filled` with a price,
    `fill_price` or the bridge's order's: never "filled 264 @ -"), or give the exit price of
    its position (`exit_price`, see `ops.exit_price`). The checks, the guarded transition and
    its announcement to the running service; a Refusal (one sentence) changes nothing."""
    if exit_price is not None:
        if as_ is not None:
            return Refusal("give either --as or --exit-price, not both")
        pattern = _pattern(ref)
        if isinstance(pattern, Refusal):
            return pattern
        return await resolve_exit_price(ctx, pattern, None, exit_price, by)
    if as_ is None:
        return Refusal("give --as OUTCOME (or --exit-price P for a closed position)")
    pattern = _pattern(ref)
    if isinstance(pattern, Refusal):
        return pattern
    return await _resolve_as(ctx, pattern, as_, order_id, by, fill_price)


def _pattern(ref: IdPattern | str) -> IdPattern | Refusal:
    if isinstance(ref, IdPattern):
        return ref
    try:
        return parse_id(ref)
    except IdSyntaxError as error:
        return Refusal(str(error))


async def _resolve_as(
    ctx: Context,
    pattern: IdPattern,
    outcome: str,
    order_id: int | None,
    by: str,
    fill_price: Decimal | None,
) -> Resolved | Refusal:
    said: list[str] = []

    def refused(problem: str, *, not_found: bool = False) -> Refusal:
        return Refusal(problem, tuple(said), not_found)

    if outcome not in OUTCOMES:
        return refused(f"cannot resolve as {outcome!r}: give one of {', '.join(OUTCOMES)}")
    if outcome == "submitted" and order_id is None:
        return refused("--as submitted needs the broker's --order-id")
    store, settings = ctx.store, ctx.settings
    bounds = state_bounds(settings)
    try:
        execution = await find_execution(store, pattern)
    except NoSuchExecution as error:
        return refused(f"execution {pattern.text} not found: {error}", not_found=True)
    except ExecutionLookupError as error:  # ambiguous: it names the candidates
        return refused(str(error))
    now = ctx.clock()
    problem = refusal(execution, outcome, bounds, now)
    if problem:
        return refused(problem)
    order: BrokerOrder | None = None
    if order_id is not None:
        looked_up = await _bridge_order(ctx.bridge_url, settings.ib_bridge_timeout, order_id)
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
        # Announced in the transition's own transaction: the running service re-reads it at
        # its commit (risk released or kept, symbol freed), and a change that did not happen
        # is never announced.
        await store.apply(
            execution.id,
            resolution.transition,
            resolution.changes,
            resolution.detail,
            announce=True,
        )
    except IllegalTransition as moved:
        now_in = moved.current.value if moved.current is not None else "gone"
        return refused(f"execution {execution.id} changed meanwhile (it is {now_in}): not resolved")
    return Resolved(execution.id, outcome, tuple(said))


__all__ = [
    "OUTCOMES",
    "Resolved",
    "order_mismatch",
    "plan",
    "refusal",
    "resolve",
]
