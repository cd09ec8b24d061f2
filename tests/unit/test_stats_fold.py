"""Figures from life-cycle events: the fold of plain event data gives the figures computed
by hand, and folding the events in one go (a restart) gives what feeding them one by one
(the live service) gave, whatever the reading times in between."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from routing.stats import LifeCycleEvent, Statistics, Tally, fold_events


def t(hh: int, mm: int, ss: float = 0, day: int = 22) -> float:
    return datetime(2026, 11, day, hh, mm, tzinfo=UTC).timestamp() + ss  # London = UTC


def new_stats() -> Statistics:
    return Statistics(
        {"support": 20, "sales": 30},
        short_abandon_seconds=5,
        windows_minutes=[15, 60],
        timezone="Europe/London",
    )


def ev(kind: str, at: float, contact: int | None = None, **fields: Any) -> LifeCycleEvent:
    details = fields.pop("details", {})
    return LifeCycleEvent(kind, at, contact, details=details, **fields)


A, B = 7, 8  # agents

# As the store would hold them (plain data, in the order written).
EVENTS = [
    # Yesterday: agent A ready from 23:30, a call answered before midnight, ended after.
    ev("status", t(23, 30, day=21), agent_id=A, details={"status": "ready", "reason": None}),
    ev("queued", t(23, 58, day=21), 1, channel="voice", queue="support"),
    ev("offered", t(23, 58, 2, day=21), 1, channel="voice", queue="support", agent_id=A),
    ev("answered", t(23, 58, 10, day=21), 1, channel="voice", queue="support", agent_id=A),
    ev("ended", t(0, 2, 10), 1, channel="voice", queue="support", agent_id=A),
    ev("wrap_up_ended", t(0, 2, 40), 1, channel="voice", queue="support", agent_id=A),
    # 08:00 a call answered in 12 s, held 30 s, 200 s of talk, 20 s of wrap-up.
    ev("queued", t(8, 0), 2, channel="voice", queue="support"),
    ev("offered", t(8, 0, 1), 2, channel="voice", queue="support", agent_id=B),
    ev("offer_timeout", t(8, 0, 6), 2, channel="voice", queue="support", agent_id=B),
    ev("status", t(8, 0, 6), agent_id=B, details={"status": "not_ready", "reason": "missed-offer"}),
    ev("offered", t(8, 0, 7), 2, channel="voice", queue="support", agent_id=A),
    ev("answered", t(8, 0, 12), 2, channel="voice", queue="support", agent_id=A),
    ev("held", t(8, 1, 0), 2, channel="voice", queue="support", agent_id=A),
    ev("unheld", t(8, 1, 30), 2, channel="voice", queue="support", agent_id=A),
    ev("ended", t(8, 3, 42), 2, channel="voice", queue="support", agent_id=A),
    # Sent back to a queue by A (blind transfer to "sales"): B answers while A wraps up.
    ev("queued", t(8, 3, 42), 2, channel="voice", queue="sales"),
    ev("status", t(8, 3, 45), agent_id=B, details={"status": "ready", "reason": None}),
    ev("answered", t(8, 3, 52), 2, channel="voice", queue="sales", agent_id=B),
    ev("wrap_up_ended", t(8, 4, 2), 2, channel="voice", queue="support", agent_id=A),
    ev("ended", t(8, 5, 52), 2, channel="voice", queue="sales", agent_id=B),
    ev("wrap_up_ended", t(8, 5, 52), 2, channel="voice", queue="sales", agent_id=B),
    # Abandons: a short one (3 s) and a real one (40 s); a declined offer changes nothing.
    ev("queued", t(8, 10), 3, channel="voice", queue="support"),
    ev("abandoned", t(8, 10, 3), 3, channel="voice", queue="support", details={"cause": "x"}),
    ev("queued", t(8, 11), 4, channel="chat", queue="support"),
    ev("offered", t(8, 11, 1), 4, channel="chat", queue="support", agent_id=B),
    ev("offer_declined", t(8, 11, 2), 4, channel="chat", queue="support", agent_id=B),
    ev("abandoned", t(8, 11, 40), 4, channel="chat", queue="support"),
    # Maximum wait: overflow from support to sales, then a callback request from sales.
    ev("queued", t(8, 20), 5, channel="voice", queue="support"),
    ev("overflow", t(8, 21), 5, channel="voice", queue="support", details={"target": "sales"}),
    ev("callback", t(8, 22), 5, channel="voice", queue="sales"),
    # A click-to-dial by A: not in any queue; ended before it was answered.
    ev("dialing", t(8, 30), 6, channel="voice", agent_id=A),
    ev("ended", t(8, 30, 20), 6, channel="voice", agent_id=A),
    ev("wrap_up_ended", t(8, 30, 50), 6, channel="voice", agent_id=A),
    # A dial that failed at once: nothing handled.
    ev("dialing", t(8, 31), 7, channel="voice", agent_id=A),
    ev("dial_failed", t(8, 31), 7, channel="voice", agent_id=A),
    ev("status", t(8, 40), agent_id=A, details={"status": "not_ready", "reason": "lunch"}),
]
NOW = t(8, 45)


def test_the_fold_gives_the_figures_computed_by_hand() -> None:
    stats = new_stats()
    fold_events(stats, EVENTS)
    support = stats.queue_figures("support", NOW)["today"]
    assert {k: support[k] for k in ("offered", "answered", "answered_within_sla")} == {
        "offered": 4,  # calls 2, 3, 4 and 5 (call 1 left the queue yesterday)
        "answered": 1,
        "answered_within_sla": 1,
    }
    assert (support["abandoned"], support["short_abandoned"], support["overflowed"]) == (1, 1, 1)
    assert support["asa_seconds"] == 12.0
    # Handled today in support: call 1 (talk 240, wrap 30) and A's part of call 2 (talk
    # 210 - 30 held, hold 30, wrap 20).
    assert support["aht_seconds"] == pytest.approx((270 + 230) / 2)
    assert support["service_level"] == 1.0
    assert support["abandonment_rate"] == 0.25
    sales = stats.queue_figures("sales", NOW)["today"]
    assert (sales["offered"], sales["answered"], sales["callbacks"]) == (2, 1, 1)
    assert sales["asa_seconds"] == 10.0  # queued again at 08:03:42, answered 08:03:52
    assert sales["aht_seconds"] == 120.0  # B: 120 s of talk, no wrap-up
    a = stats.agent_figures(A, NOW)
    assert a["handled"] == {"voice": 3}  # calls 1, 2 and the dial (not the failed one)
    assert (a["talk_seconds"], a["hold_seconds"], a["wrap_up_seconds"]) == (
        # Call 1 counts whole on the day its handling finished.
        240 + 180 + 0,
        30.0,
        30 + 20 + 30,
    )
    assert a["time_in_status_seconds"] == {"not_ready:lunch": 300.0, "ready": 8 * 3600 + 2400}
    b = stats.agent_figures(B, NOW)
    assert (b["handled"], b["offers_missed"]) == ({"voice": 1}, 1)
    assert b["time_in_status_seconds"] == {"not_ready:missed-offer": 219.0, "ready": 2475.0}


def test_one_by_one_with_readings_equals_all_at_once() -> None:
    live = new_stats()
    tally = Tally(live)
    for event in EVENTS:
        tally.apply(event)
        # A wallboard reads figures between events: no reading changes a figure.
        live.queue_figures("support", event.at)
        live.agent_figures(A, event.at)
    rebuilt = new_stats()
    fold_events(rebuilt, EVENTS)
    for queue in ("support", "sales"):
        assert rebuilt.queue_figures(queue, NOW) == live.queue_figures(queue, NOW)
    for agent in (A, B):
        assert rebuilt.agent_figures(agent, NOW) == live.agent_figures(agent, NOW)


def test_a_restart_halfway_carries_on_with_the_same_figures() -> None:
    """The events before the restart are folded from the store; the tally then takes the
    live ones: the figures are those of a daemon that never stopped."""
    half = len(EVENTS) // 2
    never_stopped = new_stats()
    fold_events(never_stopped, EVENTS)
    restarted = new_stats()
    tally = fold_events(restarted, EVENTS[:half])
    for event in EVENTS[half:]:
        tally.apply(event)
    assert restarted.queue_figures("support", NOW) == never_stopped.queue_figures("support", NOW)
    assert restarted.agent_figures(B, NOW) == never_stopped.agent_figures(B, NOW)


def test_events_that_do_not_fit_change_nothing() -> None:
    stats = new_stats()
    fold_events(
        stats,
        [
            ev("answered", t(8, 0), 9, channel="voice", queue="support"),  # no agent
            ev("wrap_up_ended", t(8, 1), 9, channel="voice", agent_id=A),  # never answered
            ev("abandoned", t(8, 2), 10, channel="voice", queue="support"),  # never queued
            ev("status", t(8, 3), details={"status": "ready"}),  # no agent
            ev("held", t(8, 4), None, agent_id=A),  # no contact
        ],
    )
    assert stats.queue_figures("support", NOW)["today"]["offered"] == 0
    assert stats.agent_figures(A, NOW)["handled"] == {}
