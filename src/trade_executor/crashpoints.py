"""Crash points for the chaos tests. TEST-ONLY: inert unless TRADE_EXECUTOR_FAULT names one.

`fault_point("after_claim")` kills this process with SIGKILL when the environment variable
TRADE_EXECUTOR_FAULT equals that name, so a test can prove that a crash at that exact instant
loses nothing and doubles nothing. TRADE_EXECUTOR_FAULT_AFTER=N lets the first N passes live.
"""

from __future__ import annotations

import os
import signal

FAULT_VARIABLE = "TRADE_EXECUTOR_FAULT"
FAULT_POINTS = frozenset(
    {
        "after_claim",
        "after_submitting",
        "after_broker_accepted",
        "after_recorded",
        "poller_after_fill_read",
        # The exits (actors/exits): an exit order's fill read but not written; an exit written
        # but not yet reported; a close POSTed but its answer not recorded.
        "exit_after_fill_read",
        "exit_after_recorded",
        "exit_after_close_post",
    }
)

_passes: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Die here (SIGKILL, no clean-up at all) if the environment asks for it."""
    if os.environ.get(FAULT_VARIABLE) != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] > int(os.environ.get("TRADE_EXECUTOR_FAULT_AFTER", "0")):
        os.kill(os.getpid(), signal.SIGKILL)
