"""The store's SQL, read from the `.sql` files of `store/sql/`: named queries, one file per concern.

A file holds its queries one after another, each opened by a `-- name: <name>` line; the
comment lines that follow it say what the query does and go to the server with it. A query is
whole text: nothing is assembled from fragments in Python, so what a file shows is what
PostgreSQL runs (tests/integration/store/test_sql_files.py PREPAREs every query against the
migrated schema and checks each is used). Values are bind parameters: `$n`, or `:name` for a
`NamedQuery` (`store.named`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType

from trade_executor.store.named import NamedQuery

_NAME_LINE = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class SqlFile:
    filename: str
    queries: Mapping[str, str]  # name -> text, in the file's order

    def text(self, name: str) -> str:
        """The query `name` as written (positional `$n` parameters)."""
        return self.queries[name]

    def named(self, name: str) -> NamedQuery:
        """The query `name`, its `:name` parameters numbered (see `store.named`). Its comments
        must not look like parameters (they would be numbered too)."""
        text = self.queries[name]
        comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("--"))
        if NamedQuery.parse(comments).names:
            raise ValueError(f"{self.filename}: a comment of {name!r} names a :parameter")
        return NamedQuery.parse(text)


def parse(filename: str, text: str) -> SqlFile:
    """The named queries of one file's `text`. Anything before the first name is the file's
    own commentary; a name given twice is an error."""
    marks = list(_NAME_LINE.finditer(text))
    queries: dict[str, str] = {}
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following is not None else len(text)
        name = mark.group(1)
        if name in queries:
            raise ValueError(f"{filename}: the query {name!r} is named twice")
        body = text[mark.end() : end].strip("\n")
        if not _sql_of(body).strip():
            raise ValueError(f"{filename}: the query {name!r} is empty")
        queries[name] = body.rstrip() + "\n"
    return SqlFile(filename, MappingProxyType(queries))


def _sql_of(body: str) -> str:
    return "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--"))


@cache
def load(filename: str) -> SqlFile:
    """`store/sql/<filename>`, parsed once per process."""
    text = resources.files("trade_executor.store").joinpath("sql", filename).read_text("utf-8")
    return parse(filename, text)


def filenames() -> list[str]:
    """Every `.sql` file of `store/sql/`, sorted."""
    folder = resources.files("trade_executor.store").joinpath("sql")
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
