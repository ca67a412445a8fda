"""EXPERIMENT (bench only): `trade-executor run` under tracemalloc, for a heap profile.

    TRACED_OUT=/tmp/heap python bench/experiments/traced.py run

Every SIGUSR1 writes `$TRACED_OUT.N.txt`: the traced memory now and its peak since the last
dump, then the 25 largest allocation sites (grouped by the innermost project frame) of what is
alive now. tracemalloc slows the process several times and adds its own memory: use it to see
*where* memory goes, never for the RSS figure itself (bench/experiments/memory_startup.py).
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from types import FrameType

FRAMES = 6
_dumps = 0


def _project_site(trace: tracemalloc.Traceback) -> str:
    """The innermost frame in the project's code (else the innermost frame)."""
    for frame in reversed(trace):  # most recent call first
        if "trade_executor" in frame.filename:
            name = frame.filename.split("trade_executor/", 1)[1]
            return f"{name}:{frame.lineno}"
    frame = trace[0]
    return f"{frame.filename}:{frame.lineno}"


def _dump(signum: int, frame: FrameType | None) -> None:
    global _dumps
    _dumps += 1
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    snapshot = tracemalloc.take_snapshot()
    sites: dict[str, int] = {}
    for stat in snapshot.statistics("traceback"):
        site = _project_site(stat.traceback)
        sites[site] = sites.get(site, 0) + stat.size
    lines = [f"current {current / 2**20:.1f} MB, peak since last dump {peak / 2**20:.1f} MB"]
    for site, size in sorted(sites.items(), key=lambda item: -item[1])[:25]:
        lines.append(f"{size / 2**20:8.2f} MB  {site}")
    out = os.environ.get("TRACED_OUT", "/tmp/heap")
    with open(f"{out}.{_dumps}.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


tracemalloc.start(FRAMES)
signal.signal(signal.SIGUSR1, _dump)

from trade_executor.cli.main import main  # noqa: E402  (imports traced too)

if __name__ == "__main__":
    sys.exit(main())
