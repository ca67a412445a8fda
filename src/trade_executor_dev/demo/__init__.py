"""`trade-executor demo`: the whole pipeline with no setup, narrated on the terminal.

What it starts, in one process, and stops again before it returns:
- PostgreSQL: a throwaway server (`devdb.server`) when DATABASE_URL is unset, else that database
  (migrated; it must have no approvals waiting, since the demo's executor would take them up);
- the paper bridge, on an ephemeral loopback port, with its price ticker on so LMT orders fill;
- the real service (`Service`: listener, executor, pollers, HTTP API on an ephemeral port) with
  execution enabled against the paper bridge.

Then it inserts a few sample signals, approves them one at a time through `trade_approvals` (the
trigger and the listener do the rest, as in production) and follows each one in the
`executions` and `execution_events` tables (the executor's own ledger) until it settles, printing
each step. Then the trades run to their exits: the paper price of the long is moved to its
stop-loss and that of the short to its take-profit, and the service's exits record each exit
with its realized P&L and R multiple. The service's JSON logs go to a file, not the terminal. It
ends with a summary table and the exits.

- `run`: `run_demo` (the database, the bridge and the service, started and stopped);
- `story`: the sample signals approved and followed in the ledger, then run to their exits;
- `samples`: the sample signals and what became of each;
- `narration`: the terminal, one line per ledger event, and the closing tables.
"""

from .narration import Terminal, describe_event, exits_table, summary_table
from .run import DemoError, demo_settings, run_demo
from .samples import SAMPLES, Outcome, Sample

__all__ = [
    "SAMPLES",
    "DemoError",
    "Outcome",
    "Sample",
    "Terminal",
    "demo_settings",
    "describe_event",
    "exits_table",
    "run_demo",
    "summary_table",
]
