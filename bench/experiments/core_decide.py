"""EXPERIMENT (bench only): the cost of a decision through the executor's core.

    .venv/bin/python bench/experiments/core_decide.py

10,240 approvals decided in batches of 256 (as the decide task takes them), through
`ExecutionCore.decide` and through the RiskBook and working orders called inline (what the
decide step did before the core owned them). Pure CPU: no database, no bridge. Prints the best
of three runs of each, with the per-decision cost of the first and the last batch (a cost that
grew with the orders in flight would show there).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4
from zoneinfo import ZoneInfo

from trade_executor.actors.execution.core import Candidate, ExecutionCore
from trade_executor.actors.working import WorkingOrders
from trade_executor.domain.execution import Execution
from trade_executor.domain.guardrails import check_account_mode, check_entry
from trade_executor.domain.models import Account, Action
from trade_executor.domain.riskbook import Decision, RiskBook
from trade_executor.domain.sizing import RiskLimits
from trade_executor.domain.states import ExecutionState
from trade_executor.domain.validation import ValidSignal

D = Decimal
NY = ZoneInfo("America/New_York")
LIMITS = RiskLimits(
    max_risk_per_trade=D("0.0001"),
    min_position_size=1,
    max_position_size=1000,
    max_position_value_pct=D("0.0002"),
    max_open_positions=0,
    max_daily_loss=D("0"),
)
ACCOUNT = Account("DU1", D("100000000"), D("1000000000"))
NOW = datetime(2024, 3, 8, 16, tzinfo=UTC)
APPROVALS, BATCH = 10_240, 256


def candidate(i: int) -> Candidate:
    execution_id = uuid4()
    execution = Execution(
        execution_id, uuid4(), uuid4(), ExecutionState.RECEIVED, f"te-{execution_id.hex}"
    )
    symbol = f"S{i}"
    valid = ValidSignal(
        execution.signal_id, symbol, Action.BUY, D("150"), D("145"), D("160"), None, None
    )
    return Candidate(replace(execution, symbol=symbol), valid, 0.0)


def through_the_core(batches: list[list[Candidate]]) -> list[float]:
    core = ExecutionCore(LIMITS, NY, 3)
    core.account_mode(True)
    times = []
    for batch in batches:
        start = time.perf_counter()
        core.decide(batch, ACCOUNT, (), NOW, allow_live=False)
        times.append(time.perf_counter() - start)
    return times


def inline(batches: list[list[Candidate]]) -> list[float]:
    book, working = RiskBook(LIMITS, NY), WorkingOrders()
    times = []
    for batch in batches:
        start = time.perf_counter()
        book.set_broker_positions({})
        available = replace(ACCOUNT, buying_power=ACCOUNT.buying_power - working.unfilled_value({}))
        for c in batch:
            if check_account_mode(True, False) or check_entry(c.guardrails, NOW):
                continue
            decision = book.decide(c.execution.id, c.valid, available, NOW)
            assert isinstance(decision, Decision)
            sizing = decision.sizing
            working.add(c.execution.id, c.valid.symbol, sizing.quantity, c.valid.entry)
            available = replace(
                available, buying_power=available.buying_power - sizing.position_value
            )
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    candidates = [candidate(i) for i in range(APPROVALS)]
    batches = [candidates[k : k + BATCH] for k in range(0, APPROVALS, BATCH)]
    runs: list[tuple[str, Callable[[list[list[Candidate]]], list[float]]]] = [
        ("core", through_the_core),
        ("inline", inline),
    ]
    for name, run in runs:
        best = min((run(batches) for _ in range(3)), key=sum)
        first, last = best[0] / BATCH * 1e6, best[-1] / BATCH * 1e6
        print(
            f"{name:7s} {APPROVALS} decisions: {sum(best) * 1000:6.0f} ms;"
            f" first batch {first:5.1f} us/decision, last batch {last:5.1f} us/decision"
        )


if __name__ == "__main__":
    main()
