"""The operating mode an operator is shown (banner, STATUS=, `/health`, the console): DRY RUN,
PAPER, LIVE, LIVE REFUSED or LIVE?, from three facts the service already holds."""

from __future__ import annotations

from typing import Literal

AccountKind = Literal["paper", "live"]  # what the bridge's /health says its account is

MODE_BANNERS = {
    "DRY RUN": "DRY RUN: EXECUTION_ENABLED=false, no order is sent to the broker",
    "PAPER": "PAPER: orders are sent to the bridge's paper account",
    "LIVE": "*** LIVE: orders are sent to the bridge's LIVE account: real money ***",
    "LIVE?": "orders are sent to the bridge; whether its account is paper or live is not known yet",
    "LIVE REFUSED": "LIVE account but ALLOW_LIVE_TRADING=false: every approval is rejected "
    "live_trading_not_allowed, no order is sent",
}


def operating_mode(
    execution_enabled: bool, account: AccountKind | None, allow_live_trading: bool = True
) -> str:
    """DRY RUN, PAPER, LIVE, LIVE REFUSED (a live account without ALLOW_LIVE_TRADING: nothing
    is sent), or LIVE? (orders sent, the account's type not known)."""
    if not execution_enabled:
        return "DRY RUN"
    if account == "paper":
        return "PAPER"
    if account == "live":
        return "LIVE" if allow_live_trading else "LIVE REFUSED"
    return "LIVE?"
