"""Reading statuses from the bridge, sorted into what they mean for a poller (see `judge`).

- `read_list`: one `GET /orders` for every working order. Its outcome is an `OrderIndex`;
  `NoList` when the bridge has no such endpoint (404/405: a bridge from before March 2026) or
  its list is not usable (a malformed answer), so the due orders are read one by one instead;
  or `Unreachable` when the bridge cannot be asked (then nobody is read one by one either: the
  per-order reads would fail the same way, thousands of times).
- `read_order`: one `GET /orders/{id}`, allowed for an order the list lacks, for the second read
  of a `Cancelled`/`Inactive` answer, and for every order of a bridge without the list.
Repeated failures are logged through `log_repeated`: on change, then once a minute with a count.
"""

from __future__ import annotations

from dataclasses import dataclass

from trade_executor.broker.errors import BrokerError, BrokerUnavailable, EndpointMissing
from trade_executor.broker.orderbook import OrderIndex, order_index
from trade_executor.broker.protocol import BrokerReads
from trade_executor.domain.models import BrokerOrder, BrokerStatus, OrderStatus
from trade_executor.observability.logging import clear_repeated, log_repeated

from .judge import Lost, Observation, Poller, Seen, Unreachable

LIST_FAILED = ("poller", "list_failed")
READ_FAILED = ("poller", "read_failed")
STATUS_UNKNOWN = ("poller", "status_unknown")


@dataclass(frozen=True, slots=True)
class NoList:
    """The list cannot serve: `missing` when the bridge has no `GET /orders` at all."""

    missing: bool
    error: str


ListRead = OrderIndex | NoList | Unreachable


async def read_list(broker: BrokerReads) -> ListRead:
    try:
        index = await order_index(broker)
    except EndpointMissing as error:
        return NoList(missing=True, error=str(error))
    except BrokerUnavailable as error:
        log_repeated(LIST_FAILED, "poller.list_failed", error=str(error))
        return Unreachable(str(error))
    except BrokerError as error:
        log_repeated(LIST_FAILED, "poller.list_failed", error=str(error))
        return NoList(missing=False, error=str(error))
    clear_repeated(LIST_FAILED, "poller.list_recovered")
    return index


def from_list(order: BrokerOrder) -> Observation:
    if order.status is BrokerStatus.UNKNOWN:
        return _lost(f"order {order.order_id} is listed with status Unknown", order.order_id)
    return Seen(order.status, order.filled_qty, order.avg_fill_price)


async def read_order(broker: BrokerReads, poller: Poller) -> Observation:
    """`GET /orders/{id}` for `poller`'s order; the read is the second one if it is confirming."""
    order_id = poller.execution.order_id
    assert order_id is not None
    where = " (not in the order list)" if poller.missing else ""
    try:
        status: OrderStatus = await broker.order_status(order_id)
    except BrokerUnavailable as error:
        log_repeated(READ_FAILED, "poller.read_failed", error=str(error), order_id=order_id)
        return Unreachable(str(error))
    except BrokerError as error:
        return _lost(f"GET /orders/{order_id} failed{where}: {error.reason}", order_id)
    if status.status is BrokerStatus.UNKNOWN:
        # The bridge does not know the order (its own restart, say): never final, and never
        # allowed to overwrite fills already recorded.
        return _lost(f"the bridge answers Unknown for order {order_id}{where}", order_id)
    return Seen(status.status, status.filled_qty, status.avg_fill_price, poller.confirming)


def _lost(what: str, order_id: int) -> Lost:
    # One key for every order: after a bridge restart thousands of orders are lost at once, and
    # the give-up line names each of them anyway.
    log_repeated(STATUS_UNKNOWN, "poller.status_unknown", what=what, order_id=order_id)
    return Lost(what)
