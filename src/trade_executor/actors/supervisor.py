"""Supervision: run a child, restart it with backoff when it fails, give up loudly.

`supervise` is itself a task-group child: `await tg.start(supervise, ...)` returns once the
child's first run has called `task_status.started()`. A failure before that is a start-up
failure and propagates at once. Afterwards each failure is logged (`supervisor.child_restarted`)
and the child restarted after a backoff; more than `max_restarts` failures inside `window`
seconds raise `ChildGaveUp`, which stops the whole process with a non-zero exit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskStatus

from trade_executor.actors.backoff import Backoff
from trade_executor.observability.logging import get_logger

log = get_logger("trade_executor.supervisor")

ChildRun = Callable[..., Coroutine[Any, Any, Any]]  # async def run(*, task_status) -> None


class ChildGaveUp(Exception):
    """A child kept failing: the supervisor stops the process."""


@dataclass
class ChildHealth:
    state: str = "starting"  # starting, running, restarting, stopped, failed
    restarts: int = 0
    last_error: str | None = None


@dataclass
class Supervisor:
    max_restarts: int = 5
    window: float = 60.0
    backoff_base: float = 0.1
    backoff_cap: float = 5.0
    children: dict[str, ChildHealth] = field(default_factory=dict)

    def healthy(self) -> bool:
        """True when every supervised child is running (the watchdog is petted only then)."""
        return bool(self.children) and all(c.state == "running" for c in self.children.values())

    async def supervise(
        self,
        name: str,
        run: ChildRun,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        health = self.children.setdefault(name, ChildHealth())
        failures: deque[float] = deque()
        backoff = Backoff(self.backoff_base, self.backoff_cap)
        started_once = False
        try:
            while True:
                health.state = "restarting" if started_once else "starting"
                try:
                    status = anyio.TASK_STATUS_IGNORED if started_once else task_status
                    await self._run_once(name, run, health, status)
                    health.state = "stopped"
                    log.warning("supervisor.child_stopped", child=name)
                    return
                except Exception as error:
                    # `running` is set once the child has started: before that, the failure
                    # is a start-up failure and belongs to whoever is starting the service.
                    started_once = started_once or health.state == "running"
                    if not started_once:
                        raise
                    health.last_error = describe(error)
                    now = anyio.current_time()
                    failures.append(now)
                    while failures and failures[0] < now - self.window:
                        failures.popleft()
                    if len(failures) > self.max_restarts:
                        health.state = "failed"
                        log.critical(
                            "supervisor.child_gave_up", child=name, error=health.last_error
                        )
                        raise ChildGaveUp(f"{name} failed {len(failures)} times") from error
                    health.restarts += 1
                    delay = backoff.next()
                    log.error(
                        "supervisor.child_restarted",
                        child=name,
                        restarts=health.restarts,
                        delay=round(delay, 3),
                        error=health.last_error,
                        exc_info=error,
                    )
                    health.state = "restarting"
                    await anyio.sleep(delay)
        except BaseException:
            if health.state not in ("failed", "stopped"):
                health.state = "stopped"
            raise

    @staticmethod
    async def _run_once(
        name: str, run: ChildRun, health: ChildHealth, task_status: TaskStatus[None]
    ) -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(run)
            health.state = "running"
            log.info("supervisor.child_started", child=name)
            task_status.started()


def describe(error: BaseException) -> str:
    """`Type: message`, looking through single-exception groups that task groups wrap."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"
