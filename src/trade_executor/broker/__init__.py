"""The IB bridge: its HTTP client (`BrokerClient`), the seam the actors use (`Broker`), and, in
`broker.paper`, a simulated bridge."""

from .capabilities import BridgeCapabilities
from .client import DEFAULT_TIMEOUT, BrokerClient
from .errors import (
    AmbiguousSubmission,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    EndpointMissing,
    MalformedResponse,
)
from .locate import Adopted, Ambiguous, Located, NotPlaced, Unreachable, locate_submission
from .orderbook import OrderIndex, index_orders, order_index
from .protocol import Broker, BrokerOrders, BrokerReads
from .reconcile import FindResult, SubmissionKey, match_order, match_submission
from .transport import RequestHook
from .unset import is_unset, value_or_none

__all__ = [
    "DEFAULT_TIMEOUT",
    "Adopted",
    "Ambiguous",
    "AmbiguousSubmission",
    "BridgeCapabilities",
    "Broker",
    "BrokerClient",
    "BrokerError",
    "BrokerOrders",
    "BrokerReads",
    "BrokerRejected",
    "BrokerUnavailable",
    "EndpointMissing",
    "FindResult",
    "Located",
    "MalformedResponse",
    "NotPlaced",
    "OrderIndex",
    "RequestHook",
    "SubmissionKey",
    "Unreachable",
    "index_orders",
    "is_unset",
    "locate_submission",
    "match_order",
    "match_submission",
    "order_index",
    "value_or_none",
]
