"""The store's roles: `Store` is five roles that partition it, every narrower role is made of
its methods, and both stores satisfy every role (mypy checks the assignments below, the tests
check the signatures at run time)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import pytest

from trade_executor.store import protocol as p
from trade_executor.store.postgres import PgStore
from trade_executor_dev.testing import MemoryStore

PARTITION = (p.ClaimStore, p.LedgerStore, p.OperatorStore, p.OriginalStore, p.BreakStore)


def members(role: type) -> set[str]:
    """The methods a role declares, its bases' included."""
    return {
        name
        for klass in role.__mro__
        if klass is not object
        for name, value in vars(klass).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(value)
    }


def test_the_five_roles_partition_the_store() -> None:
    seen: set[str] = set()
    for role in PARTITION:
        assert not members(role) & seen, role.__name__
        seen |= members(role)
    assert seen == members(p.Store)
    assert len(seen) == 32  # a new method of the store is given a role here too


@pytest.mark.parametrize("role", p.ROLES, ids=lambda r: r.__name__)
def test_every_role_is_made_of_the_stores_methods_with_their_signatures(role: type) -> None:
    store = {name: inspect.signature(getattr(p.Store, name)) for name in members(p.Store)}
    for name in members(role):
        assert name in store, f"{role.__name__}.{name} is not a method of Store"
        assert inspect.signature(getattr(role, name)) == store[name], f"{role.__name__}.{name}"


@pytest.mark.parametrize("implementation", [PgStore, MemoryStore], ids=lambda c: c.__name__)
@pytest.mark.parametrize("role", p.ROLES, ids=lambda r: r.__name__)
def test_both_stores_satisfy_every_role(role: type, implementation: type) -> None:
    for name in members(role):
        method = getattr(implementation, name, None)
        assert method is not None and inspect.iscoroutinefunction(method), name
        wanted = list(inspect.signature(getattr(role, name)).parameters)
        assert list(inspect.signature(method).parameters) == wanted, name


if TYPE_CHECKING:
    # mypy --strict checks each store against each role here (make lint).
    def _pg(s: PgStore) -> None:
        store: p.Store = s
        claims: p.ClaimStore = s
        ledger: p.LedgerStore = s
        operator: p.OperatorStore = s
        original: p.OriginalStore = s
        breaks: p.BreakStore = s
        transitions: p.Transitions = s
        listener: p.ListenerStore = s
        pollers: p.PollerStore = s
        exits: p.ExitStore = s
        protect: p.ProtectStore = s
        reconciler: p.ReconcilerStore = s
        report: p.ReportStore = s
        lookup: p.LookupStore = s
        del store, claims, ledger, operator, original, breaks, transitions, listener
        del pollers, exits, protect, reconciler, report, lookup

    def _memory(s: MemoryStore) -> None:
        store: p.Store = s
        transitions: p.Transitions = s
        listener: p.ListenerStore = s
        pollers: p.PollerStore = s
        exits: p.ExitStore = s
        protect: p.ProtectStore = s
        reconciler: p.ReconcilerStore = s
        report: p.ReportStore = s
        lookup: p.LookupStore = s
        del store, transitions, listener, pollers, exits, protect, reconciler, report, lookup
