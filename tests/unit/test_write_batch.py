"""The store writer's batch (crm_store.write_batch): checked fields, rows as the ORM writes
them, a held contact under its own id, or under the store's next one if its id was taken,
with the batch's later writes following it. A synchronous in-memory SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, event, insert, select

from crm_store.errors import InvalidData, NotFound
from crm_store.models import Base, ContactEvent, ContactPoint, Customer, Interaction
from crm_store.write_batch import (
    EventRows,
    InteractionUpdate,
    NewInteraction,
    Recorded,
    apply_batch,
    check_events,
    clean_update,
)

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    event.listen(engine, "connect", lambda dbapi, _rec: dbapi.execute("PRAGMA foreign_keys=ON"))
    Base.metadata.create_all(engine)
    with engine.connect() as connection:
        customer = connection.execute(
            insert(Customer).values(name="Zoë Martin", tier="gold")
        ).inserted_primary_key
        assert customer is not None
        connection.execute(
            insert(ContactPoint).values(
                customer_id=customer[0], kind="phone", value="+442079460018", raw="020 7946 0018"
            )
        )
        yield connection
    engine.dispose()


def row(external_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "channel": "voice",
        "direction": "inbound",
        "external_id": external_id,
        "address": "+442079460018",
        "started_at": AT,
        "queue": None,
        "ivr_path": None,
        "ivr_inputs": None,
        **extra,
    }


def stored(conn: Connection) -> dict[int, tuple[str | None, int | None, str | None]]:
    return {
        r.id: (r.external_id, r.customer_id, r.queue)
        for r in conn.execute(select(Interaction)).all()
    }


def test_clean_update_checks_like_update_interaction() -> None:
    at = AT + timedelta(seconds=5)
    assert clean_update({"offered_at": at, "queue": " support ", "agent_id": 3}) == {
        "offered_at": at,
        "queue": "support",
        "agent_id": 3,
    }
    with pytest.raises(InvalidData, match="unknown interaction field"):
        clean_update({"colour": "red"})
    with pytest.raises(InvalidData):
        clean_update({"ended_at": datetime(2026, 12, 1, 9, 30)})  # naive
    with pytest.raises(InvalidData):
        clean_update({"csat": 9})
    with pytest.raises(InvalidData, match="must be an id"):
        clean_update({"agent_id": True})


def test_check_events_refuses_rows_the_log_would() -> None:
    check_events([{"kind": "queued", "at": AT, "interaction_id": 1}])
    with pytest.raises(InvalidData):
        check_events([{"kind": "queued", "at": AT, "colour": "red"}])
    with pytest.raises(InvalidData):
        check_events([{"kind": "", "at": AT}])


def test_a_batch_records_links_updates_and_logs_in_order(conn: Connection) -> None:
    result = apply_batch(
        conn,
        [
            NewInteraction(row("known"), kind="phone", value="+442079460018"),
            NewInteraction(row("stranger"), kind="phone", value="+447700900001"),
            InteractionUpdate(1, {"queue": "support"}),
            EventRows([{"interaction_id": 1, "channel": "voice", "kind": "queued", "at": AT}]),
        ],
    )
    assert result.results == [Recorded(1, 1, "gold"), Recorded(2, None, None), None, None]
    assert result.max_id == 2 and result.rekeyed == {}
    assert stored(conn) == {1: ("known", 1, "support"), 2: ("stranger", None, None)}
    assert conn.scalar(select(ContactEvent.kind)) == "queued"


def test_a_customer_id_that_does_not_exist_fails_only_that_contact(conn: Connection) -> None:
    result = apply_batch(
        conn, [NewInteraction(row("lost"), customer_id=99), NewInteraction(row("next"))]
    )
    assert isinstance(result.results[0], NotFound)
    assert result.results[1] == Recorded(1, None, None)
    assert stored(conn) == {1: ("next", None, None)}


def test_a_held_contact_keeps_the_id_the_daemon_gave(conn: Connection) -> None:
    result = apply_batch(conn, [NewInteraction(row("held"), customer_id=1, id=7)])
    assert result.results == [Recorded(7, 1, "gold")]
    assert stored(conn) == {7: ("held", 1, None)}
    # The store's next id follows it.
    assert apply_batch(conn, [NewInteraction(row("after"))]).results == [Recorded(8, None, None)]


def test_a_held_contact_whose_customer_went_is_kept_unlinked(conn: Connection) -> None:
    result = apply_batch(conn, [NewInteraction(row("held"), customer_id=99, id=3)])
    assert result.results == [Recorded(3, None, None, unlinked=True)]


def test_a_taken_id_gives_the_next_one_and_later_writes_follow(conn: Connection) -> None:
    conn.execute(insert(Interaction).values(**row("someone else"), id=5))
    result = apply_batch(
        conn,
        [
            NewInteraction(row("held"), id=5),
            InteractionUpdate(5, {"queue": "support"}),
            EventRows([{"interaction_id": 5, "channel": "voice", "kind": "queued", "at": AT}]),
        ],
    )
    assert result.results[0] == Recorded(6, None, None)
    assert result.rekeyed == {5: 6}
    assert stored(conn) == {5: ("someone else", None, None), 6: ("held", None, "support")}
    assert conn.scalar(select(ContactEvent.interaction_id)) == 6


def test_a_held_contact_already_stored_is_not_stored_twice(conn: Connection) -> None:
    # An earlier attempt went through although its caller saw an error.
    apply_batch(conn, [NewInteraction(row("held"), id=4)])
    result = apply_batch(conn, [NewInteraction(row("held"), id=4)])
    assert result.results == [Recorded(4, None, None)]
    assert result.rekeyed == {}
    assert stored(conn) == {4: ("held", None, None)}
