"""py-spy (from the bench venv) attached to the running executor, summarised by function."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass
class Profile:
    samples: int
    inclusive: list[tuple[str, int]]  # project functions, by samples on the stack
    leaves: list[tuple[str, int]]  # any function, by samples at the top of the stack
    raw_path: Path

    def as_dict(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "inclusive": self.inclusive,
            "leaves": self.leaves,
            "raw": str(self.raw_path),
        }


def _short(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = match.group("file")
    for marker in ("/site-packages/", "/src/", "/lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{match.group('function')} ({file})"


def summarise(raw_path: Path, top: int = 15) -> Profile:
    """Collapsed stacks ("a;b;c count") -> inclusive counts of project frames, leaf counts."""
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    samples = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [_short(f) for f in stack.split(";")]
        for name in set(frames):
            if "trade_executor/" in name:
                inclusive[name] += count
        leaves[frames[-1]] += count
    return Profile(samples, inclusive.most_common(top), leaves.most_common(top), raw_path)


def record(py_spy: Path, pid: int, seconds: float, out: Path) -> Profile | None:
    """Sample `pid` for `seconds` at 100 Hz; None if py-spy cannot attach.

    py-spy pauses the process for each sample. With `--nonblocking` it reads the stacks of a
    running process instead, and on this executor (asyncio, tasks switching every few
    microseconds) many of those stacks came out torn: in the 10,000-poller profile of a run at
    13d215c only 12% of the samples reached `<module>`, so the inclusive shares were a fraction
    of the real ones. No timing is measured while a profile is taken."""
    command = [
        str(py_spy),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "100",
        "--format",
        "raw",
        "--output",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, timeout=seconds + 60)
    if result.returncode != 0 or not out.exists():
        return None
    return summarise(out)


def startup_command(py_spy: Path, out: Path) -> list[str]:
    """The prefix that starts a program under py-spy from its first instruction (the samples
    are written when the program exits)."""
    return [str(py_spy), "record", "--rate", "200", "--format", "raw", "--output", str(out), "--"]


def children(pid: int) -> list[int]:
    """The direct children of `pid` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found
