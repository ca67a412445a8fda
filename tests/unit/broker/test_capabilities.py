"""capabilities(): paper or live, connected, and which endpoints a bridge has, placing nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.support import realbridge as rb
from trade_executor.broker import BrokerClient, BrokerUnavailable, EndpointMissing
from trade_executor.broker.capabilities import BridgeCapabilities, route_missing

pytestmark = pytest.mark.anyio

HEALTH = ("GET", "/health")
OPENAPI = ("GET", "/openapi.json")


class Recorder:
    def __init__(self, table: dict[tuple[str, str], httpx.Response]) -> None:
        self.handle = rb.routed(dict(table))
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handle(request)

    async def capabilities(self) -> BridgeCapabilities:
        async with BrokerClient(
            "http://bridge.test", transport=httpx.MockTransport(self), read_retries=0
        ) as broker:
            return await broker.capabilities()


def health(**changes: object) -> httpx.Response:
    return rb.json_answer(200, {**rb.HEALTH, **changes})


# Probe answers of a bridge that serves no OpenAPI document (the router and validation answer
# before any handler runs).
PROBES_ALL_PRESENT = {
    ("GET", "/orders"): rb.order_list(),
    ("DELETE", "/orders/capability-probe"): rb.validation_error(["path", "order_id"]),
    ("POST", "/orders/bracket"): rb.validation_error(["body"]),
    ("POST", "/positions/capability-probe/close"): rb.validation_error(["body"]),
    ("POST", "/positions/capability-probe/protect"): rb.validation_error(["body"]),
}
PROBES_BEFORE_MARCH_2026 = {
    ("GET", "/orders"): rb.method_not_allowed("POST"),
    ("DELETE", "/orders/capability-probe"): rb.method_not_allowed("GET"),
    ("POST", "/orders/bracket"): rb.method_not_allowed("GET"),
    # the position paths do not exist at all: the router's 404
}


async def test_the_real_bridge_is_read_from_its_openapi_document(anyio_backend: str) -> None:
    bridge = Recorder({HEALTH: health(), OPENAPI: rb.openapi(rb.OPENAPI_PATHS)})
    found = await bridge.capabilities()
    assert found == BridgeCapabilities(
        connected=True,
        paper_trading=True,
        version="1.0.0",
        bracket_orders=True,
        order_list=True,
        cancel=True,
        close_position=True,
        protect_position=True,
        detected_by="openapi",
    )
    assert [(r.method, r.url.path) for r in bridge.requests] == [HEALTH, OPENAPI]
    assert found.missing == () and found.account_mode == "paper"
    found.require(order_protection="bracket")  # does not raise


async def test_a_bridge_from_before_march_2026_by_its_openapi_document(anyio_backend: str) -> None:
    bridge = Recorder(
        {
            HEALTH: rb.json_answer(200, rb.HEALTH_BEFORE_MARCH_2026),
            OPENAPI: rb.openapi(rb.OPENAPI_PATHS_BEFORE_MARCH_2026),
        }
    )
    found = await bridge.capabilities()
    assert found.missing == (
        "POST /orders/bracket",
        "GET /orders",
        "DELETE /orders/{order_id}",
        "POST /positions/{symbol}/close",
        "POST /positions/{symbol}/protect",
    )
    assert found.paper_trading is None and found.account_mode == "unknown"
    assert not found.is_paper  # unknown is never taken for paper
    assert len(found.warnings()) == 5


async def test_bracket_protection_is_refused_against_a_bridge_without_brackets(
    anyio_backend: str,
) -> None:
    bridge = Recorder({HEALTH: health(), OPENAPI: rb.openapi(rb.OPENAPI_PATHS_BEFORE_MARCH_2026)})
    found = await bridge.capabilities()
    with pytest.raises(EndpointMissing) as refused:
        found.require(order_protection="bracket")
    assert str(refused.value).startswith(
        "POST /orders/bracket (no answer): ORDER_PROTECTION=bracket needs POST /orders/bracket,"
        " which this bridge lacks"
    )
    assert refused.value.needed_for == "ORDER_PROTECTION=bracket"
    found.require(order_protection="none")  # entries without protection still work


async def test_without_openapi_the_routes_are_probed_without_a_valid_order(
    anyio_backend: str,
) -> None:
    bridge = Recorder({HEALTH: health(paper_trading=False), **PROBES_ALL_PRESENT})
    found = await bridge.capabilities()
    assert found.detected_by == "probes"
    assert found.missing == ()
    assert found.account_mode == "live"
    sent = bridge.requests[2:]  # after /health and /openapi.json
    assert {(r.method, r.url.path) for r in sent} == set(PROBES_ALL_PRESENT)
    for request in sent:
        # nothing a bridge could act on: no body but a JSON array, no numeric order id
        assert request.content in (b"", b"[]")
        assert not request.url.path.rstrip("/").split("/")[-1].isdigit()


async def test_a_bridge_from_before_march_2026_by_probes(anyio_backend: str) -> None:
    bridge = Recorder(
        {HEALTH: rb.json_answer(200, rb.HEALTH_BEFORE_MARCH_2026), **PROBES_BEFORE_MARCH_2026}
    )
    found = await bridge.capabilities()
    assert (found.detected_by, len(found.missing)) == ("probes", 5)


async def test_a_disconnected_bridge_still_shows_its_routes(anyio_backend: str) -> None:
    probes = {**PROBES_ALL_PRESENT, ("GET", "/orders"): rb.detail(503, rb.NOT_CONNECTED)}
    bridge = Recorder({HEALTH: health(status="degraded", connected=False), **probes})
    found = await bridge.capabilities()
    assert (found.connected, found.order_list) == (False, True)
    assert "NOT connected" in found.describe()


async def test_an_unreachable_bridge_is_unavailable(anyio_backend: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with BrokerClient(
        "http://bridge.test", transport=httpx.MockTransport(refuse), read_retries=0
    ) as broker:
        with pytest.raises(BrokerUnavailable):
            await broker.capabilities()


@pytest.mark.parametrize(
    ("status", "detail", "missing"),
    [
        (404, "Not Found", True),  # the router: no such path
        (404, None, True),  # a proxy's HTML 404
        (405, "Method Not Allowed", True),  # the path exists for another method only
        (404, "Order 7 not found", False),  # a handler's own 404: the route exists
        (422, None, False),
        (400, "Order 999 not found", False),
        (503, rb.NOT_CONNECTED, False),
        (500, "boom", False),
    ],
)
def test_what_counts_as_a_missing_route(status: int, detail: str | None, missing: bool) -> None:
    assert route_missing(status, detail) is missing
