"""What needs an operator reaches them: the events the other work of this wave added (a
crash-left intent never re-sent, a position closed at an unknown price, an over-exit) are
notifications of kind `needs_operator`, naming the symbol and what to run."""

from __future__ import annotations

import pytest

from trade_executor.notify.messages import note_for


@pytest.mark.parametrize(
    "event",
    ["recovery.absence_unproven", "position.settled_price_unknown", "position.over_exit"],
)
def test_each_is_a_needs_operator_notification(event: str) -> None:
    note = note_for(
        {
            "event": event,
            "symbol": "COIN",
            "execution_id": "601a687d-9feb-421e-861c-a8ef0925d116",
            "reason": "not_placed: recovery: no earlier order of ours is listed",
        }
    )
    assert note is not None
    assert note.kind == "needs_operator" and note.severity == "failure"
    assert note.title == f"Needs an operator: COIN ({event})"
    assert "not_placed: recovery" in note.body and "trade-executor show 601a687d" in note.body


def test_an_ordinary_line_is_no_notification() -> None:
    assert note_for({"event": "reconcile.done", "breaks": 0}) is None
