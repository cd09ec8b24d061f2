"""One transaction of hot-path writes: new interactions, their updates, contact events.

The daemon's store writer (routing.store_writer) hands whatever has queued up to
`apply_batch`, in the order made, on a synchronous connection: the SQLite writer's own
thread (crm_store.fast_intake), or `run_sync` over the async engine (PostgreSQL). The
statements are SQLAlchemy Core on the ORM's tables, so the rows and their storage formats
are the ORM's, whichever way they are written.

A new interaction given its id by the daemon (it was held while the store could not be
written) is inserted under that id, unless another writer took the id meanwhile: then it
gets the store's next id and every later operation of the batch on the old id follows it
(`BatchResult.rekeyed`). A row already there that is this very contact (a commit that
went through although its caller saw an error) counts as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, insert, select, text, update

from crm_store._common import check_aware
from crm_store.contact_events import COLUMNS as EVENT_COLUMNS
from crm_store.errors import InvalidData, NotFound
from crm_store.interactions import checked_values
from crm_store.models import ContactEvent, ContactPoint, Customer, Interaction

# Plain Core statements on the tables, built once: executed with parameters they are
# compiled once too (the ORM-enabled forms cost milliseconds each, built per call).
_INTERACTIONS: Table = Interaction.__table__  # type: ignore[assignment]
_EVENTS: Table = ContactEvent.__table__  # type: ignore[assignment]
_CUSTOMERS: Table = Customer.__table__  # type: ignore[assignment]
_POINTS: Table = ContactPoint.__table__  # type: ignore[assignment]
_INSERT = insert(_INTERACTIONS)
_INSERT_EVENTS = insert(_EVENTS)
_UPDATE = update(_INTERACTIONS).where(_INTERACTIONS.c.id == bindparam("target_id"))
_CUSTOMER_BY_ID = select(_CUSTOMERS.c.id, _CUSTOMERS.c.tier).where(
    _CUSTOMERS.c.id == bindparam("customer_id")
)
_CUSTOMER_BY_POINT = (
    select(_CUSTOMERS.c.id, _CUSTOMERS.c.tier)
    .join(_POINTS, _POINTS.c.customer_id == _CUSTOMERS.c.id)
    .where(_POINTS.c.kind == bindparam("kind"), _POINTS.c.value == bindparam("value"))
    .limit(1)
)
_SAME_CONTACT = select(
    _INTERACTIONS.c.channel, _INTERACTIONS.c.external_id, _INTERACTIONS.c.started_at
).where(_INTERACTIONS.c.id == bindparam("target_id"))
_MAX_ID = select(func.max(_INTERACTIONS.c.id))


@dataclass
class NewInteraction:
    """A contact to record, and how to find its customer at write time."""

    row: dict[str, Any]  # crm_store.interactions.validated_new_row
    kind: str | None = None  # contact-point kind of the normalised address
    value: str | None = None  # the normalised address; None: nobody to look up
    customer_id: int | None = None  # given by the caller: checked, not looked up
    id: int | None = None  # set when the daemon gave the id (held)


@dataclass
class InteractionUpdate:
    """Columns to set on a stored (or earlier queued) interaction."""

    interaction_id: int
    fields: dict[str, Any]


@dataclass
class EventRows:
    """Rows of the contact-event log (crm_store.contact_events)."""

    rows: list[dict[str, Any]]


Op = NewInteraction | InteractionUpdate | EventRows


@dataclass(frozen=True)
class Recorded:
    """A new interaction as stored: its id and the customer it was linked to."""

    interaction_id: int
    customer_id: int | None
    tier: str | None
    unlinked: bool = False  # held with a customer id that no longer exists


@dataclass
class BatchResult:
    """Per operation: `Recorded` for a new interaction, NotFound for one whose given
    customer does not exist, None otherwise; the highest interaction id after it."""

    results: list[Recorded | NotFound | None]
    max_id: int
    rekeyed: dict[int, int] = field(default_factory=dict)


def clean_update(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` checked as `crm_store.interactions.update_interaction` checks them (the
    ids are checked by the foreign keys at write time)."""
    cleaned = checked_values(fields)
    for name in ("customer_id", "agent_id"):
        if name not in fields:
            continue
        value = fields[name]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidData(f"{name} must be an id, not {value!r}")
        cleaned[name] = value
    return cleaned


