"""A scripted day in New York (UTC-4 in July), every figure computed by hand below."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from routing.model import Agent, Contact, Policy, QueueDef
from routing.router import Router
from routing.stats import Handled, QueueExit, Statistics, live_queue_figures

NY = ZoneInfo("America/New_York")


def t(hh: int, mm: int, ss: int = 0, *, day: int = 15, month: int = 7) -> float:
    return datetime(2026, month, day, hh, mm, ss, tzinfo=NY).timestamp()


def scripted_day() -> Statistics:
    stats = Statistics(
        {"sales": 30, "support": 20},
        short_abandon_seconds=5,
        windows_minutes=[60, 15],
        timezone="America/New_York",
    )
    # Yesterday evening: in no window of today.
    stats.record_exit(
        QueueExit("sales", "voice", t(23, 50, day=14), t(23, 50, 10, day=14), "answered")
    )
    script: list[tuple[float, float, str]] = [
        (t(8, 59, 38), 12, "answered"),  # left 08:59:50: today, not in the last hour
        (t(9, 10), 30, "answered"),  # exactly the threshold: within
        (t(9, 20), 5, "abandoned"),  # exactly the short-abandon threshold: short
        (t(9, 21), 45, "abandoned"),
        (t(9, 30), 60, "callback"),  # a callback request is not an abandon
        (t(9, 40), 90, "answered"),  # left 09:41:30, too slow for the SLA
        (t(9, 45), 120, "overflow"),  # left 09:47:00 for support
        (t(9, 35), 600, "disconnect"),  # left 09:45:00: on the 15-minute boundary
    ]
    for entered, wait, exit_ in script:
        stats.record_exit(QueueExit("sales", "voice", entered, entered + wait, exit_))  # type: ignore[arg-type]
    stats.record_exit(QueueExit("support", "voice", t(9, 47), t(9, 47, 10), "answered"))
    # Handling, wrap-up included.
    stats.record_handled(Handled("sales", "voice", 1, t(9, 5), talk=200, hold=0, wrap_up=30))
    stats.record_handled(Handled("sales", "voice", 1, t(9, 20), talk=300, hold=60, wrap_up=40))
    stats.record_handled(Handled("sales", "chat", 2, t(9, 50), talk=500, hold=0, wrap_up=20))
    # A record that arrives late (left 09:43:40, reported after 09:50).
    stats.record_exit(QueueExit("sales", "voice", t(9, 43), t(9, 43, 40), "abandoned"))
    # Agent 1's day.
    stats.record_status(1, "ready", None, t(8, 0))
    stats.record_status(1, "not_ready", "lunch", t(9, 25))
    stats.record_status(1, "ready", None, t(9, 40))
    stats.record_missed_offer(1, t(9, 42))
    stats.record_status(1, "not_ready", "missed-offer", t(9, 42))
    return stats


def test_today_since_local_midnight() -> None:
    today = scripted_day().queue_figures("sales", now=t(10, 0))["today"]
    assert today == {
        "offered": 9,
        "answered": 3,
        "answered_within_sla": 2,
        "abandoned": 2,
        "short_abandoned": 1,
        "callbacks": 1,
        "voicemails": 0,
        "overflowed": 1,
        "disconnected": 1,
        "service_level": pytest.approx(2 / 3, abs=1e-4),
        "service_level_with_abandons": 0.4,  # 2 / (3 + 2)
        "asa_seconds": 44.0,  # (12 + 30 + 90) / 3
        "aht_seconds": pytest.approx((230 + 400 + 520) / 3, abs=1e-3),
        "abandonment_rate": pytest.approx(2 / 9, abs=1e-4),
    }


def test_last_hour_and_last_quarter_hour() -> None:
    figures = scripted_day().queue_figures("sales", now=t(10, 0))
    assert list(figures) == ["15m", "60m", "today"]
    hour = figures["60m"]
    assert (hour["offered"], hour["answered"], hour["answered_within_sla"]) == (8, 2, 1)
    assert (hour["service_level"], hour["service_level_with_abandons"]) == (0.5, 0.25)
    assert (hour["asa_seconds"], hour["abandonment_rate"]) == (60.0, 0.25)
    assert hour["aht_seconds"] == pytest.approx(383.333, abs=1e-3)  # 09:05 is in the hour
    quarter = figures["15m"]
    assert {k: quarter[k] for k in ("offered", "answered", "abandoned", "overflowed")} == {
        "offered": 2,
        "answered": 0,
        "abandoned": 0,  # the late abandon left at 09:43:40
        "overflowed": 1,
    }
    assert quarter["disconnected"] == 1  # left at exactly 09:45:00
    assert quarter["service_level"] is None  # nothing answered: no figure, not 0
    assert quarter["service_level_with_abandons"] is None
    assert quarter["asa_seconds"] is None
    assert quarter["aht_seconds"] == 520.0
    assert quarter["abandonment_rate"] == 0.0


def test_overflow_counts_in_both_queues() -> None:
    support = scripted_day().queue_figures("support", now=t(10, 0))["today"]
    assert (support["offered"], support["answered"], support["service_level"]) == (1, 1, 1.0)
    assert support["asa_seconds"] == 10.0


def test_agent_day_by_reason_and_the_next_day() -> None:
    stats = scripted_day()
    assert stats.agent_figures(1, now=t(10, 0)) == {
        "handled": {"voice": 2},
        "talk_seconds": 500.0,
        "hold_seconds": 60.0,
        "wrap_up_seconds": 70.0,
        "offers_missed": 1,
        "time_in_status_seconds": {
            "not_ready:lunch": 900.0,
            "not_ready:missed-offer": 1080.0,
            "ready": 5100.0 + 120.0,
        },
    }
    assert stats.agent_figures(2, now=t(10, 0))["handled"] == {"chat": 1}
    after_midnight = stats.agent_figures(1, now=t(0, 10, day=16))
    assert after_midnight["time_in_status_seconds"] == {"not_ready:missed-offer": 600.0}
    assert after_midnight["offers_missed"] == 0
    assert stats.queue_figures("sales", now=t(0, 10, day=16))["today"]["offered"] == 0
    # The last hour reaches back before midnight, to nothing here.
    assert stats.queue_figures("sales", now=t(0, 10, day=16))["60m"]["offered"] == 0


def test_midnight_on_a_daylight_saving_day() -> None:
    stats = Statistics(
        {"q": 20}, short_abandon_seconds=5, windows_minutes=[15], timezone="America/New_York"
    )
    # 8 March 2026: clocks go forward at 02:00; midnight is 05:00 UTC.
    midnight = datetime(2026, 3, 8, 0, 0, tzinfo=NY).timestamp()
    stats.record_exit(QueueExit("q", "voice", midnight - 10, midnight - 1, "answered"))
    stats.record_exit(QueueExit("q", "voice", midnight - 10, midnight, "answered"))
    now = datetime(2026, 3, 8, 10, 0, tzinfo=NY).timestamp()
    assert now - midnight == 9 * 3600  # only nine hours since midnight
    assert stats.queue_figures("q", now=now)["today"]["offered"] == 1


def test_live_figures_from_the_router() -> None:
    policy = Policy(capacity={"voice": 1}, blocks={}, wrap_up_seconds=30)
    router = Router((QueueDef("q", ("voice",), {"x": 1}, offer_timeout_seconds=100),), policy)
    for i in (1, 2, 3, 4):
        router.add_agent(Agent(i, f"a{i}", {"x": 1}, {"voice": 1}), now=0)
    router.set_status(1, "ready", now=0)
    router.set_status(2, "ready", now=0)
    router.set_status(3, "not_ready", now=0, reason="break")
    for n in (1, 2, 3):
        router.enqueue(Contact(f"c{n}", "voice", "q", enqueued_at=n * 10), now=n * 10)
    router.accept("c1", 1, now=35)  # c2 stays offered to agent 2, c3 waits
    # Agent 3 is not ready and idle: counted by status, and by activity as idle.
    figures = live_queue_figures(router.queued("q"), router.agents.values(), now=40)
    assert figures == {
        "waiting": 2,
        "longest_wait_seconds": 20.0,
        # What the wallboard shows: ready and idle / not offline and not idle / not ready.
        "agents_ready": 0,
        "agents_busy": 2,
        "agents_not_ready": 1,
        "agents_by_status": {"ready": 2, "not_ready": 1, "offline": 1},
        "agents_by_activity": {"idle": 1, "offered": 1, "on_contact": 1, "wrap_up": 0},
        "not_ready_by_reason": {"break": 1},
    }
    # Agent 1 hangs up: in wrap-up, busy still; the longest wait is given to 0.1 s.
    router.end_contact("c1", 1, now=41)
    later = live_queue_figures(router.queued("q"), router.agents.values(), now=41.34)
    assert (later["waiting"], later["longest_wait_seconds"]) == (2, 21.3)
    assert later["agents_by_activity"]["wrap_up"] == 1
    assert (later["agents_ready"], later["agents_busy"], later["agents_not_ready"]) == (0, 2, 1)
