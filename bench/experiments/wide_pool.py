"""EXPERIMENT (bench only): `trade-executor run` with the order client's pool widened to 200.

    python bench/experiments/wide_pool.py run

The service's bridge client for orders and account reads keeps at most 50 connections
(`BrokerClient(max_connections=50)`). Against the jax bridge a bracket holds its connection
0.7 s, and 5.7 s for a symbol seen the first time, so a paced burst can have more than 50 POSTs
in flight: the 51st waits for a free connection, and so does every account read a decision
needs. This wrapper raises the default to 200 (the pollers' client keeps its explicit size) to
measure what a pool sized for the pacer would give; see bench/ANALYSIS.md, target 5.
"""

from __future__ import annotations

import sys

from trade_executor.broker.client import BrokerClient
from trade_executor.cli.main import main

WIDE = 200

_original = BrokerClient.__init__


def _init(self: BrokerClient, *args: object, **kwargs: object) -> None:
    kwargs.setdefault("max_connections", WIDE)
    _original(self, *args, **kwargs)  # type: ignore[arg-type]


BrokerClient.__init__ = _init  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
