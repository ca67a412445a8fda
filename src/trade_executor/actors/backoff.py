"""Exponential backoff with full jitter, for reconnects and restarts."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.1
    cap: float = 5.0
    attempt: int = field(default=0, init=False)

    def next(self) -> float:
        """The next delay: random in [delay/2, delay] where delay doubles up to `cap`."""
        delay = min(self.cap, self.base * 2.0**self.attempt)
        self.attempt += 1
        return delay / 2 + random.random() * delay / 2

    def reset(self) -> None:
        self.attempt = 0
