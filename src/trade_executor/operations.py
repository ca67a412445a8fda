"""Operator commands: execute, status, halt, resume, resolve (CONTRACT section 2)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import httpx

from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError
from trade_executor.config import Settings
from trade_executor.domain.execution import Changes
from trade_executor.domain.ledger import rebuild_riskbook
from trade_executor.domain.riskbook import RiskBook
from trade_executor.domain.sizing import RiskLimits
from trade_executor.domain.states import (
    NOT_FINAL_STATES,
    ExecutionState,
    IllegalTransition,
    Transition,
)
from trade_executor.exits import EX_USAGE, CommandError
from trade_executor.store.errors import StoreError
from trade_executor.store.postgres import PgStore, create_pool

T = TypeVar("T")


class OperationError(Exception):
    """One clear sentence for the operator; exit code 1."""


def _with_store(settings: Settings, work: Callable[[PgStore], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            pool = await create_pool(settings.dsn(), min_size=1, max_size=2)
        except StoreError as error:
            raise OperationError(f"cannot reach the database: {error}") from None
        try:
            return await work(PgStore(pool))
        except StoreError as error:
            raise OperationError(f"the database refused the command: {error}") from None
        finally:
            await pool.close()

    return asyncio.run(main())


def _who(args: argparse.Namespace) -> str:
    return str(getattr(args, "by", None) or getpass.getuser())


def _fail(message: str) -> int:
    raise CommandError(message)


def halt(settings: Settings, args: argparse.Namespace) -> int:
    _with_store(settings, lambda store: store.set_control(True, args.reason, _who(args)))
    print(f"halted: {args.reason}")
    return 0


def resume(settings: Settings, args: argparse.Namespace) -> int:
    _with_store(settings, lambda store: store.set_control(False, None, _who(args)))
    print("resumed")
    return 0


def resolve(settings: Settings, args: argparse.Namespace) -> int:
    try:
        execution_id = UUID(args.execution_id)
    except ValueError:
        return _fail(f"{args.execution_id!r} is not an execution id (a UUID)")
    if args.outcome == "submitted" and args.order_id is None:
        raise CommandError("--as submitted needs the broker's --order-id", EX_USAGE)

    async def work(store: PgStore) -> str:
        execution = await store.get_execution(execution_id)
        if execution is None:
            return f"execution {execution_id} not found"
        if execution.state is not ExecutionState.UNKNOWN:
            return f"execution {execution_id} is {execution.state.value}, not unknown"
        detail = {"by": _who(args), "order_id": args.order_id}
        if args.outcome == "failed":
            transition = Transition.RESOLVE_FAILED
            changes = Changes(reason=f"resolved_failed by {_who(args)}")
        else:
            transition = Transition.RESOLVE_SUBMITTED
            changes = Changes(
                order_id=args.order_id, submitted_at=datetime.now(UTC), broker_status="Submitted"
            )
        try:
            await store.apply(execution_id, transition, changes, detail)
        except IllegalTransition:
            return f"execution {execution_id} changed meanwhile"
        # The running service re-reads it at once: risk released or kept, symbol freed.
        await store.announce_change(execution_id)
        return ""

    problem = _with_store(settings, work)
    if problem:
        return _fail(problem)
    print(f"execution {execution_id} resolved as {args.outcome}")
    return 0


def execute(settings: Settings, args: argparse.Namespace) -> int:
    url = args.url or f"http://{settings.http_host}:{settings.http_port}"
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/api/v1/execute",
            json={"signal_id": args.signal_id, "approved_by": args.approved_by},
            headers={"Authorization": f"Bearer {token}"},
            timeout=40,
        )
    except httpx.HTTPError as error:
        return _fail(f"the service's HTTP API at {url} did not answer ({error})")
    try:
        body = response.json()
    except ValueError:
        return _fail(f"the service answered {response.status_code} without JSON")
    print(json.dumps(body, indent=2))
    return 0 if response.status_code == 200 else 1


def status(settings: Settings, args: argparse.Namespace) -> int:
    limits = RiskLimits.from_settings(settings)
    now = datetime.now(UTC)

    async def work(store: PgStore) -> dict[str, Any]:
        control = await store.control()
        day = RiskBook(limits, settings.timezone).trading_day(now)
        today = await store.executions_on(day)
        in_flight = await store.executions_in(sorted(NOT_FINAL_STATES))
        positions: list[Any] | str
        try:
            async with BrokerClient(settings.ib_bridge_url, settings.ib_bridge_timeout) as broker:
                positions = [p for p in await broker.positions() if p.quantity != 0]
        except BrokerError as error:
            positions = f"unavailable ({error})"
        return {"control": control, "today": today, "in_flight": in_flight, "positions": positions}

    found = _with_store(settings, work)
    # The executor's own rule: the same function rebuilds its RiskBook at start-up.
    book = rebuild_riskbook(limits, settings.timezone, [*found["today"], *found["in_flight"]], now)
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
