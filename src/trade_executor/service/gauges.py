"""The gauges that describe a state rather than count events, kept right from start-up
(CONTRACT section 6): halted, executions needing an operator, and today's risk used, which must be
restored after a restart and fall to 0 when the trading day turns, not wait for the next decision.

`GaugeKeeper.refresh()` reads the kill switch and one aggregate of the ledger
(`Store.ledger_gauges`: two numbers, no execution sent back) and sets them; the service runs it
at start (before it leads, so a standby exports them too) and then every `interval` seconds.
With 10,000 orders working, re-reading every open execution each time cost a 21 MB peak and a
fifth of the executor's CPU (bench/ANALYSIS.md, issue 22). The clock is injected, so a test can
turn the trading day.

Today's risk comes from the executor's own RiskBook while this instance is active (it includes
reservations not yet written), else from the aggregate, which sums what
`domain.ledger.rebuild_riskbook` counts: the same rule either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from trade_executor.clock import Clock
from trade_executor.config.limits import risk_limits
from trade_executor.config.sources import Settings
from trade_executor.domain.attention import Bounds
from trade_executor.domain.riskbook import RiskBook
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
        today = RiskBook(self._limits, self._settings.timezone).trading_day(now)
        # Today's executions count too: a `failed: not_placed: recovery:` one needs a person.
        ledger = await self._store.ledger_gauges(today, now, self._bounds)
        self._metrics.set_needing_operator(ledger.needing_operator)
        live = self._live_riskbook()
        used = live.daily_risk_used(now) if live is not None else ledger.daily_risk_used
        self._metrics.set_daily_risk(used)
        return GaugeReading(control, ledger.needing_operator, used)
