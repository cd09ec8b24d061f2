"""The contact-event log: appended in batches, read back in the order written, whole
contact histories for an interval, each agent's state when an interval starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_store import contact_events
from crm_store.errors import InvalidData
from tests.integration.conftest import CountRows, Store

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def row(kind: str, minutes: float, contact: int | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "at": T0 + timedelta(minutes=minutes),
        "interaction_id": contact,
        **fields,
    }


async def test_append_and_read_in_the_order_written(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        await contact_events.append_events(
            session,
            [
                row("queued", 0, 1, channel="voice", queue="support"),
                # Written later with an earlier time (a late event): the order is the log's.
                row("answered", 0.5, 1, channel="voice", queue="support", agent_id=7),
                row("held", 0.25, 1, agent_id=7, details={"why": "checking"}),
            ],
        )
        await contact_events.append_events(session, [])  # nothing: no statement
    async with store.sessionmaker() as session:
        got = await contact_events.events_between(session, T0)
    assert [(e.kind, e.interaction_id, e.agent_id) for e in got] == [
        ("queued", 1, None),
        ("answered", 1, 7),
        ("held", 1, 7),
    ]
    assert got[0].at == T0 and got[0].at.tzinfo is not None
    assert got[1].at == T0 + timedelta(seconds=30)
    assert (got[0].channel, got[0].queue, got[0].details) == ("voice", "support", None)
    assert got[2].details == {"why": "checking"}


async def test_an_interval_reads_whole_contact_histories(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        await contact_events.append_events(
            session,
            [
                row("queued", -90, 1),  # contact 1: began before the interval
                row("queued", -80, 2),  # contact 2: over before it
                row("abandoned", -79, 2),
                row("answered", -60, 1, agent_id=7),
                row("status", -50, agent_id=7, details={"status": "ready"}),
                row("ended", 5, 1, agent_id=7),
                row("queued", 10, 3),
                row("abandoned", 30, 3),  # after the end
                row("queued", 40, 4),  # after the end
            ],
        )
    async with store.sessionmaker() as session:
        got = await contact_events.events_between(session, T0, T0 + timedelta(minutes=20))
        unbounded = await contact_events.events_between(session, T0)
    assert [(e.kind, e.interaction_id) for e in got] == [
        ("queued", 1),
        ("answered", 1),
        ("ended", 1),
        ("queued", 3),
    ]
    assert [(e.kind, e.interaction_id) for e in unbounded][-2:] == [("abandoned", 3), ("queued", 4)]


async def test_each_agents_last_status_before_an_interval(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        await contact_events.append_events(
            session,
            [
                row("status", -30, agent_id=7, details={"status": "ready"}),
                row("status", -20, agent_id=8, details={"status": "ready"}),
                row("status", -10, agent_id=7, details={"status": "not_ready", "reason": "x"}),
                row("offer_timeout", -5, 1, agent_id=8),  # another kind
                row("status", 10, agent_id=8, details={"status": "offline"}),  # after
            ],
        )
    async with store.sessionmaker() as session:
        got = await contact_events.latest_per_agent(session, ["status"], T0)
    assert [(e.agent_id, e.details) for e in got] == [
        (8, {"status": "ready"}),
        (7, {"status": "not_ready", "reason": "x"}),
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"kind": "queued", "at": datetime(2026, 11, 22, 8, 0)}, "timezone-aware"),
        ({"kind": "queued"}, "needs its time"),
        ({"kind": "", "at": T0}, "needs a kind"),
        ({"kind": "queued", "at": T0, "colour": "red"}, "no colour"),
    ],
)
async def test_bad_rows_are_refused_and_nothing_is_written(
    store: Store, count_rows: CountRows, bad: dict[str, Any], message: str
) -> None:
    before = await count_rows()
    with pytest.raises(InvalidData, match=message):
        async with store.sessionmaker.begin() as session:
            await contact_events.append_events(session, [row("queued", 0, 1), bad])
    assert await count_rows() == before
