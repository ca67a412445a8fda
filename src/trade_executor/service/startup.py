"""What `run` settles before it serves: the bridge's capabilities (a configuration it cannot
serve refuses the start, exit 78), the schema, and the operating mode shown at start-up."""

from __future__ import annotations

import anyio

from trade_executor.broker.capabilities import BridgeCapabilities
from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError, EndpointMissing
from trade_executor.config.sources import Settings
from trade_executor.observability.logging import get_logger
from trade_executor.store.migrate import migrate
from trade_executor.store.pgerrors import translated

log = get_logger("trade_executor.service")


class BridgeRefused(Exception):
    """The bridge cannot serve this configuration: the service refuses to start (exit 78)."""


def refusal_in(error: BaseException) -> BridgeRefused | None:
    """The `BridgeRefused` inside `error` (task groups wrap it in exception groups), if any."""
    if isinstance(error, BridgeRefused):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = refusal_in(inner)
            if found is not None:
                return found
    return None


async def migrate_translated(dsn: str) -> None:
    with translated():  # the store's own errors, so a server still starting is waited out
        await migrate(dsn)


async def check_capabilities(broker: BrokerClient, settings: Settings) -> BridgeCapabilities | None:
    """Ask the bridge what it can do, before READY: a configuration it cannot serve
    (ORDER_PROTECTION=bracket against a bridge without POST /orders/bracket) refuses to
    start (`BridgeRefused`, exit 78); missing optional endpoints are warnings. A bridge that
    does not answer now is no reason to refuse (None): it is checked in the background later."""
    caps: BridgeCapabilities | None = None
    with anyio.move_on_after(settings.ib_bridge_timeout):
        try:
            caps = await broker.capabilities()
        except BrokerError as error:
            log.warning("bridge.capabilities_unknown", error=str(error))
            return None
    if caps is None:
        log.warning("bridge.capabilities_unknown", error="the bridge did not answer in time")
        return None
    log.info(
        "bridge.capabilities",
        connected=caps.connected,
        account=caps.account_mode,
        missing=list(caps.missing),
        description=caps.describe(),
    )
    for note in caps.warnings():
        log.warning("bridge.limitation", note=note)
    try:
        caps.require(order_protection=settings.order_protection)
    except EndpointMissing as missing:
        raise BridgeRefused(missing.reason) from None
    return caps
