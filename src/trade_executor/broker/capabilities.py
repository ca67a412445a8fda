"""What a bridge can do, found without placing an order (CONTRACT sections 2, 5 and 7).

Bridges from before March 2026 have no `POST /orders/bracket`, `GET /orders`, `DELETE
/orders/{id}` nor the position endpoints, and their `/health` does not say paper or live.

Detection, in order of preference:
1. The bridge's OpenAPI document (`GET /openapi.json`, which every FastAPI app serves, the real
   bridge included) lists its routes and methods: a read, nothing else is sent.
2. Without it, one probe per endpoint that its router answers before any handler can act: the
   order list is a plain `GET /orders`; the others get a request the bridge must refuse on
   validation (an order id that is not a number, a JSON array where an object is required).
   FastAPI answers those 422 when the route exists, and 404 `{"detail": "Not Found"}` (no such
   path) or 405 `{"detail": "Method Not Allowed"}` (the path exists for another method) when it
   does not. OPTIONS is useless here: the real bridge's CORS middleware answers any preflight 200.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import EndpointMissing


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route of the bridge: `method` upper-case, `path` as the real bridge declares it."""

    method: str
    path: str
    # A request the router must refuse before a handler runs, to tell "exists" from "missing".
    probe_path: str
    probe_body: bytes | None = None

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def metric_label(self) -> str:
        """The endpoint as the latency metric names it (`metrics.BRIDGE_ENDPOINTS`): order ids
        are `{id}` there, as in the client's own requests."""
        return f"{self.method} {self.path.replace('{order_id}', '{id}')}"


BRACKET = Endpoint("POST", "/orders/bracket", "/orders/bracket", b"[]")
ORDER_LIST = Endpoint("GET", "/orders", "/orders")
CANCEL = Endpoint("DELETE", "/orders/{order_id}", "/orders/capability-probe")
CLOSE = Endpoint("POST", "/positions/{symbol}/close", "/positions/capability-probe/close", b"[]")
PROTECT = Endpoint(
    "POST", "/positions/{symbol}/protect", "/positions/capability-probe/protect", b"[]"
)
PROBED = (BRACKET, ORDER_LIST, CANCEL, CLOSE, PROTECT)

# What the bridge's router says for a route it does not have (FastAPI and Starlette alike).
_MISSING_DETAILS = frozenset({"Not Found", "Method Not Allowed"})


def route_missing(status: int, detail: str | None) -> bool:
    """True when an answer is the router's "no such route", not a handler's refusal.

    405 always is; 404 only with the router's own detail (or no JSON detail at all), since a
    handler may answer 404 for a thing it does not have."""
    if status == 405:
        return True
    return status == 404 and (detail is None or detail in _MISSING_DETAILS)


def routes_from_openapi(document: Any) -> dict[Endpoint, bool] | None:
    """Which of `PROBED` an OpenAPI document lists, or None if it is not one."""
    if not isinstance(document, Mapping):
        return None
    paths = document.get("paths")
    if not isinstance(paths, Mapping):
        return None
    found: dict[Endpoint, bool] = {}
    for endpoint in PROBED:
        methods = paths.get(endpoint.path)
        found[endpoint] = isinstance(methods, Mapping) and endpoint.method.lower() in methods
    return found


@dataclass(frozen=True, slots=True)
class BridgeCapabilities:
    """What `/health` says and which optional endpoints exist.

    `paper_trading` is None when the bridge does not say (bridges before March 2026): treat that
    as live (`is_paper` is False), never as paper."""

    connected: bool
    paper_trading: bool | None
    version: str | None
    bracket_orders: bool
    order_list: bool
    cancel: bool
    close_position: bool
    protect_position: bool
    detected_by: Literal["openapi", "probes"]

    @property
    def is_paper(self) -> bool:
        return self.paper_trading is True

    @property
    def account_mode(self) -> Literal["paper", "live", "unknown"]:
        if self.paper_trading is None:
            return "unknown"
        return "paper" if self.paper_trading else "live"

    def has(self, endpoint: Endpoint) -> bool:
        return {
            BRACKET: self.bracket_orders,
            ORDER_LIST: self.order_list,
            CANCEL: self.cancel,
            CLOSE: self.close_position,
            PROTECT: self.protect_position,
        }[endpoint]

    @property
    def missing(self) -> tuple[str, ...]:
        """Labels of the endpoints this bridge lacks, e.g. ("POST /orders/bracket",)."""
        return tuple(e.label for e in PROBED if not self.has(e))

    def require(self, *, order_protection: str) -> None:
        """Refuse a configuration this bridge cannot serve: `ORDER_PROTECTION=bracket` needs
        `POST /orders/bracket` (raises `EndpointMissing`, whose message says exactly that)."""
        if order_protection.strip().lower() == "bracket" and not self.bracket_orders:
            raise EndpointMissing(endpoint=BRACKET.label, needed_for="ORDER_PROTECTION=bracket")

    def warnings(self) -> tuple[str, ...]:
        """One plain sentence per limitation an operator should know about."""
        notes: list[str] = []
        if not self.order_list:
            notes.append(
                "the bridge has no GET /orders: orders are followed one GET /orders/{id} at a "
                "time and a lost order answer can never be settled as not placed"
            )
        if not self.cancel:
            notes.append(
                "the bridge has no DELETE /orders/{id}: a timed-out order cannot be cancelled"
            )
        if not self.close_position:
            notes.append("the bridge has no POST /positions/{symbol}/close: close cannot work")
        if not self.protect_position:
            notes.append(
                "the bridge has no POST /positions/{symbol}/protect: a partly filled entry "
                "cannot be protected again"
            )
        if self.paper_trading is None:
            notes.append("the bridge does not say whether its account is paper: taken as live")
        return tuple(notes)

    def describe(self) -> str:
        """One line for `check-config --connect` and the start-up log."""
        yes = {True: "yes", False: "NO"}
        return (
            f"{'connected' if self.connected else 'NOT connected'} to IB, "
            f"{self.account_mode} account, bridge {self.version or 'version unknown'}; "
            f"bracket {yes[self.bracket_orders]}, order list {yes[self.order_list]}, "
            f"cancel {yes[self.cancel]}, close {yes[self.close_position]}, "
            f"protect {yes[self.protect_position]} (found by {self.detected_by})"
        )
