"""`close` requests from another shell: the payload on the control channel, and its parsing.

`trade-executor close` does not touch the bridge itself: the running service's exits carry the
close out (they own the positions, and their orders go through the service's pacing). The
command sends `{"close": {"symbol": "AAPL" | null, "reason": "...", "by": "..."}}` on
`trade_executor_control` and watches the ledger for the outcome. A notification is lost when no
service listens: the command then says so, and nothing happens later by surprise.
"""

from __future__ import annotations

import json

from trade_executor.actors.messages import CloseRequested

MAX_PAYLOAD = 8000
MAX_TEXT = 500


def close_payload(symbol: str | None, reason: str, requested_by: str) -> str:
    body = {"close": {"symbol": symbol, "reason": reason[:MAX_TEXT], "by": requested_by[:200]}}
    return json.dumps(body)


def parse_close_request(payload: str) -> CloseRequested | None:
    """The request a control notification carries, or None if it is not a close request."""
    if len(payload) > MAX_PAYLOAD:
        return None
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("close"), dict):
        return None
    body = data["close"]
    symbol, reason, by = body.get("symbol"), body.get("reason"), body.get("by")
    if symbol is not None and (not isinstance(symbol, str) or not symbol.strip()):
        return None
    if not isinstance(reason, str) or not reason.strip() or not isinstance(by, str):
        return None
    normal = symbol.strip().upper() if symbol is not None else None
    return CloseRequested(normal, reason.strip()[:MAX_TEXT], by[:200])
