"""Settling an ambiguous submission through the bridge's order list (CONTRACT section 5).

A POST whose answer was lost (timeout, reset, a 5xx) may or may not have placed the order. It is
never sent again: `locate_submission` reads `GET /orders` and says which of four things is true.

- `Adopted`: exactly one listed order matches (by `order_ref`, else a unique look-alike, see
  `reconcile`); its bracket children come with it.
- `NotPlaced`: the bridge answered the list, and after a few reads spread over the time the
  bridge may still have been handling the POST, no such order is there.
- `Ambiguous`: several orders match, or the match has no order id: a person must decide.
- `Unreachable`: the list could not be read (bridge down, or a bridge without `GET /orders`):
  nothing can be concluded yet.

Guarantees: it only reads; it never returns `NotPlaced` before `attempted_at + settle` (a handler
still running, e.g. identifying a new symbol for up to 5 s, could place the order late) nor on
fewer than `1 + rereads` successful reads; it never sleeps once it has an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

import anyio

from trade_executor.clock import Clock, utcnow
from trade_executor.domain.models import BrokerOrder, PlacedOrder

from .errors import BrokerError, EndpointMissing
from .reconcile import SubmissionKey, children_of, match_submission

# The bridge's clock against ours, for the created_at comparison of the fallback match.
CLOCK_SKEW = timedelta(seconds=5)
# The real bridge can take 5 s to identify a new symbol before it places anything, plus its
# fixed sleeps; an order may appear in its list this long after the POST started.
SETTLE = timedelta(seconds=6)
REREADS = 2
REREAD_DELAY = 1.0


class OrderLister(Protocol):
    async def orders(self) -> list[BrokerOrder]: ...


@dataclass(frozen=True, slots=True)
class Adopted:
    order: BrokerOrder
    child_order_ids: tuple[int, ...]
    matched_by: Literal["order_ref", "fallback"]

    @property
    def placed(self) -> PlacedOrder:
        """The order as if the POST had answered: what the executor records."""
        return PlacedOrder(self.order.order_id, self.child_order_ids, "adopted by reconciliation")


@dataclass(frozen=True, slots=True)
class NotPlaced:
    """`detail` is the bridge's own reason when the failed POST carried one (CONTRACT: the
    execution ends `failed: not_placed: <detail>`)."""

    detail: str

    @property
    def failure_reason(self) -> str:
        """The execution's `reason` for `failed` (CONTRACT section 4)."""
        return f"not_placed: {self.detail}"


@dataclass(frozen=True, slots=True)
class Ambiguous:
    reason: str
    candidate_ids: tuple[int, ...]

    @property
    def unknown_reason(self) -> str:
        """The execution's `reason` for `unknown`."""
        return f"ambiguous_submission: {self.reason}"


@dataclass(frozen=True, slots=True)
class Unreachable:
    """`permanent`: the bridge has no order list at all (before March 2026), so asking again
    can never settle the submission."""

    reason: str
    permanent: bool = False


Located = Adopted | NotPlaced | Ambiguous | Unreachable


async def locate_submission(
    broker: OrderLister,
    key: SubmissionKey,
    *,
    attempted_at: datetime,
    detail: str | None = None,
    clock_skew: timedelta = CLOCK_SKEW,
    settle: timedelta = SETTLE,
    rereads: int = REREADS,
    reread_delay: float = REREAD_DELAY,
    now: Clock = utcnow,
) -> Located:
    """Find what the ambiguous POST of `key`, started at `attempted_at` (aware), left behind.

    `detail` is the failed POST's `AmbiguousSubmission.detail`, carried into `NotPlaced`."""
    if attempted_at.tzinfo is None:
        raise ValueError("attempted_at must be timezone-aware")
    placed_after = attempted_at - clock_skew
    not_before = attempted_at + settle
    reads = 0
    while True:
        try:
            orders = await broker.orders()
        except EndpointMissing as error:
            return Unreachable(f"cannot look the order up: {error.reason}", permanent=True)
        except BrokerError as error:
            return Unreachable(f"the order list could not be read: {error}")
        reads += 1
        found = match_submission(orders, key, placed_after=placed_after)
        if found.found is not None:
            assert found.matched_by is not None
            order = found.found
            return Adopted(order, children_of(orders, order.order_id), found.matched_by)
        if found.ambiguous:
            return Ambiguous(_ambiguity(found.candidate_ids), found.candidate_ids)
        left = (not_before - now()).total_seconds()
        if reads > rereads and left <= 0:
            return NotPlaced(detail or "the bridge's order list does not show the order")
        # A slow bridge may list the order late: read again after a short delay, and at least
        # once more after the settle time.
        await anyio.sleep(reread_delay if reads <= rereads else left)


def _ambiguity(candidate_ids: tuple[int, ...]) -> str:
    if len(candidate_ids) == 1:
        return "the matching order is listed without an order id (a previous bridge session's)"
    ids = ", ".join(str(i) for i in candidate_ids)
    return f"{len(candidate_ids)} orders at the broker match: {ids}"
