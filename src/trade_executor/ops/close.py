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

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio

from trade_executor.domain.execution import Execution
from trade_executor.ops.broker_truth import Disagreement, check_broker
from trade_executor.ops.common import Context, OperationError, Refusal
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
    detail: dict[str, Any] = {"reason": reason, "by": by, "symbol": symbol or "all"}
    if overridden:
        detail["forced_over"] = overridden
    # The events and the request in one transaction: the notification leaves at the commit.
    await store.request_close([e.id for e in wanted], detail, close_payload(symbol, reason, by))
    latest = wanted
    with anyio.move_on_after(max(0.0, wait)):
        while True:
            latest = [await store.get_execution(e.id) or e for e in wanted]
            if all(not is_open(e) for e in latest):
                break
            await anyio.sleep(POLL)
    return wanted, latest


@dataclass(frozen=True, slots=True)
class Closed:
    """The positions asked to close (`asked`) and the same as last read (`latest`), after
    up to `wait` s; `still_open` names those not yet closed."""

    asked: list[Execution]
    latest: list[Execution]

    @property
    def still_open(self) -> list[str]:
        return [e.symbol or "?" for e in self.latest if is_open(e)]


class Closer(Protocol):
    """Exits that close positions in this process (the HTTP API's gateway to the running
    service): None when this instance cannot (it is not the active one)."""

    async def close_positions(
        self, symbol: str | None, reason: str, requested_by: str, wait: float
    ) -> list[Execution] | None: ...


NOT_ACTIVE = "this instance is not the active one"


async def close(
    ctx: Context,
    symbol: str | None,
    reason: str,
    *,
    by: str,
    wait: float,
    force: bool = False,
    via: Closer | None = None,
) -> Closed | Refusal:
    """Close the open positions of `symbol` (None: all), waiting up to `wait` s for them to
    read closed: by asking the running service over the control channel (see the module's
    docstring), or `via` this process's own exits (the HTTP API on the active instance). A
    Refusal (one sentence) when none is open (`not_found`), when the broker's truth disagrees
    with the ledger's and not `force`, or when `via` cannot close here (`not_ready`)."""
    wanted_symbol = symbol.strip().upper() if symbol is not None else None
    if via is not None:
        return await _close_via(ctx, via, wanted_symbol, reason, by, wait, force)
    if not isinstance(ctx.store, PgStore):
        raise TypeError("close asks the running service through the PostgreSQL store")
    try:
        wanted, latest = await request_close(
            ctx.store,
            wanted_symbol,
            reason,
            by,
            wait,
            bridge_url=ctx.bridge_url,
            force=force,
        )
    except OperationError as refused:
        return Refusal(str(refused))
    if not wanted:
        return _none_open(wanted_symbol)
    return Closed(wanted, latest)


def _none_open(symbol: str | None) -> Refusal:
    return Refusal(
        f"no open position for {symbol}" if symbol else "no open positions", not_found=True
    )


async def _close_via(
    ctx: Context,
    via: Closer,
    symbol: str | None,
    reason: str,
    by: str,
    wait: float,
    force: bool,
) -> Closed | Refusal:
    """The same broker's-truth check, then the exits of this process close them."""
    rows = await ctx.store.positions_to_follow(ctx.clock())
    wanted = [e for e in rows if is_open(e) and (symbol is None or e.symbol == symbol)]
    if wanted:
        try:
            await check_broker(wanted, ctx.bridge_url, force, "close")
        except Disagreement as refused:
            return Refusal(str(refused))
    closing = await via.close_positions(symbol, reason, by, wait)
    if closing is None:
        return Refusal(NOT_ACTIVE, not_ready=True)
    if not closing:
        return _none_open(symbol)
    return Closed(closing, closing)


def summary(e: Execution) -> dict[str, Any]:
    """One position as `close --json` prints it."""
    return _summary(e)


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
