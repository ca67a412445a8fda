"""The Supervisor on its own, with tiny fake children, on asyncio and trio.

No clocks are asserted: tests wait for outcomes (under a deadline that only guards against a
hang) and read the restart delays the supervisor logs.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskStatus
from structlog.testing import capture_logs

from trade_executor.actors.supervisor import ChildGaveUp, Supervisor, describe

# The core's tests run on trio too (tests/conftest.py, `both_backends`).
pytestmark = [pytest.mark.anyio, pytest.mark.both_backends]


ChildRun = Callable[..., Coroutine[Any, Any, None]]


@dataclass
class FakeChild:
    """Run number n (1-based) fails after starting when n is in `fail_runs` (or always, with
    `always_fail`); `fail_before_start` fails run 1 before it calls `started()`."""

    fail_runs: set[int] = field(default_factory=set)
    always_fail: bool = False
    fail_before_start: bool = False
    hold_start: anyio.Event | None = None
    return_after_start: bool = False
    runs: int = 0
    changed: anyio.Event = field(default_factory=anyio.Event)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self.runs += 1
        run = self.runs
        self._wake()
        if self.fail_before_start:
            raise ValueError("cannot start")
        if self.hold_start is not None:
            await self.hold_start.wait()
        task_status.started()
        if self.return_after_start:
            return
        await anyio.lowlevel.checkpoint()
        if self.always_fail or run in self.fail_runs:
            raise RuntimeError(f"crash in run {run}")
        await anyio.sleep_forever()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def until_runs(self, count: int) -> None:
        with anyio.fail_after(10):
            while self.runs < count:
                await self.changed.wait()


def leaves(error: BaseException) -> list[BaseException]:
    """The non-group exceptions inside (possibly nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


async def wait_until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not predicate():
            await anyio.sleep(0.005)


async def test_a_failure_before_started_propagates_at_once() -> None:
    supervisor = Supervisor(backoff_base=0.001)
    child = FakeChild(fail_before_start=True)

    with pytest.raises(BaseException) as raised:
        async with anyio.create_task_group() as tg:
            await tg.start(supervisor.supervise, "child", child.run)

    assert [type(e) for e in leaves(raised.value)] == [ValueError]
    assert child.runs == 1  # not restarted
    health = supervisor.children["child"]
    assert health.restarts == 0 and health.state in ("stopped", "failed")
    assert not supervisor.healthy()


async def test_start_returns_once_the_child_has_started() -> None:
    supervisor = Supervisor()
    child = FakeChild()
    async with anyio.create_task_group() as tg:
        await tg.start(supervisor.supervise, "child", child.run)
        assert child.runs == 1
        assert supervisor.children["child"].state == "running"
        assert supervisor.healthy()
        tg.cancel_scope.cancel()
    assert supervisor.children["child"].state == "stopped"
    assert not supervisor.healthy()


async def test_health_states_and_healthy_only_when_all_run() -> None:
    supervisor = Supervisor()
    assert not supervisor.healthy()  # nothing supervised yet
    first, second = FakeChild(), FakeChild(hold_start=anyio.Event())
    async with anyio.create_task_group() as tg:
        await tg.start(supervisor.supervise, "first", first.run)
        assert supervisor.healthy()
        tg.start_soon(supervisor.supervise, "second", second.run)
        await second.until_runs(1)
        assert supervisor.children["second"].state == "starting"
        assert not supervisor.healthy()
        assert second.hold_start is not None
        second.hold_start.set()
        await wait_until(lambda: supervisor.children["second"].state == "running")
        assert supervisor.healthy()
        tg.cancel_scope.cancel()
    assert {name: c.state for name, c in supervisor.children.items()} == {
        "first": "stopped",
        "second": "stopped",
    }


async def test_a_child_that_returns_is_stopped_not_restarted() -> None:
    supervisor = Supervisor(backoff_base=0.001)
    child = FakeChild(return_after_start=True)
    async with anyio.create_task_group() as tg:
        await tg.start(supervisor.supervise, "child", child.run)
    assert child.runs == 1
    assert supervisor.children["child"].state == "stopped"
    assert not supervisor.healthy()


async def test_a_child_that_fails_after_starting_is_restarted_with_backoff() -> None:
    supervisor = Supervisor(backoff_base=0.01, backoff_cap=1.0, max_restarts=5)
    child = FakeChild(fail_runs={1, 2, 3})
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            await tg.start(supervisor.supervise, "child", child.run)
            await child.until_runs(4)
            await wait_until(lambda: supervisor.children["child"].state == "running")
            health = supervisor.children["child"]
            assert health.restarts == 3
            assert health.last_error == "RuntimeError: crash in run 3"
            assert supervisor.healthy()
            tg.cancel_scope.cancel()

    delays = [e["delay"] for e in logs if e["event"] == "supervisor.child_restarted"]
    assert len(delays) == 3
    # Exponential backoff with jitter: attempt n waits within [base*2^n / 2, base*2^n].
    for attempt, delay in enumerate(delays):
        assert 0.01 * 2**attempt / 2 - 0.001 <= delay <= 0.01 * 2**attempt + 0.001


async def test_a_child_that_keeps_failing_makes_the_supervisor_give_up() -> None:
    supervisor = Supervisor(backoff_base=0.001, max_restarts=3, window=60)
    child = FakeChild(always_fail=True)

    with capture_logs() as logs, pytest.raises(BaseException) as raised:
        async with anyio.create_task_group() as tg:
            await tg.start(supervisor.supervise, "child", child.run)
            await anyio.sleep_forever()

    assert [type(e) for e in leaves(raised.value)] == [ChildGaveUp]
    assert child.runs == 4  # the first run and three restarts, then a fourth failure too many
    health = supervisor.children["child"]
    assert health.state == "failed" and health.restarts == 3
    assert not supervisor.healthy()
    assert [e["event"] for e in logs if e.get("log_level") == "critical"] == [
        "supervisor.child_gave_up"
    ]


async def test_failures_outside_the_window_do_not_count() -> None:
    # window=0: only failures at the very same instant would count together; every restart
    # waits a backoff first, so the supervisor keeps restarting past max_restarts.
    supervisor = Supervisor(backoff_base=0.002, max_restarts=1, window=0.0)
    child = FakeChild(fail_runs={1, 2, 3, 4})
    async with anyio.create_task_group() as tg:
        await tg.start(supervisor.supervise, "child", child.run)
        await child.until_runs(5)
        await wait_until(lambda: supervisor.children["child"].state == "running")
        assert supervisor.children["child"].restarts == 4
        tg.cancel_scope.cancel()


async def test_a_restarting_child_makes_the_supervisor_unhealthy() -> None:
    supervisor = Supervisor(backoff_base=60.0, backoff_cap=60.0)  # stays in its backoff
    steady, flaky = FakeChild(), FakeChild(fail_runs={1})
    async with anyio.create_task_group() as tg:
        await tg.start(supervisor.supervise, "steady", steady.run)
        await tg.start(supervisor.supervise, "flaky", flaky.run)
        await wait_until(lambda: supervisor.children["flaky"].state == "restarting")
        assert supervisor.children["steady"].state == "running"
        assert supervisor.children["flaky"].last_error == "RuntimeError: crash in run 1"
        assert not supervisor.healthy()
        tg.cancel_scope.cancel()


def test_describe_looks_through_single_exception_groups() -> None:
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [KeyError("x")])])
    assert describe(nested) == "KeyError: 'x'"
    assert describe(ExceptionGroup("two", [ValueError("a"), ValueError("b")])).startswith(
        "ExceptionGroup: two"
    )
