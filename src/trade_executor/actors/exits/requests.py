"""`close` requests from another shell, as messages for the exits.

`trade-executor close` does not touch the bridge itself: the running service's exits carry the
close out (they own the positions, and their orders go through the service's pacing). The
command sends the payload of `store.closing` on `trade_executor_control` and watches the ledger
for the outcome. A notification is lost when no service listens: the command then says so, and
nothing happens later by surprise.
"""

from __future__ import annotations

from trade_executor.actors.messages import CloseRequested
from trade_executor.store.closing import close_payload, parse_close_payload

__all__ = ["close_payload", "parse_close_request"]


def parse_close_request(payload: str) -> CloseRequested | None:
    """The request a control notification carries, or None if it is not a close request."""
    parsed = parse_close_payload(payload)
    if parsed is None:
        return None
    return CloseRequested(parsed.symbol, parsed.reason, parsed.requested_by)
