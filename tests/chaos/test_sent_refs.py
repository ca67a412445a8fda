"""The chaos suite's own yardstick: `ThreadedBridge.parent_orders(sent_refs=True)` credits each
order the jax bridge placed to the POST that placed it (the bridge itself keeps no order_ref)."""

from __future__ import annotations

import httpx

from tests.support import ThreadedBridge


def post(bridge: ThreadedBridge, path: str, body: dict[str, object]) -> int:
    return httpx.post(bridge.url + path, json=body, timeout=10).status_code


def test_each_order_gets_the_order_ref_its_post_was_sent_with(bridge: ThreadedBridge) -> None:
    bridge.admin("POST", "/admin/symbols", {"unknown": ["NOPE"]})
    # Refused before placing (unknown symbol: 500): it must not be credited with an order.
    assert (
        post(
            bridge,
            "/orders",
            {"symbol": "NOPE", "action": "BUY", "quantity": 5, "order_ref": "ref-refused"},
        )
        == 500
    )
    assert (
        post(
            bridge,
            "/orders/bracket",
            {
                "symbol": "aaa",
                "action": "BUY",
                "quantity": 10,
                "entry_order_type": "LMT",
                "entry_limit_price": "100",
                "stop_loss": "99",
                "take_profit": "102",
                "order_ref": "ref-bracket",
            },
        )
        == 200
    )
    # Same symbol and size, refused before placing (a limit order without its price: 500):
    # answered before the next order was taken, so never credited with it.
    assert (
        post(
            bridge,
            "/orders",
            {
                "symbol": "AAA",
                "action": "BUY",
                "quantity": 3,
                "order_type": "LMT",
                "order_ref": "ref-refused-too",
            },
        )
        == 500
    )
    # Same symbol, other quantity, then the same again: told apart by quantity and arrival.
    assert (
        post(
            bridge,
            "/orders",
            {"symbol": "AAA", "action": "BUY", "quantity": 3, "order_ref": "ref-first"},
        )
        == 200
    )
    assert (
        post(
            bridge,
            "/orders",
            {"symbol": "AAA", "action": "BUY", "quantity": 3, "order_ref": "ref-second"},
        )
        == 200
    )
    # Placed by the bridge itself, not by any order POST.
    assert post(bridge, "/positions/AAA/close", {}) == 200

    plain = bridge.parent_orders()
    assert {o["order_ref"] for o in plain} <= {"manual-entry", "manual-close"}

    parents = sorted(bridge.parent_orders(sent_refs=True), key=lambda o: o["order_id"])
    entries = [o for o in parents if o["bridge_order_ref"] == "manual-entry"]
    assert [(o["symbol"], o["quantity"], o["order_ref"]) for o in entries] == [
        ("AAA", 10, "ref-bracket"),
        ("AAA", 3, "ref-first"),
        ("AAA", 3, "ref-second"),
    ]
    [close] = [o for o in parents if o["bridge_order_ref"] == "manual-close"]
    assert close["order_ref"] is None
    # Children keep the bridge's own stamp.
    children = [o for o in bridge.orders(sent_refs=True) if o.get("parent_id") not in (None, 0)]
    assert children and all(o["order_ref"] == "manual-bracket-child" for o in children)
