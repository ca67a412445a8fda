"""Named bind parameters (`:name`) for SQL text, turned into asyncpg's positional `$n`.

A statement that takes twenty values is easier to read, and impossible to misnumber, when each
value is named once in the text and passed by keyword. `::type` casts are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class NamedQuery:
    sql: str  # with $1..$n
    names: tuple[str, ...]  # the name of each $n, in order

    @classmethod
    def parse(cls, text: str) -> NamedQuery:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        return cls(_NAME.sub(number, text), tuple(names))

    def args(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional arguments, in order; a missing or extra name is a bug here."""
        missing = set(self.names) - values.keys()
        extra = values.keys() - set(self.names)
        if missing or extra:
            raise KeyError(f"parameters missing {sorted(missing)}, unexpected {sorted(extra)}")
        return tuple(values[name] for name in self.names)
