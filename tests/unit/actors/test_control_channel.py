"""The control channel's payloads (`store.control_payloads`): every writer names the `kind`,
the listener dispatches on it; a payload without `kind` (an older instance during a rolling
switch-over) is read by the old rule and said once at info; an unknown kind is logged at
warning and ignored, and the payloads after it are read as usual.

The listener runs on the memory store's LISTEN/NOTIFY hub (both backends); what PostgreSQL's
writers send (the trigger, `apply(announce=True)`) is pinned by the store contract test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from structlog.testing import capture_logs

from tests.support.ledgers import actor_settings
from trade_executor.actors.listener import ApprovalListener
from trade_executor.actors.messages import (
    CloseRequested,
    ControlChanged,
    ExecutionChanged,
    Message,
)
from trade_executor.store.closing import ClosePayload, close_payload
from trade_executor.store.control_payloads import (
    ExecutionChangedPayload,
    KillSwitchChanged,
    Malformed,
    UnknownKind,
    execution_payload,
    kill_switch_payload,
    parse_control_payload,
)
from trade_executor.store.notifications import CONTROL_CHANNEL
from trade_executor_dev.testing import MemoryStore

pytestmark = pytest.mark.anyio

DEADLINE = 5.0  # a guard against a hang, not a measure of speed
ID = UUID("3f1e0c1a-0000-4000-8000-000000000001")


# -- the payloads, written and read ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "kind", "read"),
    [
        (kill_switch_payload(True, "drill"), "kill_switch", KillSwitchChanged()),
        (execution_payload(ID), "execution_changed", ExecutionChangedPayload(ID)),
        (close_payload("aapl", "news", "ops"), "close", ClosePayload("AAPL", "news", "ops")),
        (close_payload(None, "eod", "ops"), "close", ClosePayload(None, "eod", "ops")),
    ],
)
def test_every_writer_names_its_kind_and_the_reader_dispatches_on_it(
    payload: str, kind: str, read: object
) -> None:
    assert json.loads(payload)["kind"] == kind
    parsed = parse_control_payload(payload)
    assert (parsed.payload, parsed.legacy) == (read, False)


@pytest.mark.parametrize(
    ("payload", "read"),
    [
        ('{"close": {"symbol": "msft", "reason": "r", "by": "o"}}', ClosePayload("MSFT", "r", "o")),
        (json.dumps({"execution_id": str(ID)}), ExecutionChangedPayload(ID)),
        ('{"halted": true, "reason": "x"}', KillSwitchChanged()),  # the trigger before 0008
        ('{"execution_id": "not-a-uuid"}', KillSwitchChanged()),
        ("not json", KillSwitchChanged()),
    ],
)
def test_a_payload_without_kind_is_read_by_the_old_rule(payload: str, read: object) -> None:
    parsed = parse_control_payload(payload)
    assert (parsed.payload, parsed.legacy) == (read, True)


@pytest.mark.parametrize(
    ("payload", "read"),
    [
        ('{"kind": "protect_changed", "symbol": "A"}', UnknownKind("protect_changed")),
        ('{"kind": "execution_changed"}', Malformed("execution_changed", "no execution_id uuid")),
        ('{"kind": "close", "close": {"symbol": 5}}', Malformed("close", "no close request")),
        ('{"kind": 7}', Malformed("7", "kind is not a name")),
    ],
)
def test_an_unknown_kind_or_a_bad_body_is_said_not_guessed(payload: str, read: object) -> None:
    parsed = parse_control_payload(payload)
    assert (parsed.payload, parsed.legacy) == (read, False)


# -- the listener dispatches ----------------------------------------------------------------------


@dataclass
class Listening:
    store: MemoryStore
    listener: ApprovalListener
    heard: MemoryObjectReceiveStream[Message]

    def send(self, payload: str) -> None:
        self.store.notifications.notify(CONTROL_CHANNEL, payload)

    async def next(self) -> Message:
        with anyio.fail_after(DEADLINE):
            return await self.heard.receive()


@pytest.fixture
async def listening() -> AsyncIterator[Listening]:
    store = MemoryStore()
    send, receive = anyio.create_memory_object_stream[Message](100)
    listener = ApprovalListener(
        actor_settings("http://127.0.0.1:9"), store, store.notifications.connect, send.send_nowait
    )
    async with anyio.create_task_group() as tg:
        await tg.start(listener.run)
        first = await receive.receive()  # the catch-up at start re-reads the kill switch
        assert isinstance(first, ControlChanged)
        yield Listening(store, listener, receive)
        tg.cancel_scope.cancel()


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_each_kind_reaches_its_reader(listening: Listening) -> None:
    with capture_logs() as logs:
        listening.send(close_payload("aapl", "news", "ops"))
        assert await listening.next() == CloseRequested("AAPL", "news", "ops")
        listening.send(execution_payload(ID))
        assert await listening.next() == ExecutionChanged(ID)
        listening.send(kill_switch_payload(True, "drill"))
        assert isinstance(await listening.next(), ControlChanged)  # the switch re-read
    assert not events(logs, "listener.legacy_control_payload")
    assert listening.listener.health.bad_payloads == 0


async def test_payloads_without_kind_are_read_as_before_and_said_once(
    listening: Listening,
) -> None:
    with capture_logs() as logs:
        listening.send('{"close": {"symbol": "msft", "reason": "r", "by": "o"}}')
        assert await listening.next() == CloseRequested("MSFT", "r", "o")
        listening.send(json.dumps({"execution_id": str(ID)}))
        assert await listening.next() == ExecutionChanged(ID)
        listening.send('{"halted": true, "reason": "old"}')
        assert isinstance(await listening.next(), ControlChanged)
    [said] = events(logs, "listener.legacy_control_payload")
    assert said["log_level"] == "info" and said["read_as"] == "close"


async def test_an_unknown_kind_is_logged_and_ignored_and_nothing_after_it_is_lost(
    listening: Listening,
) -> None:
    later = uuid4()
    with capture_logs() as logs:
        listening.send('{"kind": "protect_changed", "symbol": "A"}')
        listening.send(execution_payload(later))
        heard = [await listening.next(), await listening.next()]
    # A sweep re-reads what this version knows (the switch); the next payload is read as usual.
    assert ExecutionChanged(later) in heard
    assert all(isinstance(m, ControlChanged | ExecutionChanged) for m in heard)
    [warned] = events(logs, "listener.unknown_control_kind")
    assert (warned["log_level"], warned["kind"]) == ("warning", "protect_changed")
    assert listening.listener.health.bad_payloads == 0


async def test_a_known_kind_with_a_bad_body_is_a_bad_payload(listening: Listening) -> None:
    with capture_logs() as logs:
        listening.send('{"kind": "execution_changed", "execution_id": "x"}')
        assert isinstance(await listening.next(), ControlChanged)  # answered by a sweep
    [bad] = events(logs, "listener.bad_payload")
    assert (bad["log_level"], bad["kind"], bad["problem"]) == (
        "warning", "execution_changed", "no execution_id uuid")  # fmt: skip
    assert listening.listener.health.bad_payloads == 1
