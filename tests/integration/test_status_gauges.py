"""The service's own account of itself (CONTRACT sections 6 and 10): `/metrics` right after start
has every labelled series at 0 and the state gauges already right (restored from the ledger, and
again after a restart), today's risk falls to 0 when the trading day turns (a clock the test
controls), the role and the limits are exported, and STATUS= says active or standby, dry run or
not, halted by whom and why."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import anyio
import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ThreadedBridge, make_settings
from trade_executor.config.sources import Settings
from trade_executor.observability.metrics import (
    BRIDGE_ENDPOINTS,
    EXECUTION_OUTCOMES,
    HALT_CAUSES,
    RECONCILE_BREAK_KINDS,
    RISK_GATES,
)
from trade_executor.service.run import Service
from trade_executor.service.systemd import SystemdNotifier

pytestmark = pytest.mark.anyio
WAIT = 20.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

INSERT_EXECUTION = """
INSERT INTO executions (id, signal_id, state, reason, symbol, action, order_type, client_order_id,
                        quantity, entry_price, stop_loss, take_profit, risk_amount, position_value,
                        filled_qty, trading_day, attempted_at, submitted_at)
VALUES ($1, $2, $3, NULL, $4, 'BUY', 'LMT', $5, 10, 150, 145, 160, $6, 1500, $7, $8, now(), now())
"""


class RecordingNotifier(SystemdNotifier):
    """Keeps every sd_notify message instead of sending it."""

    def __init__(self) -> None:
        super().__init__(None)
        self.messages: list[str] = []

    def notify(self, *lines: str) -> bool:
        self.messages.extend(lines)
        return True

    def statuses(self) -> list[str]:
        return [m.removeprefix("STATUS=") for m in self.messages if m.startswith("STATUS=")]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def service_running(
    settings: Settings, clock: Clock | None = None, notifier: SystemdNotifier | None = None
) -> AsyncIterator[Service]:
    service = Service(
        settings,
        notifier=notifier or SystemdNotifier(None),
        clock=clock or (lambda: datetime.now(UTC)),
        gauge_interval=0.1,
    )
    codes: list[int] = []

    async def run() -> None:
        codes.append(await service.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(WAIT):
            while service.role != "active":
                assert not codes, f"the service exited with {codes}"
                await anyio.sleep(0.01)
        try:
            yield service
        finally:
            service.request_stop()
    assert codes == [0]


async def scrape(service: Service) -> Samples:
    async with httpx.AsyncClient(headers={"Connection": "close"}) as client:
        response = await client.get(f"http://127.0.0.1:{service.http_port}/metrics")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def until_gauge(service: Service, name: str, expected: float) -> Samples:
    """The scrape once `name` reads `expected` (the gauges refresh every 0.1 s here)."""
    with anyio.fail_after(WAIT):
        while True:
            samples = await scrape(service)
            if value(samples, name) == expected:
                return samples
            await anyio.sleep(0.05)


async def add_execution(
    conn: asyncpg.Connection, state: str, risk: str, day: object, filled: int = 0
) -> uuid.UUID:
    execution_id = uuid.uuid4()
    await conn.execute(
        INSERT_EXECUTION,
        execution_id,
        uuid.uuid4(),
        state,
        f"S{execution_id.hex[:6].upper()}",
        f"te-{execution_id.hex}",
        Decimal(risk),
        filled,
        day,
    )
    return execution_id


async def test_metrics_right_after_start_have_every_series_and_the_restored_gauges(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    settings = make_settings(db_url, bridge, max_daily_loss=Decimal(2500), max_open_positions=0)
    today = datetime.now(settings.timezone).date()
    await add_execution(conn, "filled", "665.00", today, filled=10)
    await add_execution(conn, "unknown", "50.00", today)
    await add_execution(conn, "filled", "999.00", today - timedelta(days=1), filled=10)
    await conn.execute(
        "UPDATE executor_control SET halted = true, reason = 'maintenance', changed_by = 'alice'"
    )
    for start in ("first start", "after a restart"):
        async with service_running(settings) as service:
            samples = await scrape(service)
            for state in EXECUTION_OUTCOMES:
                assert value(samples, "trade_executor_executions_total", state=state) == 0
            for gate in RISK_GATES:
                assert value(samples, "trade_executor_risk_rejections_total", gate=gate) == 0
            for kind in RECONCILE_BREAK_KINDS:
                assert value(samples, "trade_executor_reconcile_breaks_total", kind=kind) == 0
            for cause in HALT_CAUSES:  # a halt already on at start is not counted again
                assert value(samples, "trade_executor_halts_total", cause=cause) == 0, start
            for method, path in BRIDGE_ENDPOINTS:
                labels = {"method": method, "path": path, "outcome": "timeout"}
                assert value(samples, "trade_executor_bridge_request_seconds_count", **labels) == 0
            assert value(samples, "trade_executor_role", role="active") == 1
            assert value(samples, "trade_executor_role", role="standby") == 0
            assert value(samples, "trade_executor_limit", limit="max_daily_loss") == 2500
            assert value(samples, "trade_executor_limit", limit="max_open_positions") == 0
            # Restored from the ledger, not waiting for the first decision: yesterday's 999
            # does not count; the unknown one needs an operator.
            assert value(samples, "trade_executor_daily_risk_used") == 715
            assert value(samples, "trade_executor_halted") == 1, start
            samples = await until_gauge(service, "trade_executor_executions_needing_operator", 1)
    await conn.execute("UPDATE executor_control SET halted = false, reason = NULL")


async def test_todays_risk_falls_to_zero_when_the_trading_day_turns(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    settings = make_settings(db_url, bridge)
    zone = settings.timezone
    # Mid-afternoon in New York, a fixed day: the test decides when the day turns.
    clock = Clock(datetime(2031, 3, 4, 15, 0, tzinfo=zone).astimezone(UTC))
    await add_execution(conn, "filled", "665.00", clock.now.astimezone(zone).date(), filled=10)
    async with service_running(settings, clock) as service:
        assert value(await scrape(service), "trade_executor_daily_risk_used") == 665
        clock.now = datetime(2031, 3, 4, 23, 59, tzinfo=zone).astimezone(UTC)
        await anyio.sleep(0.3)  # several refreshes on the same day: the value stays
        assert value(await scrape(service), "trade_executor_daily_risk_used") == 665
        clock.now = datetime(2031, 3, 5, 0, 1, tzinfo=zone).astimezone(UTC)
        await until_gauge(service, "trade_executor_daily_risk_used", 0)


async def test_status_lines_say_the_role_the_mode_and_who_halted(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    notifier = RecordingNotifier()
    settings = make_settings(db_url, bridge, execution_enabled=False)
    async with service_running(settings, notifier=notifier) as service:
        assert "READY=1" in notifier.messages
        assert notifier.statuses()[0] == "active: DRY RUN (no orders sent); taking approvals"
        await conn.execute(
            "UPDATE executor_control SET halted = true, reason = 'IB maintenance', "
            "changed_by = 'alice', changed_at = now()"
        )
        with anyio.fail_after(WAIT):
            while not notifier.statuses()[-1].startswith("active: DRY RUN"):
                await anyio.sleep(0.05)
            while "HALTED" not in notifier.statuses()[-1]:
                await anyio.sleep(0.05)
        assert notifier.statuses()[-1] == (
            "active: DRY RUN (no orders sent); HALTED by alice: IB maintenance; "
            "approvals are rejected"
        )
        assert value(await scrape(service), "trade_executor_halts_total", cause="operator") == 1
        await conn.execute("UPDATE executor_control SET halted = false, reason = NULL")
        with anyio.fail_after(WAIT):
            while "HALTED" in notifier.statuses()[-1]:
                await anyio.sleep(0.05)
        assert notifier.statuses()[-1] == "active: DRY RUN (no orders sent); taking approvals"
