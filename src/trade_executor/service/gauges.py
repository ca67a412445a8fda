"""The gauges that describe a state rather than count events, kept right from start-up
(CONTRACT section 6): halted, executions needing an operator, and today's risk used, which must be
restored after a restart and fall to 0 when the trading day turns, not wait for the next decision.

`GaugeKeeper.refresh()` reads the ledger and the kill switch once and sets them; the service runs
it at start (before it leads, so a standby exports them too) and then every `interval` seconds.
The clock is injected, so a test can turn the trading day.

Today's risk comes from the executor's own RiskBook while this instance is active (it includes
reservations not yet written), else from `domain.ledger.rebuild_riskbook` over the ledger: the
same rule either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from trade_executor.clock import Clock
from trade_executor.config.limits import risk_limits
from trade_executor.config.sources import Settings
from trade_executor.domain.attention import Bounds, needing_operator
from trade_executor.domain.execution import Execution
from trade_executor.domain.ledger import rebuild_riskbook
from trade_executor.domain.riskbook import RiskBook
from trade_executor.domain.states import NOT_FINAL_STATES
from trade_executor.observability.metrics import Metrics
from trade_executor.store.protocol import ControlState, ReportStore


@dataclass(frozen=True, slots=True)
class GaugeReading:
    """What one refresh saw (the service builds its STATUS= line from it)."""

    control: ControlState
    needing_operator: int
    daily_risk_used: Decimal


class GaugeKeeper:
    def __init__(
        self,
        settings: Settings,
        store: ReportStore,
        metrics: Metrics,
        clock: Clock,
        live_riskbook: Callable[[], RiskBook | None],
    ) -> None:
        self._settings = settings
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._live_riskbook = live_riskbook
        self._limits = risk_limits(settings)
        self._bounds = Bounds.from_values(settings)

    async def refresh(self) -> GaugeReading:
        """Read once, set every gauge; raises the store's errors (the caller retries later)."""
        now = self._clock()
        control = await self._store.control()
        self._metrics.set_halted(control.halted, control.reason)
        open_executions = await self._store.executions_in(sorted(NOT_FINAL_STATES))
        today = RiskBook(self._limits, self._settings.timezone).trading_day(now)
        # Today's too: a `failed: not_placed: recovery:` execution needs a person on its day.
        todays = await self._store.executions_on(today)
        needing = len(needing_operator([*open_executions, *todays], self._bounds, now))
        self._metrics.set_needing_operator(needing)
        used = await self._daily_risk_used(now, open_executions)
        self._metrics.set_daily_risk(used)
        return GaugeReading(control, needing, used)

    async def _daily_risk_used(self, now: datetime, open_executions: list[Execution]) -> Decimal:
        live = self._live_riskbook()
        if live is not None:
            return live.daily_risk_used(now)
        zone = self._settings.timezone
        today = RiskBook(self._limits, zone).trading_day(now)
        executions = [*await self._store.executions_on(today), *open_executions]
        return rebuild_riskbook(self._limits, zone, executions, now).daily_risk_used(now)
