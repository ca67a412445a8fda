"""`domain.truth`: what `close` and `protect` check against the broker before acting."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from trade_executor.domain.execution import Execution
from trade_executor.domain.models import Action, BrokerOrder, BrokerStatus, Position
from trade_executor.domain.states import ExecutionState
from trade_executor.domain.truth import check, working_orders_of


def held(quantity: int = 133, children: tuple[int, ...] = (11, 12)) -> Execution:
    return Execution(
        id=uuid4(),
        signal_id=uuid4(),
        approval_id=None,
        state=ExecutionState.FILLED,
        client_order_id="te-x",
        symbol="CRM",
        action="BUY",
        order_id=10,
        child_order_ids=children,
        quantity=quantity,
        filled_qty=quantity,
        entry_price=Decimal(150),
        position_state="open",
    )


def working(order_id: int, kind: str = "STP", symbol: str = "CRM") -> BrokerOrder:
    return BrokerOrder(order_id, symbol, Action.SELL, kind, 133, BrokerStatus.SUBMITTED)


def test_agreement_lists_every_working_order_of_the_symbol() -> None:
    found = check(
        "crm",
        [held()],
        [working(11, "LMT"), working(12), working(40), working(50, symbol="AAPL")],
        [Position("CRM", 133)],
    )
    assert found.agrees and found.working == (11, 12, 40)


def test_a_different_broker_quantity_names_both() -> None:
    found = check("CRM", [held(5)], [working(11), working(12)], [Position("CRM", 703)])
    assert not found.agrees
    assert found.refusal("close").startswith(
        "close CRM refused: the ledger holds 5 and the broker holds 703"
    )


def test_protective_orders_the_bridge_cannot_find_are_named() -> None:
    found = check("CRM", [held()], [], [Position("CRM", 133)])
    assert found.invisible_orders == (11, 12) and not found.agrees
    assert "protective order 11, 12 works and the bridge cannot find it" in found.refusal("protect")


def test_finished_and_unknown_orders_are_not_working() -> None:
    done = BrokerOrder(12, "CRM", Action.SELL, "STP", 133, BrokerStatus.FILLED, 133)
    lost = BrokerOrder(13, "CRM", Action.SELL, "STP", 133, BrokerStatus.UNKNOWN)
    restored = BrokerOrder(0, "CRM", Action.SELL, "STP", 133, BrokerStatus.SUBMITTED)
    assert working_orders_of("CRM", [done, lost, restored]) == []
