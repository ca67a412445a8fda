"""Errors of the IB bridge client. Every one names the endpoint, the HTTP status and a body excerpt.

- `BrokerUnavailable`: the bridge could not be reached or answered 5xx / 503 "not connected";
  for a read, after the retries; for an order, only when no connection could be opened (any
  answer to an order POST other than a 4xx or the documented success is ambiguous).
- `BrokerRejected`: the bridge refused an order or a cancel with a 4xx; `detail` is its reason.
- `EndpointMissing` (a `BrokerRejected`): the bridge has no such endpoint (404 / 405 from its
  router): bridges from before March 2026 lack `/orders/bracket`, `GET /orders` and `DELETE`.
- `AmbiguousSubmission`: an order POST whose outcome is unknown; settle it with
  `broker.locate.locate_submission`, never by sending again.
- `MalformedResponse`: the answer was not the documented JSON.
"""

from __future__ import annotations

from datetime import datetime

EXCERPT_CHARS = 200


def excerpt(body: bytes | str | None, limit: int = EXCERPT_CHARS) -> str:
    """The start of a body, whitespace collapsed, for messages and logs."""
    if body is None:
        return ""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class BrokerError(Exception):
    """A bridge call failed; `endpoint` is e.g. "POST /orders", `status` None if no answer."""

    def __init__(
        self, reason: str, *, endpoint: str, status: int | None = None, excerpt: str = ""
    ) -> None:
        self.reason = reason
        self.endpoint = endpoint
        self.status = status
        self.excerpt = excerpt
        answered = f"status {status}" if status is not None else "no answer"
        message = f"{endpoint} ({answered}): {reason}"
        if excerpt:
            message += f"; body: {excerpt!r}"
        super().__init__(message)


class BrokerUnavailable(BrokerError):
    """The bridge is unreachable, failing (5xx) or not connected to IB (503). Nothing was placed."""


class BrokerRejected(BrokerError):
    """The bridge definitely refused the request (4xx); `detail` is its stated reason."""

    def __init__(
        self,
        reason: str,
        *,
        endpoint: str,
        status: int | None = None,
        excerpt: str = "",
        detail: str = "",
    ) -> None:
        self.detail = detail
        super().__init__(reason, endpoint=endpoint, status=status, excerpt=excerpt)


class EndpointMissing(BrokerRejected):
    """The bridge does not have `endpoint` (its router answered 404 or 405): nothing was done.

    `needed_for` names what wanted it, e.g. "ORDER_PROTECTION=bracket", for the message."""

    def __init__(
        self,
        *,
        endpoint: str,
        status: int | None = None,
        excerpt: str = "",
        needed_for: str | None = None,
    ) -> None:
        self.needed_for = needed_for
        lead = (
            f"{needed_for} needs {endpoint}, which this bridge lacks"
            if needed_for
            else f"this bridge has no {endpoint}"
        )
        reason = (
            f"{lead} (bridges from before March 2026 have no POST /orders/bracket, "
            "GET /orders or DELETE /orders/{id}): upgrade the bridge"
        )
        super().__init__(reason, endpoint=endpoint, status=status, excerpt=excerpt, detail=reason)


class AmbiguousSubmission(BrokerError):
    """An order POST may or may not have placed the order: never resend, reconcile by order_ref.

    `detail` is what the bridge said, if anything: its `{"detail": ...}` on a 5xx (the real bridge
    answers 500 with IB's reason when IB refused the order before placing it), else a description
    of the transport failure. `attempted_at` is the wall-clock time the request was started.
    """

    def __init__(
        self,
        reason: str,
        *,
        endpoint: str,
        order_ref: str | None,
        status: int | None = None,
        excerpt: str = "",
        detail: str | None = None,
        attempted_at: datetime | None = None,
    ) -> None:
        self.order_ref = order_ref
        self.detail = detail
        self.attempted_at = attempted_at
        super().__init__(
            f"{reason} (order_ref={order_ref!r})", endpoint=endpoint, status=status, excerpt=excerpt
        )


class MalformedResponse(BrokerError):
    """The bridge answered, but not with the documented JSON (HTML, truncated, wrong types...)."""
