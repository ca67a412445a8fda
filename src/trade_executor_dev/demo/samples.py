"""The demo's sample signals, one per case it shows, and what became of each.

Prices are strings (read as Decimal where they are used): no float ever carries a price.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class Sample:
    case: str  # what this signal shows
    symbol: str
    side: str
    entry: str
    stop: str
    target: str
    expires_in: timedelta = timedelta(hours=1)


SAMPLES = (
    Sample("a long", "AAPL", "BUY", "150", "145", "160"),
    Sample("a short", "TSLA", "SELL", "250", "260", "230"),
    Sample("over the daily risk budget", "NVDA", "BUY", "120", "114", "135"),
    Sample("stop on the wrong side", "MSFT", "BUY", "400", "410", "420"),
    Sample("expires before approval", "AMZN", "BUY", "180", "175", "190", timedelta(seconds=1)),
)


@dataclass
class Outcome:
    sample: Sample
    signal_id: uuid.UUID
    row: dict[str, Any] | None = None
    exit: dict[str, Any] | None = None  # the execution once its position closed
