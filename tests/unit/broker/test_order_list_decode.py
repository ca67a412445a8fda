"""`orders` and `order_index` decode `GET /orders` straight into domain orders (issue 22: no
10,000 dicts and wire models at once). They must give exactly what the ordinary path (the
`OrdersWire` schema over the decoded JSON) gives: the same orders for a list with every quirk,
and the same refusal, word for word, for every malformed list."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.broker.test_client_mock import Bridge, answer, text
from trade_executor.broker import BrokerClient, MalformedResponse, wire
from trade_executor.broker.orderbook import index_orders, order_index
from trade_executor.domain.models import BrokerOrder

pytestmark = pytest.mark.anyio


async def ordinary(broker: BrokerClient) -> list[BrokerOrder]:
    """`GET /orders` through the schema, as the client read it before issue 22."""
    return await broker._t.read(
        "/orders", "GET /orders", wire.OrdersWire, lambda w: [o.to_domain() for o in w.orders]
    )


def order(order_id: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "order_id": order_id,
        "symbol": "AAPL",
        "action": "BUY",
        "order_type": "LMT",
        "quantity": 10,
        "limit_price": 150.25,
        "status": "Submitted",
        "filled_qty": 0,
        "remaining_qty": 10,
        "avg_fill_price": 0.0,
    }
    return {**base, **fields}


QUIRKY = [
    order(1, order_ref="te-1", created_at="2024-05-01T13:30:00.123456"),
    order(
        2, parent_id=1, order_type="STP", limit_price=None, stop_price=145, status="PreSubmitted"
    ),
    order(3, parent_id=1, limit_price=1.7976931348623157e308, status="ApiPending"),
    order(4, status="ValidationError", filled_qty=4, remaining_qty=6, avg_fill_price=150.5),
    order(0, symbol="OLD"),  # an order of the bridge's previous session
    order(5, parent_id=0, source="broker", can_cancel=True, extra={"order_id": 9, "status": "x"}),
    order(5, status="Filled", filled_qty=10, remaining_qty=0, updated_at="2024-05-01T14:00:00"),
]


async def test_the_decoded_index_is_the_one_orders_gives(anyio_backend: str) -> None:
    body = {"orders": QUIRKY, "count": len(QUIRKY)}
    async with Bridge(answer(200, body)).client() as broker:
        index = await order_index(broker)
        assert await broker.orders() == await ordinary(broker)
        expected = index_orders(await ordinary(broker))
    assert dict(index.by_id) == dict(expected.by_id)
    assert dict(index.children) == dict(expected.children)
    assert index.anonymous == expected.anonymous
    assert len(index) == 5 and index.children_of(1) == (2, 3)


MALFORMED = [
    '{"orders": [], "count": 2}',
    '{"orders": [], "count": "0"}',
    '{"orders": [], "count": true}',
    '{"orders": {}, "count": 0}',
    '{"count": 0}',
    '[{"order_id": 1, "status": "Submitted"}]',
    json.dumps({"orders": [order(1, quantity=-10)], "count": 1}),
    json.dumps({"orders": [order(1, symbol=5)], "count": 1}),
    json.dumps({"orders": [order(1), {"status": "Submitted"}], "count": 2}),
    json.dumps({"orders": [order(1), 7], "count": 2}),
    '{"orders": [NaN], "count": 1}',
    '{"orders": [',
]


@pytest.mark.parametrize("body", MALFORMED)
async def test_a_malformed_list_is_refused_as_before(anyio_backend: str, body: str) -> None:
    async with Bridge(text(200, body)).client() as broker:
        with pytest.raises(MalformedResponse) as before:
            await ordinary(broker)
        with pytest.raises(MalformedResponse) as listed:
            await broker.orders()
        with pytest.raises(MalformedResponse) as indexed:
            await order_index(broker)
    assert str(listed.value) == str(before.value)
    assert str(indexed.value) == str(before.value)
