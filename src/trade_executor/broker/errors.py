"""Errors of the IB bridge client. Every one names the endpoint, the HTTP status and a body excerpt.

- `BrokerUnavailable`: the bridge could not be reached or answered 5xx / 503 "not connected";
  for a read, after the retries; for an order, only when it is certain nothing was placed.
- `BrokerRejected`: the bridge refused an order or a cancel with a 4xx; `detail` is its reason.
- `AmbiguousSubmission`: an order POST whose outcome is unknown; reconcile by `order_ref`.
- `MalformedResponse`: the answer was not the documented JSON.
"""

from __future__ import annotations

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


class AmbiguousSubmission(BrokerError):
    """An order POST may or may not have placed the order: never resend, reconcile by order_ref."""

    def __init__(
        self,
        reason: str,
        *,
        endpoint: str,
        order_ref: str | None,
        status: int | None = None,
        excerpt: str = "",
    ) -> None:
        self.order_ref = order_ref
        super().__init__(
            f"{reason} (order_ref={order_ref!r})", endpoint=endpoint, status=status, excerpt=excerpt
        )


class MalformedResponse(BrokerError):
    """The bridge answered, but not with the documented JSON (HTML, truncated, wrong types...)."""
