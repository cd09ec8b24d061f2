"""Runs an IVR flow for one call: the pure interpreter, driven through a caller port.

The interpreter decides; this runner carries out each command with whatever speaks to
the caller (a FastAGI channel),
looks customers up in the store, and on the way out records the path taken and what the
caller keyed in on the interaction. A caller hanging up at any step ends the run cleanly.

Nothing the store does stops a call here: a look-up that cannot be read finds nobody, and
a write that cannot be made waits in the store's outbox (routing.intake). A
caller id is whatever the network sent, so it is bounded before anything uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_store import customers
from crm_store.errors import StoreError
from crm_store.models import Customer
from crm_store.phones import bounded_caller_id
from ivr_flows import interpreter as ivr
from ivr_flows.model import Flow
from routing import contact_request
from routing.events import ContactQueued
from routing.intake import OpenedContact, StoreOutbox, store_unavailable, update_contact
from routing.ports import EventPublisher

log = logging.getLogger(__name__)
MAX_COMMANDS = 500  # a guard on top of the flow's own step limit


class CallerGone(Exception):
    """The caller hung up while the IVR was talking to them."""


class CallerPort(Protocol):
    """What the IVR needs from the phone line."""

    async def play(self, prompt: str) -> None:
        """Play a sound; return when done."""

    async def collect(
        self, prompt: str, max_digits: int, wait_seconds: float, terminator: str | None
    ) -> str | None:
        """Play a prompt and read keys; None when the caller pressed nothing in time."""


@dataclass(frozen=True)
class IvrOutcome:
    """How the call left the IVR."""

    outcome: str  # queued, transferred, voicemail, callback, hangup, caller_hangup, ...
    command: ivr.Command | None
    path: list[str]
    inputs: dict[str, str]
    skills: dict[str, int]
    priority: int
    language: str | None
    customer_id: int | None
    tier: str | None


async def run_flow(
    flow: Flow,
    caller: CallerPort,
    *,
    caller_number: str,
    interaction_id: int,
    sessionmaker: async_sessionmaker[AsyncSession],
    region: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    outbox: StoreOutbox | None = None,
) -> IvrOutcome:
    """Run `flow` to its end; record the path and inputs on the interaction."""
    session, command = ivr.start(flow, bounded_caller_id(caller_number) or "", clock())
    for _ in range(MAX_COMMANDS):
        if session.finished:
            break
        try:
            result = await _execute(command, caller, sessionmaker, region)
        except CallerGone:
            result = ivr.CallerHungUp()
        command = ivr.advance(flow, session, result, clock())
    customer_id = int(session.customer_id) if session.customer_id else None
    await _record(
        sessionmaker,
        interaction_id,
        outbox=outbox,
        ivr_path=list(session.path),
        ivr_inputs=dict(session.inputs),
        **({"customer_id": customer_id} if customer_id is not None else {}),
    )
    return IvrOutcome(
        outcome=session.outcome or "hangup",
        command=command if session.finished else None,
        path=list(session.path),
        inputs=dict(session.inputs),
        skills=dict(session.skills),
        priority=session.priority,
        language=session.language,
        customer_id=customer_id,
        tier=session.tier,
    )


async def _execute(
    command: ivr.Command,
    caller: CallerPort,
    sessionmaker: async_sessionmaker[AsyncSession],
    region: str,
) -> ivr.Result:
    if isinstance(command, ivr.Play):
        await caller.play(command.prompt)
        return ivr.Played()
    if isinstance(command, ivr.Collect):
        keys = await caller.collect(
            command.prompt, command.max_digits, command.timeout, command.terminator
        )
        return ivr.Timeout() if keys is None else ivr.Digits(keys)
    if isinstance(command, ivr.Lookup):
        return await _lookup(command, sessionmaker, region)
    # Terminal commands are carried out by whoever called run_flow (queue, transfer...).
    return ivr.Played()


async def _lookup(
    command: ivr.Lookup, sessionmaker: async_sessionmaker[AsyncSession], region: str
) -> ivr.LookupResult:
    """By caller number: any phone format. By a collected value: a customer number
    (the customer's id in the store) or, failing that, a phone number. Nobody is found
    when the store cannot be read: the flow goes on as for an unknown caller."""
    try:
        async with sessionmaker() as db:
            found = None
            if command.by == "variable" and command.key.isdigit() and len(command.key) <= 12:
                found = await db.get(Customer, int(command.key))
            if found is None:
                found = await customers.find_customer_by_phone(db, command.key, region)
    except Exception as exc:
        if not store_unavailable(exc):
            raise
        log.warning("IVR look-up without the store (%s): an unknown caller", exc)
        found = None
    if found is None:
        return ivr.LookupResult()
    return ivr.LookupResult(str(found.id), found.tier)


async def hand_to_routing(
    bus: EventPublisher,
    sessionmaker: async_sessionmaker[AsyncSession],
    opened: OpenedContact,
    outcome: IvrOutcome,
    queue: str,
    *,
    address: str | None,
    dnis: str,
    at: float,
    outbox: StoreOutbox | None = None,
    address_name: str | None = None,
) -> None:
    """The flow queued the call: store the queue and what it asks of routing (kept for
    a later re-queue), and publish what the IVR gathered."""
    # The queue step's own priority and skills come on top of those set on the way.
    command = outcome.command
    if isinstance(command, ivr.Queue):
        priority, skills = command.priority, dict(command.skills)
    else:
        priority, skills = outcome.priority, dict(outcome.skills)
    await _record(
        sessionmaker,
        opened.interaction_id,
        outbox=outbox,
        queue=queue,
        routing=contact_request.as_routing(priority, skills),
    )
    bus.publish(
        ContactQueued(
            interaction_id=opened.interaction_id,
            channel="voice",
            queue=queue,
            at=at,
            address=bounded_caller_id(address),
            address_name=address_name,
            customer_id=outcome.customer_id or opened.customer_id,
            tier=outcome.tier if outcome.customer_id else opened.tier,
            priority=priority,
            skills=skills,
            ivr_path=outcome.path,
            ivr_inputs={"dnis": dnis, **outcome.inputs},
        )
    )


async def record_ivr_path(
    sessionmaker: async_sessionmaker[AsyncSession],
    interaction_id: int,
    path: list[str],
    inputs: dict[str, str],
    outbox: StoreOutbox | None = None,
) -> None:
    """A call queued without the daemon's IVR: the path and inputs the dialplan attached,
    kept as a flow's would be. Never raises."""
    await _record(
        sessionmaker, interaction_id, outbox=outbox, ivr_path=list(path), ivr_inputs=dict(inputs)
    )


async def record_ivr_end(
    sessionmaker: async_sessionmaker[AsyncSession],
    interaction_id: int,
    outcome: IvrOutcome,
    at: datetime,
    outbox: StoreOutbox | None = None,
) -> None:
    """The call ended in the IVR (voicemail, transfer, hang-up): close its interaction.
    Never raises: the caller is already on their way."""
    await _record(
        sessionmaker,
        interaction_id,
        outbox=outbox,
        ended_at=at,
        end_cause=f"ivr: {outcome.outcome}",
    )


async def _record(
    sessionmaker: async_sessionmaker[AsyncSession],
    interaction_id: int,
    *,
    outbox: StoreOutbox | None = None,
    **fields: object,
) -> None:
    """Store what the IVR learnt; a failure is logged, never raised into the call."""
    try:
        await update_contact(sessionmaker, interaction_id, outbox=outbox, **fields)
    except StoreError as exc:
        log.warning(
            "IVR could not record %s on interaction %s: %s",
            ", ".join(fields),
            interaction_id,
            exc.message,
        )
    except Exception:
        # Not an outage (those are held): a bug must still not drop the caller.
        log.exception(
            "IVR could not record %s on interaction %s", ", ".join(fields), interaction_id
        )
