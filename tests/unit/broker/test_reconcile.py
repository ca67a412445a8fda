"""match_order over the order list: by order_ref first, else a unique look-alike placed after
the attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.support.builders import a_broker_order
from trade_executor.broker import BrokerClient, SubmissionKey, match_order, match_submission
from trade_executor.broker.jsonnum import dumps
from trade_executor.broker.unset import IB_UNSET_DOUBLE
from trade_executor.domain.models import (
    Action,
    BracketOrderRequest,
    BrokerOrder,
    OrderRequest,
    OrderType,
)

ATTEMPT = datetime(2024, 5, 1, 13, 30, tzinfo=UTC)
AFTER = ATTEMPT + timedelta(milliseconds=300)


def order(order_id: int, **overrides: Any) -> BrokerOrder:
    fields: dict[str, Any] = {
        "quantity": 10,
        "limit_price": Decimal("150.00"),
        "order_ref": "manual-entry",
        "created_at": AFTER,
    }
    fields.update(overrides)
    return a_broker_order(order_id, **fields)


def find(orders: list[BrokerOrder], ref: str = "exec-1", price: str | None = "150") -> Any:
    return match_order(
        orders,
        ref,
        symbol="AAPL",
        action=Action.BUY,
        quantity=10,
        price=None if price is None else Decimal(price),
        placed_after=ATTEMPT,
    )


def test_the_reference_wins() -> None:
    mine = order(2, order_ref="exec-1", quantity=99)  # even if the rest differs
    result = find([order(1), mine])
    assert (result.found, result.ambiguous, result.matched_by) == (mine, False, "order_ref")


def test_bracket_children_sharing_the_reference_do_not_count() -> None:
    parent = order(5, order_ref="exec-1")
    children = [
        order(6, order_ref="exec-1", parent_id=5),
        order(7, order_ref="exec-1", parent_id=5),
    ]
    assert find([parent, *children]).found == parent


def test_a_unique_lookalike_is_found_when_the_bridge_ignores_references() -> None:
    result = find([order(1), order(2, symbol="MSFT"), order(3, action=Action.SELL)])
    assert result.found is not None and result.found.order_id == 1
    assert result.matched_by == "fallback"


def test_two_lookalikes_are_ambiguous() -> None:
    result = find([order(1), order(2, order_ref=None)])
    assert result.found is None
    assert result.ambiguous is True
    assert result.candidate_ids == (1, 2)


def test_two_orders_with_the_reference_are_ambiguous() -> None:
    result = find([order(1, order_ref="exec-1"), order(2, order_ref="exec-1")])
    assert (result.found, result.ambiguous) == (None, True)


@pytest.mark.parametrize(
    "other",
    [
        order(1, created_at=ATTEMPT - timedelta(microseconds=1)),  # placed before the attempt
        order(1, created_at=None),  # cannot be shown to be recent
        order(1, quantity=11),
        order(1, limit_price=Decimal("150.01")),
        order(1, parent_id=9),
        order(1, order_ref="exec-someone-else"),  # another execution's order
    ],
)
def test_no_match_is_none_and_not_ambiguous(other: BrokerOrder) -> None:
    result = find([other])
    assert (result.found, result.ambiguous) == (None, False)


def test_prices_compare_to_the_cent_and_stop_prices_count() -> None:
    stop = order(1, order_type="STP", limit_price=None, stop_price=Decimal("150.001"))
    assert find([stop], price="150.00").found == stop


def test_a_market_order_matches_only_priceless_orders() -> None:
    market = order(1, order_type="MKT", limit_price=None)
    assert find([market, order(2)], price=None).found == market


def test_an_empty_listing_finds_nothing() -> None:
    assert find([]).found is None


@pytest.mark.anyio
async def test_find_order_reads_the_listing(anyio_backend: str) -> None:
    listing = {
        "orders": [
            {
                "order_id": 77,
                "symbol": "AAPL",
                "action": "BUY",
                "order_type": "LMT",
                "quantity": 10,
                "limit_price": Decimal("150.0"),
                "stop_price": None,
                "status": "Submitted",
                "filled_qty": 0,
                "remaining_qty": 10,
                "avg_fill_price": Decimal("0.0"),
                "parent_id": None,
                "order_ref": "manual-entry",
                "created_at": "2024-05-01T13:30:00.500000",
                "updated_at": "2024-05-01T13:30:00.500000",
            }
        ],
        "count": 1,
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=dumps(listing)))
    async with BrokerClient("http://x", 1, transport=transport) as broker:
        result = match_order(
            await broker.orders(),
            "exec-1",
            symbol="AAPL",
            action=Action.BUY,
            quantity=10,
            price=Decimal("150"),
            placed_after=ATTEMPT,
        )
    assert result.found is not None and result.found.order_id == 77


# ---- order types, IB's unset price, order id 0 -------------------------------------------------


def typed(orders: list[BrokerOrder], kind: OrderType, price: str | None) -> Any:
    key = SubmissionKey(
        "exec-1", "AAPL", Action.BUY, 10, kind, None if price is None else Decimal(price)
    )
    return match_submission(orders, key, placed_after=ATTEMPT)


def test_limit_orders_match_on_the_limit_price_only() -> None:
    stop_at_150 = order(1, order_type="STP", limit_price=None, stop_price=Decimal("150.00"))
    limit_at_150 = order(2)
    assert typed([stop_at_150, limit_at_150], OrderType.LMT, "150.004").found == limit_at_150


def test_stop_orders_match_on_the_stop_price_only() -> None:
    stop_at_150 = order(1, order_type="STP", limit_price=None, stop_price=Decimal("150.00"))
    limit_at_150 = order(2)
    assert typed([stop_at_150, limit_at_150], OrderType.STP, "150").found == stop_at_150


def test_a_market_order_matches_an_order_with_ibs_unset_prices() -> None:
    # BrokerOrders built elsewhere may still carry the sentinel: never quantized, never a price
    market = order(3, order_type="MKT", limit_price=IB_UNSET_DOUBLE, stop_price=IB_UNSET_DOUBLE)
    limit = order(4, stop_price=IB_UNSET_DOUBLE)
    assert typed([market, limit], OrderType.MKT, None).found == market
    assert typed([market, limit], OrderType.LMT, "150").found == limit


def test_the_order_type_must_agree() -> None:
    assert typed([order(5)], OrderType.STP, "150").found is None


def test_a_single_match_without_an_order_id_is_ambiguous() -> None:
    result = typed([order(0)], OrderType.LMT, "150")
    assert (result.found, result.ambiguous, result.candidate_ids) == (None, True, (0,))


def test_the_key_of_each_request_names_its_entry_price() -> None:
    price = Decimal("12.5")
    lmt = OrderRequest("A", Action.BUY, 1, OrderType.LMT, limit_price=price, order_ref="r")
    stp = OrderRequest("A", Action.SELL, 1, OrderType.STP, stop_price=price, order_ref="r")
    mkt = OrderRequest("A", Action.BUY, 1, OrderType.MKT, order_ref="r")
    b_lmt = BracketOrderRequest(
        "A", Action.BUY, 1, OrderType.LMT, Decimal(1), Decimal(20), price, "r"
    )
    b_mkt = BracketOrderRequest("A", Action.BUY, 1, OrderType.MKT, Decimal(1), Decimal(20))
    keys = [SubmissionKey.of(r) for r in (lmt, stp, mkt, b_lmt)]
    assert [(k.order_type, k.price) for k in keys] == [
        (OrderType.LMT, price),
        (OrderType.STP, price),
        (OrderType.MKT, None),
        (OrderType.LMT, price),
    ]
    assert SubmissionKey.of(b_mkt, order_ref="given").order_ref == "given"
