"""Following every position to its exit (CONTRACT section 5, "exits"): the stop-loss and
take-profit children after the entry fills, `close` and flatten, protection kept after a
timeout cancel, realized P&L and R multiple.

- `positions`: the pure core (a position's exit from its exit orders' fills; what a look calls
  for; the `trades.notes` text).
- `core`: the one owner of the follower's state (the positions followed, a close under way,
  sibling cancels, the work under way, the pollers' list read, flatten times acted on, the
  tallies): synchronous, fed what happened, answering what may be done.
- `follower`: the `ExitFollower` actor: its run, the rescan and the doors in (callbacks, control
  messages, `close_positions`); the work is done by the parts below, on its `shared.Shared` (the
  I/O handles and the core).
- `looks`: one look at every position against one order list (exits recorded, siblings
  cancelled, lost protection reported).
- `protection`: protection placed again after a timeout cancel; `unprotected` recorded.
- `closing`: `close`, flatten, and a close whose answer a crash lost.
- `flatten`: when FLATTEN_AT and the strategy instances' `flatten_by_close_time` are due.
- `requests`: `close` from another shell, over the control channel.

How an exit shows on the original's UI (its `trades` list, read by cmd/trader's
tradesListHandler and the frontend's useOrders.mapApiTrade): `order_status` keeps the entry's
broker status ("Filled"), because the frontend maps any unknown status to "pending" and the
trading guard counts `order_status = 'Filled'` as today's filled trades; `filled_qty` and
`avg_fill_price` keep the entry's fill (the blotter shows them as the order's). The exit goes
into `notes`, which the list API passes through untouched and nothing parses: "closed:
stop_loss 133 @ 145.0000; realized P&L -665.00 (-1.0000 R)". No `fills` row is written for an
exit: the original's execution-path check pairs each trade with its entry's fills, and an
exit fill under the same trade would read as a second entry fill.
"""

from .flatten import FlattenRule, FlattenSchedule
from .follower import ExitFollower, ExitStats, InstanceRules
from .positions import ExitReason, PositionState, assess, exit_of, trade_notes
from .requests import close_payload, parse_close_request

__all__ = [
    "ExitFollower",
    "ExitReason",
    "ExitStats",
    "FlattenRule",
    "FlattenSchedule",
    "InstanceRules",
    "PositionState",
    "assess",
    "close_payload",
    "exit_of",
    "parse_close_request",
    "trade_notes",
]
