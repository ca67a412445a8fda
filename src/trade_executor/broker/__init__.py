"""The IB bridge: its HTTP client (`BrokerClient`) and, in `broker.paper`, a simulated bridge."""

from .client import BrokerClient, RequestHook
from .errors import (
    AmbiguousSubmission,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    MalformedResponse,
)
from .reconcile import FindResult, match_order

__all__ = [
    "AmbiguousSubmission",
    "BrokerClient",
    "BrokerError",
    "BrokerRejected",
    "BrokerUnavailable",
    "FindResult",
    "MalformedResponse",
    "RequestHook",
    "match_order",
]
