"""The development commands (`paper-bridge`, `demo`) found through entry points.

They live in the development package `trade_executor_dev` (the paper bridge, the demo, the
throwaway PostgreSQL), which the production package never imports: the command line reaches them
by name, through the `trade_executor.development` entry-point group that the same distribution
declares. A build without them answers one sentence instead of a traceback.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

GROUP = "trade_executor.development"


class MissingExtension(Exception):
    """A development command was asked for in an installation that does not carry it."""


def load(name: str) -> Any:
    """The object the entry point `name` of the development group names."""
    for point in entry_points(group=GROUP):
        if point.name == name:
            return point.load()
    raise MissingExtension(
        f"`{name.replace('_', '-')}` is a development command and this installation does not"
        " carry the development package (install the project with `pip install -e .`)"
    )
