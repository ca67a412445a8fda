"""The RiskBook is changed from one module: the executor's core (`actors/execution/core.py`).

Read from the source with `ast`: every module under `src/trade_executor` but the core, the
RiskBook itself (`domain/riskbook.py`) and its builder from the ledger (`domain/ledger.py`'s
`rebuild_riskbook`, a pure function that fills a book it has just made) must not

- call a mutating method of a RiskBook (`reserve`, `commit`, `release`, `finish`, `decide`, ...),
- assign to a RiskBook's attributes, or to a subscript of them,
- replace a RiskBook held in an attribute (`x.riskbook = ...`).

A RiskBook is recognised by how the code names it: an attribute or a name called `riskbook` or
`book` (with or without a leading underscore), a name annotated `RiskBook`, or a name bound to a
RiskBook expression, to `RiskBook(...)` or to `rebuild_riskbook(...)`. The detector is tested too,
on snippets that change a book each way, so this test can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import trade_executor

PACKAGE = Path(trade_executor.__file__).resolve().parent

OWNERS = frozenset(
    {
        "actors/execution/core.py",  # the one owner of the executor's RiskBook
        "domain/riskbook.py",  # the RiskBook itself
        "domain/ledger.py",  # rebuild_riskbook: fills the fresh book it returns
    }
)

MUTATORS = frozenset(
    {
        "set_trading_state",
        "set_broker_positions",
        "decide",
        "set_realized",
        "reserve",
        "commit",
        "release",
        "hold_for_day",
        "finish",
        "restore",
        "_add_live",
        "_pop_live",
        "_add_risk",
        "_prune",
        "_hold_symbol",
        "_check_new",
    }
)
BOOK_NAMES = frozenset({"riskbook", "_riskbook", "book", "_book"})
BUILDERS = frozenset({"RiskBook", "rebuild_riskbook"})


def _annotated_book(annotation: ast.expr | None) -> bool:
    return annotation is not None and "RiskBook" in ast.unparse(annotation)


class _Finder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.aliases: set[str] = set(BOOK_NAMES)
        self.found: list[tuple[int, str]] = []

    # -- what is a RiskBook ----------------------------------------------------------------------

    def _is_book(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.aliases
        if isinstance(node, ast.Attribute):
            return node.attr in BOOK_NAMES
        return False

    def _makes_book(self, node: ast.expr) -> bool:
        if self._is_book(node):
            return True
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            return name in BUILDERS
        return False

    def collect_aliases(self, tree: ast.AST) -> None:
        """Names bound to a RiskBook anywhere in the module (a fixed point: aliases of aliases)."""
        while True:
            before = len(self.aliases)
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and self._makes_book(node.value):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            self.aliases.add(target.id)
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    value = node.value
                    if _annotated_book(node.annotation) or (
                        value is not None and self._makes_book(value)
                    ):
                        self.aliases.add(node.target.id)
                elif isinstance(node, ast.NamedExpr) and self._makes_book(node.value):
                    self.aliases.add(node.target.id)
                elif isinstance(node, ast.arg) and _annotated_book(node.annotation):
                    self.aliases.add(node.arg)
            if len(self.aliases) == before:
                return

    # -- what changes one ------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in MUTATORS and self._is_book(func.value):
            self.found.append((node.lineno, f"calls {ast.unparse(func)}()"))
        self.generic_visit(node)

    def _target(self, target: ast.expr, lineno: int) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._target(element, lineno)
            return
        if isinstance(target, ast.Attribute):
            if self._is_book(target.value):
                self.found.append((lineno, f"assigns {ast.unparse(target)}"))
            elif target.attr in BOOK_NAMES:
                self.found.append((lineno, f"replaces {ast.unparse(target)}"))
        elif isinstance(target, ast.Subscript):
            inner = target.value
            if isinstance(inner, ast.Attribute) and self._is_book(inner.value):
                self.found.append((lineno, f"assigns into {ast.unparse(target)}"))

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._target(target, node.lineno)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._target(node.target, node.lineno)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._target(node.target, node.lineno)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._target(target, node.lineno)
        self.generic_visit(node)


def riskbook_changes(source: str) -> list[tuple[int, str]]:
    """(line, what) for every change of a RiskBook in `source`."""
    tree = ast.parse(source)
    finder = _Finder()
    finder.collect_aliases(tree)
    finder.visit(tree)
    return finder.found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_only_the_core_changes_the_riskbook() -> None:
    offenders = []
    for path in _modules():
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in OWNERS:
            continue
        for line, what in riskbook_changes(path.read_text(encoding="utf-8")):
            offenders.append(f"{relative}:{line}: {what}")
    assert not offenders, "the RiskBook is changed outside the core:\n" + "\n".join(offenders)


def test_the_owners_exist() -> None:
    """A renamed core must rename the allowance too (else the test would allow nothing real)."""
    for relative in OWNERS:
        assert (PACKAGE / relative).is_file(), relative
    core = (PACKAGE / "actors/execution/core.py").read_text(encoding="utf-8")
    assert riskbook_changes(core), "the core changes no RiskBook: the detector misses it"


@pytest.mark.parametrize(
    "source",
    [
        "s.riskbook.release(x)",
        "self._s.riskbook.commit(execution.id)",
        "book.finish(x, filled_qty=1)",
        "riskbook = self._s.riskbook\nriskbook.set_realized(a, b, c)",
        "other = s.riskbook\nagain = other\nagain.hold_for_day(x)",
        "def f(b: RiskBook) -> None:\n    b.reserve(x, 'A', d, now)",
        "fresh = rebuild_riskbook(limits, tz, [], now)\nfresh.restore(x, 'A', d, day)",
        "s.riskbook = RiskBook(limits, tz)",
        "s.riskbook.trading_state = TradingState(True)",
        "s.riskbook._live[x] = y",
        "s.riskbook._pruned_on = None",
        "(s.riskbook.limits, y) = (a, b)",
        "s.riskbook.decide(x, signal, account, now)",
    ],
)
def test_the_detector_sees_a_change(source: str) -> None:
    assert riskbook_changes(source), source


@pytest.mark.parametrize(
    "source",
    [
        "s.riskbook.daily_risk_used(now)",
        "book.is_open('AAPL')",
        "day = RiskBook(limits, tz).trading_day(now)",
        "limiter.release()",
        "transaction.commit()",
        "s.core.released(x)",
        "riskbook_total = 3",
    ],
)
def test_the_detector_leaves_reads_alone(source: str) -> None:
    assert not riskbook_changes(source), source


# -- the exits: the same shape (`actors/exits/core.py` owns the follower's state) ---------------

EXITS = PACKAGE / "actors" / "exits"
POSITION_FIELDS = frozenset({"execution", "closing", "cancels"})
EXITS_STATE = frozenset({"followed", "busy", "pool_index", "flatten", "stats", "_told"})


def exits_state_changes(source: str) -> list[tuple[int, str]]:
    """(line, what) for every change of the exits' state in `source`: a followed position's
    row, close or cancels; the followed map, the work under way, the list read, the tallies."""
    found: list[tuple[int, str]] = []

    def target(node: ast.expr, lineno: int) -> None:
        if isinstance(node, ast.Tuple | ast.List):
            for element in node.elts:
                target(element, lineno)
        elif isinstance(node, ast.Attribute):
            owner = node.value
            of_self = isinstance(owner, ast.Name) and owner.id == "self"
            state = node.attr in EXITS_STATE or (node.attr in POSITION_FIELDS and not of_self)
            if state or (isinstance(owner, ast.Attribute) and owner.attr in EXITS_STATE):
                found.append((lineno, f"assigns {ast.unparse(node)}"))
        elif isinstance(node, ast.Subscript):
            inner = node.value
            if isinstance(inner, ast.Attribute) and inner.attr in POSITION_FIELDS | EXITS_STATE:
                found.append((lineno, f"assigns into {ast.unparse(node)}"))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign):
            for each in node.targets:
                target(each, node.lineno)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign) and node.value is not None:
            target(node.target, node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func, owner = node.func, node.func.value
            mutating = {"add", "discard", "pop", "clear", "set", "update", "remove"}
            if (
                func.attr in mutating
                and isinstance(owner, ast.Attribute)
                and owner.attr in EXITS_STATE | {"closed", "cancels"}
            ):
                found.append((node.lineno, f"calls {ast.unparse(func)}()"))
    return found


def test_only_the_exits_core_changes_the_exits_state() -> None:
    offenders = []
    for path in sorted(EXITS.glob("*.py")):
        if path.name == "core.py":
            continue
        for line, what in exits_state_changes(path.read_text(encoding="utf-8")):
            offenders.append(f"actors/exits/{path.name}:{line}: {what}")
    assert not offenders, "the exits' state is changed outside its core:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    "source",
    [
        "followed.closing = None",
        "followed.execution = await store.apply(x)",
        "followed.cancels[order_id] = attempts",
        "self._s.stats.cancels += 1",
        "s.followed.pop(execution.id, None)",
        "self._s.busy.add(key)",
        "s.pool_index = None",
        "followed.closed.set()",
        "self._told.add(key)",
    ],
)
def test_the_exits_detector_sees_a_change(source: str) -> None:
    assert exits_state_changes(source), source
