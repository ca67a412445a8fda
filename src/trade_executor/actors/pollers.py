"""Kept for its importers: the pollers now live in `trade_executor.actors.following`."""

from trade_executor.actors.following import Poller, PollerPool

__all__ = ["Poller", "PollerPool"]
