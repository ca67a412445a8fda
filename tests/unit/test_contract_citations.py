"""The code cites "CONTRACT section N": every cited section exists in the repository's copy
(docs/CONTRACT.md), so a reader can follow each citation without leaving the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _sections() -> set[int]:
    text = (ROOT / "docs" / "CONTRACT.md").read_text(encoding="utf-8")
    return {int(n) for n in re.findall(r"^## (\d+)\. ", text, flags=re.M)}


def _citations() -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for path in sorted((ROOT / "src").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"CONTRACT,?\s+sections?\s+([0-9][0-9, andto-]*)", text):
            for number in re.findall(r"\d+", match.group(1)):
                found.setdefault(int(number), []).append(str(path.relative_to(ROOT)))
    return found


def test_the_contract_is_in_the_repository_with_its_sections() -> None:
    assert _sections() == set(range(1, 11))


def test_every_cited_section_exists() -> None:
    cited = _citations()
    assert len(cited) >= 8, "the scan must see the code's citations"
    missing = {n: where for n, where in cited.items() if n not in _sections()}
    assert missing == {}
