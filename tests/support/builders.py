"""Builders of the domain's records for tests: the one place an `Execution` or a `BrokerOrder`
is put together from defaults. A module passes its own defaults (its symbol, its sizes) and each
test its changes; a field a record gains needs a default here only."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from trade_executor.domain.execution import Execution
from trade_executor.domain.models import Action, BrokerOrder, BrokerStatus
from trade_executor.domain.states import ExecutionState


def an_execution(state: ExecutionState = ExecutionState.RECEIVED, **fields: Any) -> Execution:
    """An execution of a new signal (fresh ids, `client_order_id` te-<id>), in `state`, with
    `fields` set."""
    ident = fields.pop("id", None) or uuid4()
    values: dict[str, Any] = {
        "id": ident,
        "signal_id": uuid4(),
        "approval_id": None,
        "state": state,
        "client_order_id": f"te-{ident.hex}",
        **fields,
    }
    return Execution(**values)


def a_broker_order(order_id: int, **fields: Any) -> BrokerOrder:
    """An entry of the bridge's order list: a working LMT buy of 1 AAPL unless `fields` say
    otherwise."""
    values: dict[str, Any] = {
        "order_id": order_id,
        "symbol": "AAPL",
        "action": Action.BUY,
        "order_type": "LMT",
        "quantity": 1,
        "status": BrokerStatus.SUBMITTED,
        **fields,
    }
    return BrokerOrder(**values)
