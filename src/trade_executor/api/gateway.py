"""What the HTTP API may see and do of the running service: a narrow gateway, so the API never
reaches into the service's wiring (and never imports it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol
from uuid import UUID

from trade_executor.actors.execution.shared import OutcomeBoard
from trade_executor.domain.execution import Execution
from trade_executor.store.protocol import Store


@dataclass(frozen=True, slots=True)
class HealthFacts:
    role: str  # starting, standby, active, stopping
    listener_connected: bool = False
    halted: bool | None = None
    children: dict[str, str] = field(default_factory=dict)
    open_pollers: int = 0
    reconcile_breaks: int = 0  # breaks the last reconciliation pass found (0: none, or no pass)
    account: str | None = None  # paper or live, as the bridge last said (None: not known)
    # A live account without ALLOW_LIVE_TRADING: every approval is rejected (CONTRACT 5, 6).
    live_trading_refused: bool = False


class Gateway(Protocol):
    @property
    def store(self) -> Store | None:
        """The database, once connected."""

    @property
    def outcomes(self) -> OutcomeBoard | None:
        """Where the executor publishes outcomes; None unless this instance is active."""

    def approval_seen(self, approval_id: UUID) -> None:
        """Hand an approval to the executor (as a notification would)."""

    def facts(self) -> HealthFacts: ...

    async def close_positions(
        self, symbol: str | None, reason: str, requested_by: str, wait: float
    ) -> list[Execution] | None:
        """Close the open positions of `symbol` (None: all) through the active instance's
        exits, waiting up to `wait` s for them to be recorded closed; the positions as
        recorded then. None unless this instance is active."""

    async def report(
        self, first: date | None, last: date | None, strategy: str | None
    ) -> dict[str, Any]:
        """The `report` command's JSON for trading days `first`..`last` (default today).
        Raises ValueError (one sentence) for a span the report refuses, LookupError when
        the database is not connected yet."""

    async def check_bridge(self) -> None:
        """Raises unless the bridge answers and is connected to IB."""

    def render_metrics(self) -> bytes: ...
