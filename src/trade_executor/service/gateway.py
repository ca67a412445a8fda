"""The HTTP API's narrow view of the running service (`api.gateway.Gateway`)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio

from trade_executor.actors.execution.shared import OutcomeBoard
from trade_executor.actors.messages import ApprovalSeen
from trade_executor.api.gateway import HealthFacts
from trade_executor.domain.execution import Execution
from trade_executor.store.protocol import Store

if TYPE_CHECKING:
    from trade_executor.service.run import Service


class ServiceGateway:
    """The HTTP API's narrow view of the service (`api.gateway.Gateway`)."""

    def __init__(self, service: Service) -> None:
        self._service = service

    @property
    def store(self) -> Store | None:
        return self._service.store

    @property
    def outcomes(self) -> OutcomeBoard | None:
        actors = self._service.actors
        if self._service.role != "active" or actors is None:
            return None
        return actors.executor.outcomes

    def approval_seen(self, approval_id: UUID) -> None:
        actors = self._service.actors
        if actors is not None:
            actors.mailbox.send_nowait(ApprovalSeen(approval_id, "api", anyio.current_time()))

    async def close_positions(
        self, symbol: str | None, reason: str, requested_by: str, wait: float
    ) -> list[Execution] | None:
        actors = self._service.actors
        if self._service.role != "active" or actors is None:
            return None
        return await actors.exits.close_positions(symbol, reason, requested_by, wait=wait)

    def facts(self) -> HealthFacts:
        service, actors = self._service, self._service.actors
        return HealthFacts(
            role=service.role,
            listener_connected=actors is not None and actors.listener.health.connected,
            halted=actors.executor.halted if actors is not None else None,
            children={name: child.state for name, child in service.supervisor.children.items()},
            open_pollers=actors.pollers.active if actors is not None else 0,
            reconcile_breaks=len(actors.reconciler.open_breaks) if actors is not None else 0,
            account=service.account,
            live_trading_refused=service.live_trading_refused,
        )

    async def report(
        self, first: date | None, last: date | None, strategy: str | None
    ) -> dict[str, Any]:
        from trade_executor.ops.common import OperationError
        from trade_executor.ops.report import build_report
        from trade_executor.store.postgres import PgStore

        store = self._service.store
        if store is None:
            raise LookupError(f"not ready: this instance is {self._service.role}")
        try:
            built = await build_report(
                PgStore(store.pool),
                self._service.settings,
                first=first,
                last=last,
                strategy=strategy,
            )
        except OperationError as error:
            raise ValueError(str(error)) from None
        return built.to_json()

    async def check_bridge(self) -> None:
        """The background watcher's last word (CONTRACT: checked in the background): no probe
        per /health request, so a scraper never multiplies the bridge's load or its warnings."""
        watch = self._service.bridge_watch
        if watch.up is None:
            raise ConnectionError("the bridge has not been checked yet")
        if not watch.up:
            raise ConnectionError(watch.problem or "the bridge is down")

    def render_metrics(self) -> bytes:
        return self._service.metrics.render()
