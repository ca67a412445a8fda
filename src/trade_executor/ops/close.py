"""`close SYMBOL|--all --reason TEXT [--force]`: close open positions through the running service.

(v3) First the broker's truth is read (health, orders, positions): when the broker's quantity
differs from the ledger's, or the ledger believes a protective order works that the bridge
cannot find, the command refuses with one sentence naming both (exit 1) unless `--force`.

The command never calls the bridge itself: it asks the running service (a notification on the
control channel, see `store.closing`), whose exits cancel each position's exit orders,
close it through `/positions/{symbol}/close` (paced like every order) and follow the close
order to its fill. The command records the request in each position's audit trail, then
watches the ledger until the positions read `closed` or `--wait` seconds pass. No running
service means nothing happens, now or later: the command says so and exits 1.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

import anyio

from trade_executor.config.sources import Settings
from trade_executor.domain.execution import Execution
from trade_executor.ops.broker_truth import Disagreement, check_broker
from trade_executor.ops.common import OperationError, fail, who, with_store
from trade_executor.ops.exit_codes import EX_USAGE, CommandError
from trade_executor.store.closing import close_payload
from trade_executor.store.postgres import PgStore

POLL = 0.25


def is_open(execution: Execution) -> bool:
    return execution.position_state in ("open", "unprotected")


async def request_close(
    store: PgStore,
    symbol: str | None,
    reason: str,
    by: str,
    wait: float,
    *,
    bridge_url: str | None = None,
    force: bool = False,
) -> tuple[list[Execution], list[Execution]]:
    """The typed operation behind `close`: record the request in each open position of
    `symbol` (None: all), ask the running service to close them, and watch the ledger up to
    `wait` s. (the positions asked for, the same as last read); none asked for: ([], []).
    With `bridge_url` the broker's truth is checked first (`check_broker`): a disagreement
    raises OperationError (one sentence) unless `force`. The running service closes the
    broker's quantity and cancels every working order of ours for the symbol."""
    rows = await store.positions_to_follow(datetime.now(UTC))
    wanted = [e for e in rows if is_open(e) and (symbol is None or e.symbol == symbol)]
    if not wanted:
        return [], []
    try:
        overridden = await check_broker(wanted, bridge_url, force, "close") if bridge_url else []
    except Disagreement as refused:
        raise OperationError(str(refused)) from None
    for execution in wanted:
        detail: dict[str, Any] = {"reason": reason, "by": by, "symbol": symbol or "all"}
        if overridden:
            detail["forced_over"] = overridden
        await store.add_event(execution.id, "position.close_requested", detail)
    await store.announce_close(close_payload(symbol, reason, by))
    latest = wanted
    with anyio.move_on_after(max(0.0, wait)):
        while True:
            latest = [await store.get_execution(e.id) or e for e in wanted]
            if all(not is_open(e) for e in latest):
                break
            await anyio.sleep(POLL)
    return wanted, latest


def close(settings: Settings, args: argparse.Namespace) -> int:
    symbol: str | None = args.symbol.strip().upper() if args.symbol else None
    if (symbol is None) == (not args.all):
        raise CommandError("give either a SYMBOL or --all", EX_USAGE)
    reason = str(args.reason).strip()
    if not reason:
        raise CommandError("--reason must not be empty", EX_USAGE)
    by = who(args)

    force = bool(getattr(args, "force", False))
    wanted, latest = with_store(
        settings,
        lambda store: request_close(
            store,
            symbol,
            reason,
            by,
            float(args.wait),
            bridge_url=settings.ib_bridge_url,
            force=force,
        ),
    )
    if not wanted:
        return fail(f"no open position for {symbol}" if symbol else "no open positions")
    if args.json:
        print(json.dumps([_summary(e) for e in latest], default=str))
    else:
        for e in latest:
            print(describe(e))
    still_open = [e.symbol or "?" for e in latest if is_open(e)]
    if still_open:
        return fail(
            f"still open after {args.wait:g} s: {', '.join(still_open)} (the close may still be "
            "under way; `status` shows whether a service is running and what it sees)"
        )
    return 0


def _summary(e: Execution) -> dict[str, Any]:
    return {
        "execution_id": str(e.id),
        "symbol": e.symbol,
        "quantity": e.filled_qty,
        "position_state": e.position_state,
        "exit_reason": e.exit_reason,
        "exit_qty": e.exit_qty,
        "exit_avg_price": e.exit_avg_price,
        "realized_pnl": e.realized_pnl,
        "r_multiple": e.r_multiple,
    }


def describe(e: Execution) -> str:
    """One position as `close` prints it."""
    if e.position_state == "closed":
        r = f" ({e.r_multiple} R)" if e.r_multiple is not None else ""
        return (
            f"{e.symbol:<8} closed: {e.exit_reason} {e.exit_qty} @ {e.exit_avg_price}, "
            f"realized P&L {e.realized_pnl}{r}"
        )
    return f"{e.symbol:<8} {e.position_state}: {e.filled_qty - (e.exit_qty or 0)} shares left"
