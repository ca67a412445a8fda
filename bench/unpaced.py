"""`trade-executor run` with the pacing bucket bypassed: BENCH ONLY, never a way to run it.

    python bench/unpaced.py run

BRIDGE_MAX_MESSAGES_PER_SECOND allows at most 50 messages a second, so a burst of 500 brackets
(1,500 messages) takes 30 s whatever the executor does: measuring throughput against a peer
with the pacer in place would measure the pacer. This wrapper replaces `paced` in the wiring by
the identity before the service starts, so every other part of the executor is the real one.
"""

from __future__ import annotations

import sys

from trade_executor.broker.pacing import Pacer
from trade_executor.broker.protocol import Broker
from trade_executor.cli.main import main
from trade_executor.service import wiring


def _unpaced(broker: Broker, pacer: Pacer) -> Broker:
    return broker


wiring.paced = _unpaced  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(main())
