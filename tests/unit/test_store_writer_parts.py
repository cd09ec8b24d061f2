"""The store writer's pure parts: when it says it is saturated, and which interaction a
queued write is about."""

from __future__ import annotations

from datetime import UTC, datetime

from crm_store.write_batch import EventRows, InteractionUpdate, NewInteraction
from routing.store_state import interaction_of, saturated


def test_saturated_from_the_mark_until_back_under_half_of_it() -> None:
    depths = [0, 5, 9, 10, 12, 8, 5, 4, 6, 9, 10]
    states = []
    was = False
    for depth in depths:
        was = saturated(depth, 10, was=was)
        states.append(was)
    assert states == [False, False, False, True, True, True, True, False, False, False, True]


def test_the_interaction_a_write_is_about() -> None:
    assert interaction_of(NewInteraction({}, id=7)) == 7
    assert interaction_of(NewInteraction({})) is None  # the store gives its id
    assert interaction_of(InteractionUpdate(3, {"queue": "support"})) == 3
    at = datetime(2026, 12, 1, tzinfo=UTC)
    assert interaction_of(EventRows([{"interaction_id": 4, "kind": "queued", "at": at}])) == 4
    assert interaction_of(EventRows([])) is None
