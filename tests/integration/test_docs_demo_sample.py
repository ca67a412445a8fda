"""The README's demo sample is what `make demo` prints (review finding: it lacked the exits the
demo prints now). Run for real; times, ids, ports, paths and the token are the only differences
allowed."""

from __future__ import annotations

import io
import re
from pathlib import Path

from trade_executor.config.sources import load_settings
from trade_executor_dev.demo.run import run_demo

README = Path(__file__).resolve().parents[2] / "README.md"
MASKS = [
    (re.compile(r"^\[\s*\d+\.\d+s\] ", re.M), "[t] "),
    (
        re.compile(r"PostgreSQL \S+: a throwaway server in .*$", re.M),
        "PostgreSQL: a throwaway server",
    ),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"^(\[t\] market: ).*?(; the demo sends anyway)", re.M), r"\1SESSION\2"),
    (re.compile(r"\b[0-9a-f]{8}\b"), "ID"),
    (re.compile(r"to act: \S+ \(made for this run\)"), "to act: TOKEN (made for this run)"),
]


def masked(text: str) -> list[str]:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return [line.rstrip() for line in text.strip().splitlines()]


def readme_sample() -> str:
    text = README.read_text()
    start = text.index("```text\n$ make demo\n") + len("```text\n$ make demo\n")
    return text[start : text.index("```", start)]


def test_readme_demo_sample_is_what_the_demo_prints() -> None:
    out = io.StringIO()
    assert run_demo(load_settings(), out=out) == 0
    printed, documented = masked(out.getvalue()), masked(readme_sample())
    assert any(line.startswith("exit ") for line in printed)  # the exits table is there
    assert documented == printed
