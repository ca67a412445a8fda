"""Following working orders to their end: one status read for all of them (see `pool`), the
per-order rules in a pure core (`judge`), the ledger writes (`acting`), the bridge reads
(`reads`) and the bracket children's statuses for the exits (`children`)."""

from .children import BracketChildren, ChildStatus, bracket_children
from .judge import Bounds, Poller, default_lost_grace, judge
from .pool import FollowStats, PollerPool

__all__ = [
    "Bounds",
    "BracketChildren",
    "ChildStatus",
    "FollowStats",
    "Poller",
    "PollerPool",
    "bracket_children",
    "default_lost_grace",
    "judge",
]
