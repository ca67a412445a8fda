"""The direction of imports inside `trade_executor`, read from the source (every import statement,
also those inside functions; those under `if TYPE_CHECKING:` are left out, as they never run).

- `domain` is pure: it imports only the standard library's pure modules and itself (no anyio,
  httpx, asyncpg, starlette, structlog, pydantic-settings, no clock or socket of its own);
- nothing imports upward (LAYERS below): the actors know nothing of the service, the API, the
  operator commands or the CLI; the API nothing of the service; the store nothing of the actors or
  the broker; the broker nothing of the actors or the store; the HTTP API and the web console act
  through the same operations (`ops`) as the CLI, so that a button and a command never differ;
- asyncpg is imported only under `store/` (the development package's database bootstrap and demo
  are not scanned: they are scaffolding);
- production code imports nothing of the development package `trade_executor_dev` (the crash
  points the chaos suite uses are the production module `crashpoints`, inert unless the
  environment names one);
- the top level holds only packages and the entry modules.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import trade_executor

PACKAGE = Path(trade_executor.__file__).resolve().parent

DOMAIN_MAY_IMPORT = frozenset(
    {
        "__future__",
        "bisect",
        "collections",
        "dataclasses",
        "datetime",
        "decimal",
        "enum",
        "functools",
        "itertools",
        "math",
        "re",
        "typing",
        "uuid",
        "zoneinfo",
    }
)

# The components from the top down (pyproject's import-linter contract says the same, for
# `make lint`): a package imports only those below it; `|` marks siblings that import neither.
LAYERS = (
    ("cli",),
    ("service",),
    ("api",),
    ("notify",),
    ("ops", "actors"),
    ("broker", "store"),
    ("observability",),
    ("config",),
    ("domain",),
)
UPWARD = [
    (
        layer,
        tuple(p for above in LAYERS[:at] for p in above)
        + tuple(p for p in LAYERS[at] if p != layer),
    )
    for at, siblings in enumerate(LAYERS)
    for layer in siblings
]
ASYNCPG_ALLOWED = ("store",)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted (trade_executor.actors.executor)
    target: str  # the imported module, dotted and absolute
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree` except those under `if TYPE_CHECKING:`."""
    found: list[ast.AST] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                pending.extend(child.orelse)
                continue
            pending.append(child)
    return found


def imports_of(source: str, module: str, *, is_package: bool = False) -> list[Import]:
    """The runtime imports of one module's source, resolved to absolute dotted names."""
    found: list[Import] = []
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append(Import(module, target, node.lineno))
            # `from trade_executor import testing` imports a module too (for a name that is
            # not a module, the extra entry names the same package, so no rule changes).
            if target.split(".")[0] == "trade_executor":
                found += [
                    Import(module, f"{target}.{alias.name}", node.lineno) for alias in node.names
                ]
    return found


def all_imports() -> list[Import]:
    found: list[Import] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += imports_of(
            path.read_text(encoding="utf-8"),
            _module_name(path),
            is_package=path.name == "__init__.py",
        )
    return found


IMPORTS = all_imports()


def _package_of(dotted: str) -> str | None:
    """The first-level package or module of trade_executor (`actors`, `cli`...), else None."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "trade_executor" else None


def _where(found: list[Import]) -> list[str]:
    return [f"{i.module}:{i.line} imports {i.target}" for i in found]


def test_the_scan_sees_imports_inside_functions_and_skips_type_checking_blocks() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import asyncpg\n"
        "def f():\n    import httpx\n    from . import sibling\n"
    )
    found = {i.target for i in imports_of(source, "trade_executor.domain.x")}
    assert found == {"typing", "httpx", "trade_executor.domain", "trade_executor.domain.sibling"}
    assert any(i.module == "trade_executor.actors.executor" for i in IMPORTS)


def test_the_domain_imports_only_pure_modules_and_itself() -> None:
    bad = [
        i
        for i in IMPORTS
        if _package_of(i.module) == "domain"
        and not i.target.startswith("trade_executor.domain")
        and i.target.split(".")[0] not in DOMAIN_MAY_IMPORT
    ]
    assert _where(bad) == []


@pytest.mark.parametrize(("layer", "above"), UPWARD, ids=[layer for layer, _ in UPWARD])
def test_nothing_imports_upward(layer: str, above: tuple[str, ...]) -> None:
    bad = [i for i in IMPORTS if _package_of(i.module) == layer and _package_of(i.target) in above]
    assert _where(bad) == []


def test_the_api_and_the_console_act_through_the_operations() -> None:
    from_api = {
        i.module
        for i in IMPORTS
        if _package_of(i.module) == "api" and _package_of(i.target) == "ops"
    }
    assert "trade_executor.api.app" in from_api, "the HTTP API protects through ops"
    assert "trade_executor.api.console.actions" in from_api, "the console acts through ops"


def _calls(tree: ast.AST) -> list[tuple[str, int]]:
    """Calls of a bare name (`print(...)`) or of `module.name` (`asyncio.run(...)`)."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            found.append((func.id, node.lineno))
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            found.append((f"{func.value.id}.{func.attr}", node.lineno))
    return found


def test_the_operations_neither_parse_nor_print_nor_run_an_event_loop() -> None:
    """`ops` is the use-case layer: typed async functions returning results or refusals. The
    command line (`commands`) parses, runs and prints; an operation doing any of it could not
    be offered by the API or called from a test as it is."""
    bad: list[str] = []
    for path in sorted((PACKAGE / "ops").rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bad += [
            f"{module}:{i.line} imports {i.target}"
            for i in imports_of(path.read_text(encoding="utf-8"), module)
            if i.target == "argparse"
        ]
        bad += [
            f"{module}:{line} calls {name}"
            for name, line in _calls(tree)
            if name in ("print", "asyncio.run", "anyio.run", "trio.run")
        ]
    assert bad == []


def test_asyncpg_is_imported_only_under_the_store() -> None:
    bad = [
        i
        for i in IMPORTS
        if i.target.split(".")[0] == "asyncpg" and _package_of(i.module) not in ASYNCPG_ALLOWED
    ]
    assert _where(bad) == []


def test_production_code_imports_nothing_of_the_development_package() -> None:
    bad = [i for i in IMPORTS if i.target.split(".")[0] == "trade_executor_dev"]
    assert _where(bad) == []
    assert any(i.target == "trade_executor.crashpoints" for i in IMPORTS), (
        "the crash points are a production module of their own"
    )


def test_the_top_level_holds_only_packages_and_the_entry_modules() -> None:
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert modules == ["__init__.py", "__main__.py", "clock.py", "crashpoints.py"]
