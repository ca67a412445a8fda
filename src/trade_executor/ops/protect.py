"""`protect SYMBOL [--stop P] [--take-profit P] [--force]` and `POST /api/v1/protect`: protect
an open position again through the bridge's `POST /positions/{symbol}/protect` (CONTRACT
sections 2 and 5, "Exits").

The body sent to the bridge: `{"stop_loss": P, "take_profit": P (optional), "quantity": N,
"replace_existing": true}`: `stop_loss` and `take_profit` default to the signal's stop and
target, `quantity` is the broker's (unsigned), and `replace_existing` makes the bridge cancel
the position's working protective orders first, so a repeat replaces, never doubles.

The same checks as `close` (`domain.truth`): the broker's quantity must equal the ledger's
and every protective order the ledger believes works must be listed working, else one
sentence naming both sides (exit 1) unless `--force`. The orders placed are recorded as the
position's exit orders (one guarded transition, the operator in its detail) and announced, so
the running service's exits follow them within a second.
"""

from __future__ import annotations

import argparse
from decimal import Decimal

from trade_executor.config.sources import Settings
from trade_executor.ops.broker_truth import ProtectOutcome, protect_body, protect_position
from trade_executor.ops.common import fail, who, with_store
from trade_executor.ops.exit_codes import EX_USAGE, CommandError
from trade_executor.ops.exit_price import parse_price


def _price(text: str | None, name: str) -> Decimal | None:
    if text is None:
        return None
    try:
        return parse_price(text)
    except ValueError as error:
        raise CommandError(f"{name}: {error}", EX_USAGE) from None


def protect(settings: Settings, args: argparse.Namespace) -> int:
    symbol = str(args.symbol).strip().upper()
    if not symbol:
        raise CommandError("give a SYMBOL", EX_USAGE)
    stop = _price(args.stop, "--stop")
    target = _price(args.take_profit, "--take-profit")
    by = who(args)
    result = with_store(
        settings,
        lambda store: protect_position(
            store, settings.ib_bridge_url, symbol, stop, target, bool(args.force), by
        ),
    )
    if not result.ok:
        return fail(result.message)
    print(result.message)
    return 0


__all__ = ["ProtectOutcome", "protect", "protect_body", "protect_position"]
