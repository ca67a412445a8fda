"""locate_submission: settling a lost POST through the real bridge's order list.

Lists are the real bridge's JSON (unset prices as 1.797e+308, every entry stamped
"manual-entry", children "manual-bracket-child"), read through the client.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from tests.support import realbridge as rb
from trade_executor.broker import (
    Adopted,
    Ambiguous,
    BrokerClient,
    NotPlaced,
    SubmissionKey,
    Unreachable,
    locate_submission,
)
from trade_executor.domain.models import (
    Action,
    AnyOrderRequest,
    BracketOrderRequest,
    OrderRequest,
    OrderType,
)

pytestmark = pytest.mark.anyio

ATTEMPT = datetime(2026, 3, 9, 14, 30, tzinfo=UTC)
AFTER = "2026-03-09T14:30:00.700000+00:00"  # the bridge stamped the order 0.7 s later
LONG_BEFORE = "2026-03-09T14:20:00+00:00"

LMT = OrderRequest("AAPL", Action.BUY, 10, OrderType.LMT, Decimal("150.12"), order_ref="e-lmt")
STP = OrderRequest(
    "AAPL", Action.SELL, 10, OrderType.STP, stop_price=Decimal("140.5"), order_ref="e-stp"
)
MKT = OrderRequest("AAPL", Action.BUY, 10, OrderType.MKT, order_ref="e-mkt")
MKT_BRACKET = BracketOrderRequest(
    "AAPL", Action.BUY, 5, OrderType.MKT, Decimal(145), Decimal(160), order_ref="e-bmkt"
)
LMT_BRACKET = BracketOrderRequest(
    "AAPL",
    Action.BUY,
    5,
    OrderType.LMT,
    Decimal(145),
    Decimal(160),
    entry_limit_price=Decimal(150),
    order_ref="e-blmt",
)


class ListingBridge:
    """Answers `GET /orders` with each listing in turn (the last one repeats)."""

    def __init__(self, *listings: httpx.Response) -> None:
        self.listings = list(listings)
        self.reads = 0
        self.other_requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if (request.method, request.url.path) != ("GET", "/orders"):
            self.other_requests.append(request)
            return rb.json_answer(404, rb.NOT_FOUND)
        answer = self.listings[min(self.reads, len(self.listings) - 1)]
        self.reads += 1
        return answer


async def locate(
    bridge: ListingBridge,
    request: AnyOrderRequest,
    *,
    detail: str | None = None,
    settle: timedelta = timedelta(0),
    attempted_at: datetime = ATTEMPT,
) -> object:
    """Without a settle time the clock stands 30 s after the attempt; with one it is real."""
    later = attempted_at + timedelta(seconds=30)
    async with BrokerClient(
        "http://bridge.test",
        transport=httpx.MockTransport(bridge),
        read_retries=0,
        backoff_base=0.0,
    ) as broker:
        result = await locate_submission(
            broker,
            SubmissionKey.of(request),
            attempted_at=attempted_at,
            detail=detail,
            settle=settle,
            reread_delay=0.0,
            now=(lambda: later) if settle == timedelta(0) else _utcnow,
        )
    assert bridge.other_requests == []  # it only ever reads the list
    return result


def _utcnow() -> datetime:
    return datetime.now(UTC)


# ---- adopted: one per order type, prices unset where IB leaves them ---------------------------


async def test_a_lost_limit_order_is_adopted_by_its_limit_price(anyio_backend: str) -> None:
    listing = rb.order_list(
        rb.listed(40, limit_price=150.11, created_at=AFTER),  # a cent away
        rb.listed(41, limit_price=150.12, created_at=AFTER),
        rb.listed(42, order_type="MKT", created_at=AFTER),
    )
    result = await locate(ListingBridge(listing), LMT)
    assert isinstance(result, Adopted)
    assert (result.order.order_id, result.child_order_ids, result.matched_by) == (
        41,
        (),
        "fallback",
    )
    assert result.placed.order_id == 41


async def test_a_lost_stop_order_is_adopted_by_its_stop_price(anyio_backend: str) -> None:
    listing = rb.order_list(
        # same side, size and number, but as a limit price: not the stop order
        rb.listed(50, action="SELL", limit_price=140.5, created_at=AFTER),
        rb.listed(51, action="SELL", order_type="STP", stop_price=140.5, created_at=AFTER),
    )
    result = await locate(ListingBridge(listing), STP)
    assert isinstance(result, Adopted) and result.order.order_id == 51


async def test_a_lost_market_order_matches_an_order_whose_prices_are_unset(
    anyio_backend: str,
) -> None:
    listing = rb.order_list(
        rb.listed(60, limit_price=150.12, created_at=AFTER),
        rb.listed(61, order_type="MKT", created_at=AFTER),
    )
    assert rb.UNSET_TEXT.encode() in listing.content
    result = await locate(ListingBridge(listing), MKT)
    assert isinstance(result, Adopted) and result.order.order_id == 61


async def test_a_lost_market_bracket_is_adopted_with_its_children(anyio_backend: str) -> None:
    listing = rb.order_list(
        *rb.bracket(7, entry_type="MKT", entry_price=None, created_at=AFTER),
        rb.listed(3, action="SELL", order_type="STP", stop_price=140.0, created_at=AFTER),
    )
    result = await locate(ListingBridge(listing), MKT_BRACKET)
    assert isinstance(result, Adopted)
    assert (result.order.order_id, result.child_order_ids) == (7, (8, 9))
    assert result.placed.child_order_ids == (8, 9)


async def test_a_lost_limit_bracket_is_adopted_with_its_children(anyio_backend: str) -> None:
    listing = rb.order_list(*rb.bracket(4, entry_price=150.0, created_at=AFTER))
    result = await locate(ListingBridge(listing), LMT_BRACKET)
    assert isinstance(result, Adopted)
    assert (result.order.order_id, result.child_order_ids) == (4, (5, 6))


async def test_a_bridge_that_keeps_the_reference_is_matched_by_it(anyio_backend: str) -> None:
    listing = rb.order_list(
        rb.listed(70, limit_price=150.12, order_ref="e-lmt", created_at=LONG_BEFORE),
        rb.listed(71, limit_price=150.12, created_at=AFTER),
    )
    result = await locate(ListingBridge(listing), LMT)
    assert isinstance(result, Adopted)
    assert (result.order.order_id, result.matched_by) == (70, "order_ref")


async def test_an_order_listed_late_is_still_adopted(anyio_backend: str) -> None:
    bridge = ListingBridge(
        rb.order_list(), rb.order_list(rb.listed(80, limit_price=150.12, created_at=AFTER))
    )
    result = await locate(bridge, LMT)
    assert isinstance(result, Adopted) and result.order.order_id == 80
    assert bridge.reads == 2


# ---- not placed ----------------------------------------------------------------------------


async def test_not_listed_after_the_rereads_is_not_placed_with_the_bridges_reason(
    anyio_backend: str,
) -> None:
    bridge = ListingBridge(
        rb.order_list(
            rb.listed(90, limit_price=150.12, created_at=LONG_BEFORE),  # an older twin
            rb.listed(91, symbol="MSFT", limit_price=150.12, created_at=AFTER),
        )
    )
    reason = "Could not find contract for symbol AAPL"
    result = await locate(bridge, LMT, detail=reason)
    assert result == NotPlaced(reason)
    assert result.failure_reason == f"not_placed: {reason}"
    assert bridge.reads == 3  # the first read and two re-reads


async def test_not_placed_without_a_reason_says_what_was_seen(anyio_backend: str) -> None:
    result = await locate(ListingBridge(rb.order_list()), MKT)
    assert isinstance(result, NotPlaced) and "does not show" in result.detail


async def test_not_placed_waits_for_the_bridge_to_finish_handling_the_post(
    anyio_backend: str,
) -> None:
    started = datetime.now(UTC)
    bridge = ListingBridge(rb.order_list())
    result = await locate(bridge, LMT, settle=timedelta(milliseconds=200), attempted_at=started)
    assert isinstance(result, NotPlaced)
    assert bridge.reads >= 4  # the three reads, then at least one after the settle time


# ---- ambiguous and unreachable ---------------------------------------------------------------


async def test_two_lookalikes_are_ambiguous(anyio_backend: str) -> None:
    listing = rb.order_list(
        rb.listed(100, limit_price=150.12, created_at=AFTER),
        rb.listed(101, limit_price=150.12, created_at=AFTER),
    )
    result = await locate(ListingBridge(listing), LMT)
    assert isinstance(result, Ambiguous) and result.candidate_ids == (100, 101)
    assert result.unknown_reason == "ambiguous_submission: 2 orders at the broker match: 100, 101"


async def test_a_match_without_an_order_id_is_ambiguous(anyio_backend: str) -> None:
    listing = rb.order_list(rb.listed(0, limit_price=150.12, status="Filled", created_at=AFTER))
    result = await locate(ListingBridge(listing), LMT)
    assert isinstance(result, Ambiguous) and result.candidate_ids == (0,)
    assert "without an order id" in result.reason


async def test_an_unreadable_list_is_unreachable(anyio_backend: str) -> None:
    result = await locate(ListingBridge(rb.detail(503, rb.NOT_CONNECTED)), LMT)
    assert isinstance(result, Unreachable) and rb.NOT_CONNECTED in result.reason


async def test_a_bridge_without_a_list_is_unreachable(anyio_backend: str) -> None:
    result = await locate(ListingBridge(rb.method_not_allowed("POST")), LMT)
    assert isinstance(result, Unreachable) and "GET /orders" in result.reason


async def test_a_list_that_fails_on_a_reread_is_unreachable_not_placed(anyio_backend: str) -> None:
    bridge = ListingBridge(rb.order_list(), rb.detail(500, "boom"))
    result = await locate(bridge, LMT)
    assert isinstance(result, Unreachable)


async def test_a_naive_attempt_time_is_refused(anyio_backend: str) -> None:
    with pytest.raises(ValueError, match="aware"):
        await locate(ListingBridge(rb.order_list()), LMT, attempted_at=datetime(2026, 3, 9))
