"""When to flatten: the global FLATTEN_AT and each strategy instance's `flatten_by_close_time`.

A rule is a time of day in a time zone. At or after that time on a day, every position that was
open at that instant (its entry created before it) is due to be flattened, once: a position
entered after the time is not (it was not open then), and each (rule, day, position) is tried
once per run of the service. Pure: the clock is an argument.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from trade_executor.domain.execution import Execution

GLOBAL_KEY = "FLATTEN_AT"


@dataclass(frozen=True, slots=True)
class FlattenRule:
    key: str  # FLATTEN_AT, or instance:<id>
    at: time
    timezone: ZoneInfo

    def instant_on(self, now: datetime) -> datetime | None:
        """Today's flatten instant (today in the rule's zone) if it has passed at `now`."""
        local = _aware(now).astimezone(self.timezone)
        instant = datetime.combine(local.date(), self.at, tzinfo=self.timezone)
        return instant if local >= instant else None

    def describe(self) -> str:
        return f"{self.key} {self.at.strftime('%H:%M')} {self.timezone.key}"


def instance_rule(instance_id: str, flatten_by: str | None, zone: str | None) -> FlattenRule | None:
    """The rule of a `strategy_instances` row (`flatten_by_close_time` is text such as
    "15:55"); None when the row's values cannot be read (logged by the caller)."""
    if not flatten_by:
        return None
    try:
        at = time.fromisoformat(flatten_by.strip())
        timezone = ZoneInfo((zone or "America/New_York").strip())
    except (ValueError, ZoneInfoNotFoundError):
        return None
    return FlattenRule(f"instance:{instance_id}", at, timezone)


InstanceTimes = Callable[
    [Sequence[UUID]], Awaitable[Mapping[UUID, tuple[str, str | None, str | None]] | None]
]


def instance_rules_from(
    read: InstanceTimes,
) -> Callable[[Sequence[Execution]], Awaitable[Mapping[UUID, Sequence[FlattenRule]]]]:
    """The exits' `instance_rules` from a store read of (instance id, flatten time, zone) per
    execution (`PgStore.instance_flatten_times`); no rules where the database has no strategy
    instances. A row whose time or zone cannot be read gives no rule (FLATTEN_AT still holds)."""

    async def rules(positions: Sequence[Execution]) -> Mapping[UUID, Sequence[FlattenRule]]:
        times = await read([p.id for p in positions])
        found: dict[UUID, list[FlattenRule]] = {}
        for execution_id, (instance_id, at, zone) in (times or {}).items():
            rule = instance_rule(instance_id, at, zone)
            if rule is not None:
                found.setdefault(execution_id, []).append(rule)
        return found

    return rules


class FlattenSchedule:
    """Which open positions are due, each (rule, day, position) once."""

    def __init__(self) -> None:
        self._tried: set[tuple[str, date, UUID]] = set()

    def due(
        self,
        now: datetime,
        positions: Iterable[Execution],
        rules: Mapping[UUID, Sequence[FlattenRule]],
    ) -> list[tuple[Execution, FlattenRule]]:
        found: list[tuple[Execution, FlattenRule]] = []
        for execution in positions:
            for rule in rules.get(execution.id, ()):
                instant = rule.instant_on(now)
                if instant is None:
                    continue
                key = (rule.key, instant.date(), execution.id)
                opened = execution.created_at or execution.submitted_at
                if key in self._tried or (opened is not None and _aware(opened) >= instant):
                    continue
                self._tried.add(key)
                found.append((execution, rule))
                break  # one flatten per position
        return found


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