def check_events(rows: Sequence[Mapping[str, Any]]) -> None:
    """Raise InvalidData for a contact-event row the log would refuse."""
    for row in rows:
        unknown = set(row) - EVENT_COLUMNS
        if unknown:
            raise InvalidData(f"contact events have no {', '.join(sorted(unknown))}")
        if not row.get("kind"):
            raise InvalidData("a contact event needs a kind")
        if check_aware(row.get("at"), "at") is None:
            raise InvalidData("a contact event needs its time (at)")


def apply_batch(conn: Connection, ops: Sequence[Op]) -> BatchResult:
    """Apply `ops` in order inside the caller's transaction."""
    results: list[Recorded | NotFound | None] = []
    rekeyed: dict[int, int] = {}
    explicit = False
    for op in ops:
        if isinstance(op, NewInteraction):
            outcome = _insert(conn, op)
            if isinstance(outcome, Recorded) and op.id is not None:
                explicit = True
                if outcome.interaction_id != op.id:
                    rekeyed[op.id] = outcome.interaction_id
            results.append(outcome)
        elif isinstance(op, InteractionUpdate):
            if op.fields:
                target = rekeyed.get(op.interaction_id, op.interaction_id)
                conn.execute(_UPDATE, {**op.fields, "target_id": target})
            results.append(None)
        else:
            if op.rows:
                rows = [_follow(row, rekeyed) for row in op.rows]
                conn.execute(_INSERT_EVENTS, rows)
            results.append(None)
    if explicit and conn.dialect.name == "postgresql":
        # Explicit ids do not move the sequence: the next insert must not reuse one.
        conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('interactions', 'id'),"
                " (SELECT max(id) FROM interactions))"
            )
        )
    max_id = int(conn.scalar(_MAX_ID) or 0)
    return BatchResult(results, max_id, rekeyed)


def _follow(row: dict[str, Any], rekeyed: Mapping[int, int]) -> dict[str, Any]:
    old = row.get("interaction_id")
    if old is None or old not in rekeyed:
        return row
    return {**row, "interaction_id": rekeyed[old]}


def _insert(conn: Connection, op: NewInteraction) -> Recorded | NotFound:
    customer: tuple[int, str | None] | None = None
    unlinked = False
    if op.customer_id is not None:
        found = conn.execute(_CUSTOMER_BY_ID, {"customer_id": op.customer_id}).first()
        if found is None:
            if op.id is None:
                return NotFound(f"no customer with id {op.customer_id}")
            unlinked = True  # held, and the customer went meanwhile: keep the contact
        else:
            customer = (found[0], found[1])
    elif op.kind is not None and op.value is not None:
        found = conn.execute(_CUSTOMER_BY_POINT, {"kind": op.kind, "value": op.value}).first()
        customer = (found[0], found[1]) if found is not None else None
    values = {**op.row, "customer_id": customer[0] if customer else None}
    if op.id is not None:
        there = conn.execute(_SAME_CONTACT, {"target_id": op.id}).first()
        if there is None:
            values["id"] = op.id
        elif tuple(there) == (values["channel"], values["external_id"], values["started_at"]):
            # This contact, stored by an attempt whose outcome was lost: written already.
            return _recorded(op.id, customer, unlinked)
        # else: another writer took the id; the store gives the next one.
    key = conn.execute(_INSERT, values).inserted_primary_key
    assert key is not None
    return _recorded(int(key[0]), customer, unlinked)


def _recorded(
    interaction_id: int, customer: tuple[int, str | None] | None, unlinked: bool
) -> Recorded:
    if customer is None:
        return Recorded(interaction_id, None, None, unlinked)
    return Recorded(interaction_id, customer[0], customer[1], unlinked)
