"""Queue statistics for a scripted day, against figures computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from routing.stats import Handled, QueueExit, Statistics


def t(hh: int, mm: int, ss: int = 0, day: int = 22) -> float:
    return datetime(2026, 11, day, hh, mm, ss, tzinfo=UTC).timestamp()  # London = UTC in Nov


def day_stats() -> Statistics:
    stats = Statistics(
        {"support": 20},
        short_abandon_seconds=5,
        windows_minutes=[15, 60],
        timezone="Europe/London",
    )
    # Yesterday, just before midnight: in no window of today.
    stats.record_exit(
        QueueExit("support", "voice", t(23, 58, day=21), t(23, 58, 5, day=21), "answered")
    )
    script = [
        (t(8, 0), 10, "answered"),
        (t(8, 1), 30, "answered"),
        (t(8, 2), 3, "abandoned"),  # short abandon: not an abandon
        (t(8, 3), 40, "abandoned"),
        (t(8, 4), 60, "callback"),  # a callback request is not an abandon
        (t(8, 5), 20, "answered"),  # exactly the threshold: within
    ]
    for entered, wait, exit_ in script:
        stats.record_exit(QueueExit("support", "voice", entered, entered + wait, exit_))  # type: ignore[arg-type]
    for finished, talk, hold in ((t(8, 3), 100, 0), (t(8, 6), 200, 20), (t(8, 9), 300, 0)):
        stats.record_handled(Handled("support", "voice", 1, finished, talk, hold, 30))
    return stats


def test_scripted_day_matches_hand_computed_figures() -> None:
    figures = day_stats().queue_figures("support", now=t(8, 10))
    today = figures["today"]
    assert today == {
        "offered": 6,
        "answered": 3,
        "answered_within_sla": 2,
        "abandoned": 1,
        "short_abandoned": 1,
        "callbacks": 1,
        "voicemails": 0,
        "overflowed": 0,
        "disconnected": 0,
        "service_level": pytest.approx(2 / 3, abs=1e-4),
        "service_level_with_abandons": 0.5,
        "asa_seconds": 20.0,
        "aht_seconds": pytest.approx((130 + 250 + 330) / 3, abs=1e-3),
        "abandonment_rate": pytest.approx(1 / 6, abs=1e-4),
    }
    assert figures["15m"] == today
    assert figures["60m"] == today


def test_windows_slide() -> None:
    later = day_stats().queue_figures("support", now=t(8, 20))
    # 15 minutes back from 08:20 is 08:05:00: the callback request left the queue at
    # exactly 08:05:00 and the last call was answered at 08:05:20.
    assert later["15m"]["offered"] == 2
    assert later["15m"]["callbacks"] == 1
    assert later["15m"]["abandonment_rate"] == 0.0
    assert later["15m"]["service_level"] == 1.0
    assert later["15m"]["aht_seconds"] == 290.0  # (250 + 330) / 2: finished 08:06 and 08:09
    assert later["60m"]["offered"] == 6
    empty = day_stats().queue_figures("billing", now=t(8, 20))["today"]
    assert empty["offered"] == 0
    assert empty["service_level"] is None
    assert empty["asa_seconds"] is None


def test_agent_day_time_in_status_and_rollover() -> None:
    stats = day_stats()
    stats.record_status(1, "ready", None, t(7, 0))
    stats.record_status(1, "not_ready", "lunch", t(12, 0))
    stats.record_status(1, "ready", None, t(13, 0))
    stats.record_missed_offer(1, t(13, 5))
    figures = stats.agent_figures(1, now=t(13, 30))
    assert figures == {
        "handled": {"voice": 3},
        "talk_seconds": 600.0,
        "hold_seconds": 20.0,
        "wrap_up_seconds": 90.0,
        "offers_missed": 1,
        "time_in_status_seconds": {"not_ready:lunch": 3600.0, "ready": 5.5 * 3600},
    }
    # A new day: yesterday's work is gone, the status carries on from midnight.
    tomorrow = stats.agent_figures(1, now=t(0, 10, day=23))
    assert tomorrow["handled"] == {}
    assert tomorrow["time_in_status_seconds"] == {"ready": 600.0}
    assert stats.queue_figures("support", now=t(0, 10, day=23))["today"]["offered"] == 0
