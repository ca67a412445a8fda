"""The store's SQL files (`store/sql/*.sql`): every named query is loaded by a constant that the
code uses, nothing in the files goes unused, the apply queries' SET list is every field of
`Changes`, and no store module assembles SQL from f-string fragments. That each query parses
is tests/integration/store/test_sql_prepare.py's (PREPARE on PostgreSQL)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import trade_executor
from trade_executor.domain.execution import CHANGE_FIELDS
from trade_executor.store import queries as q
from trade_executor.store import schema_version, sqlfiles
from trade_executor.store.migrate import MIGRATIONS_TABLE

SRC = Path(trade_executor.__file__).parent
LOADED = re.compile(r'^([A-Z_][A-Z0-9_]*) = _SQL\.(?:text|named)\("([a-z0-9_]+)"\)$', re.M)
LOADS = re.compile(r'_SQL = load\("([a-z_]+\.sql)"\)')


def python_sources() -> dict[Path, str]:
    return {path: path.read_text("utf-8") for path in SRC.rglob("*.py")}


def loaded_constants() -> dict[tuple[str, str], tuple[Path, str]]:
    """(file, query) -> (module, constant) for every `NAME = _SQL.text("query")`."""
    found: dict[tuple[str, str], tuple[Path, str]] = {}
    for path, text in python_sources().items():
        files = LOADS.findall(text)
        if not files:
            continue
        [filename] = files  # one file per module
        for constant, query in LOADED.findall(text):
            assert (filename, query) not in found, f"{filename}:{query} is loaded twice"
            found[(filename, query)] = (path, constant)
    return found


def test_every_query_of_every_file_is_loaded_by_a_constant() -> None:
    loaded = loaded_constants()
    for filename in sqlfiles.filenames():
        for name in sqlfiles.load(filename).queries:
            assert (filename, name) in loaded, f"{filename}: {name} is loaded by no constant"
    for filename, name in loaded:
        assert name in sqlfiles.load(filename).queries, f"{filename} has no query {name}"


def test_every_loaded_query_is_used() -> None:
    """Used: named somewhere besides its own definition (and an `__all__`)."""
    besides = re.compile(r"^(?:[A-Z_][A-Z0-9_]* = _SQL\.\w+\(.*\)|__all__ = .*)$", re.M)
    code = "\n".join(besides.sub("", text) for text in python_sources().values())
    for (filename, name), (module, constant) in loaded_constants().items():
        assert re.search(rf"\b{constant}\b", code), (
            f"{filename}: {name} ({module.name}: {constant}) is never used"
        )


@pytest.mark.parametrize("query", [q.APPLY, q.APPLY_FENCED], ids=["apply", "apply_fenced"])
def test_the_apply_queries_set_every_field_of_changes(query: object) -> None:
    assert isinstance(query, type(q.APPLY))
    sets = re.findall(r"^\s+(\w+) = COALESCE\(\$\d+, \1\),?$", query.sql, re.M)
    assert [name for name in sets if name != "state"] == list(CHANGE_FIELDS)
    assert ("fence_epoch" in query.names) is (query is q.APPLY_FENCED)


def test_the_schema_version_reads_the_migrations_table() -> None:
    assert MIGRATIONS_TABLE in schema_version._LATEST


def test_no_store_module_assembles_sql_from_fragments() -> None:
    assembled = re.compile(r'f"""|\.format\(|f"(?:SELECT|INSERT|UPDATE|DELETE|WITH|SET|LOCK)\b')
    allowed = {"migrate.py"}  # DDL naming tables (identifiers cannot be bind parameters)
    offenders = [
        path.name
        for path in (SRC / "store").rglob("*.py")
        if path.name not in allowed and assembled.search(path.read_text("utf-8"))
    ]
    assert offenders == []


def test_a_file_is_parsed_into_its_named_queries() -> None:
    parsed = sqlfiles.parse(
        "x.sql",
        "-- the file\n\n-- name: one\n-- what it does\nSELECT 1\n\n-- name: two\nSELECT $1\n",
    )
    assert dict(parsed.queries) == {"one": "-- what it does\nSELECT 1\n", "two": "SELECT $1\n"}
    with pytest.raises(ValueError, match="named twice"):
        sqlfiles.parse("x.sql", "-- name: one\nSELECT 1\n-- name: one\nSELECT 2\n")
    with pytest.raises(ValueError, match="empty"):
        sqlfiles.parse("x.sql", "-- name: one\n-- nothing\n")
    commented = sqlfiles.parse("x.sql", "-- name: one\n-- uses :value\nSELECT :value\n")
    with pytest.raises(ValueError, match="parameter"):
        commented.named("one")
