"""`status`: what the running service sees, read from the database."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, time
from typing import Any

from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError
from trade_executor.config import Settings
from trade_executor.domain.ledger import rebuild_riskbook
from trade_executor.domain.riskbook import RiskBook
from trade_executor.domain.sizing import RiskLimits
from trade_executor.domain.states import NOT_FINAL_STATES
from trade_executor.ops.common import with_store
from trade_executor.store.postgres import PgStore


def status(settings: Settings, args: argparse.Namespace) -> int:
    limits = RiskLimits.from_settings(settings)
    now = datetime.now(UTC)

    async def work(store: PgStore) -> dict[str, Any]:
        control = await store.control()
        day = RiskBook(limits, settings.timezone).trading_day(now)
        today = await store.executions_on(day)
        in_flight = await store.executions_in(sorted(NOT_FINAL_STATES))
        # The original service's trades of today count too (the executor's rule at start-up).
        originals = await store.original_trades_since(
            datetime.combine(day, time(0), tzinfo=settings.timezone)
        )
        positions: list[Any] | str
        try:
            async with BrokerClient(settings.ib_bridge_url, settings.ib_bridge_timeout) as broker:
                positions = [p for p in await broker.positions() if p.quantity != 0]
        except BrokerError as error:
            positions = f"unavailable ({error})"
        return {
            "control": control,
            "today": today,
            "in_flight": in_flight,
            "originals": originals,
            "positions": positions,
        }

    found = with_store(settings, work)
    # The executor's own rule: the same function rebuilds its RiskBook at start-up.
    book = rebuild_riskbook(
        limits,
        settings.timezone,
        [*found["today"], *found["in_flight"]],
        now,
        original_trades=found["originals"],
    )
    used, left = book.daily_risk_used(now), book.daily_risk_left(now)
    control = found["control"]
    day = book.trading_day(now)
    print(f"trading day        {day.isoformat()} ({settings.trading_day_timezone})")
    budget = f"{settings.max_daily_loss:.2f}" if left is not None else "no limit (MAX_DAILY_LOSS=0)"
    print(f"daily risk used    {used:.2f} of {budget}")
    print(f"daily risk left    {f'{left:.2f}' if left is not None else 'unlimited'}")
    halted = f"yes: {control.reason} (by {control.changed_by})" if control.halted else "no"
    print(f"halted             {halted}")
    print(f"execution enabled  {str(settings.execution_enabled).lower()}")
    positions = found["positions"]
    print()
    if isinstance(positions, str):
        print(f"open positions     {positions}")
    else:
        print(f"open positions     {len(positions)}")
        for p in positions:
            print(f"  {p.symbol:<10} {p.quantity:>8}  avg cost {p.avg_cost:.2f}")
    print()
    print(f"executions in flight  {len(found['in_flight'])}")
    if found["in_flight"]:
        print(f"  {'execution':<36}  {'symbol':<8} {'state':<17} {'qty':>6} {'filled':>6} order")
        for e in found["in_flight"]:
            print(
                f"  {e.id!s:<36}  {e.symbol or '-':<8} {e.state.value:<17} "
                f"{e.quantity or 0:>6} {e.filled_qty:>6} {e.order_id or '-'}"
            )
    return 0
