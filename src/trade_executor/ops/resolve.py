"""`resolve`: an operator settles an execution the service cannot settle itself."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from uuid import UUID

from trade_executor.config import Settings
from trade_executor.domain.execution import Changes
from trade_executor.domain.states import ExecutionState, IllegalTransition, Transition
from trade_executor.exits import EX_USAGE, CommandError
from trade_executor.ops.common import fail, who, with_store
from trade_executor.store.postgres import PgStore


def resolve(settings: Settings, args: argparse.Namespace) -> int:
    try:
        execution_id = UUID(args.execution_id)
    except ValueError:
        return fail(f"{args.execution_id!r} is not an execution id (a UUID)")
    if args.outcome == "submitted" and args.order_id is None:
        raise CommandError("--as submitted needs the broker's --order-id", EX_USAGE)

    async def work(store: PgStore) -> str:
        execution = await store.get_execution(execution_id)
        if execution is None:
            return f"execution {execution_id} not found"
        if execution.state is not ExecutionState.UNKNOWN:
            return f"execution {execution_id} is {execution.state.value}, not unknown"
        detail = {"by": who(args), "order_id": args.order_id}
        if args.outcome == "failed":
            transition = Transition.RESOLVE_FAILED
            changes = Changes(reason=f"resolved_failed by {who(args)}")
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

    problem = with_store(settings, work)
    if problem:
        return fail(problem)
    print(f"execution {execution_id} resolved as {args.outcome}")
    return 0
