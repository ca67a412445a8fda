"""The one wall clock: `Clock`, what a component is handed to read the time, and `utcnow`, the
real one (an aware UTC moment).

Every component that reads the time takes a `Clock` (default `utcnow`), so a test can hand it a
settable one; a one-off read calls `utcnow()`. The monotonic clock (timeouts, pacing) stays
anyio's own (`anyio.current_time`), which trio's `MockClock` drives in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utcnow"]

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Now, as an aware UTC moment."""
    return datetime.now(UTC)
