"""The `close` request's payload on the control channel (`trade_executor_control`), written by
the `close` command and read by the running service's listener.

`{"kind": "close", "close": {"symbol": "AAPL" | null, "reason": "...", "by": "..."}}`; `symbol`
null means every open position. A version before `kind` (see `store.control_payloads`) wrote the
same object without it; both parse. Payloads are untrusted: anything else parses to None.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_PAYLOAD = 8000  # PostgreSQL's NOTIFY payload limit
MAX_TEXT = 500


@dataclass(frozen=True, slots=True)
class ClosePayload:
    symbol: str | None  # stripped and upper-cased; None: all
    reason: str
    requested_by: str


def close_payload(symbol: str | None, reason: str, requested_by: str) -> str:
    body = {
        "kind": "close",
        "close": {"symbol": symbol, "reason": reason[:MAX_TEXT], "by": requested_by[:200]},
    }
    return json.dumps(body)


def parse_close_payload(payload: str) -> ClosePayload | None:
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
    return ClosePayload(normal, reason.strip()[:MAX_TEXT], by[:200])
