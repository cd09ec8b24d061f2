"""A customer's message in: stored once, joined to its conversation, routed when new.

One transaction stores the message and, when it opens a conversation, its interaction:
a crash leaves either both or neither, and the provider's retry (IMAP re-fetch, a
Twilio webhook retried, a chat frame re-sent) finds the message stored and does nothing.
A message joins the newest contact of its conversation while that contact is open (an
email reply by its references or the token in our reply address, an SMS by the
customer's number, a chat by its id); otherwise it opens a new contact, queued for an
agent like a call. Routing is told after the commit: a contact it never heard of
(the daemon stopped in between) is rebuilt from the store on the next start, as every
text channel declares (`restored_from_store`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.messaging.events import MessageReceived
from adapters.messaging.model import InboundMessage, Received
from adapters.messaging.survey import Survey, answers_survey
from crm_store import customers, messages
from crm_store.csat import record_contact_csat
from crm_store.errors import InvalidData, NotFound
from crm_store.interactions import get_interaction, record_interaction
from crm_store.messages import AttachmentRow
from crm_store.models import Interaction, Message
from routing.channels import ChannelSpec
from routing.events import ContactQueued
from routing.outbox import StoreOutbox, StoreUnavailable
from routing.ports import EventPublisher


@dataclass(frozen=True, slots=True)
class TextChannelRoute:
    """Where a channel's new conversations wait, unless the message says otherwise."""

    queue: str
    priority: int = 0


class MessageIntake:
    """The `MessageSink` every text channel adapter hands its customers' messages to."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: EventPublisher,
        *,
        specs: Mapping[str, ChannelSpec],
        routes: Mapping[str, TextChannelRoute],
        region: str,
        outbox: StoreOutbox | None = None,
        # An email thread token (in our reply address or subject) -> its interaction id.
        read_token: Callable[[str], int | None] | None = None,
        # The satisfaction question each channel asks when a contact ends (SMS).
        surveys: Mapping[str, Survey] | None = None,
        hold_wait_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.specs = specs
        self.routes = routes
        self.region = region
        self.outbox = outbox
        self.read_token = read_token
        self.surveys = dict(surveys or {})
        self.hold_wait_seconds = hold_wait_seconds
        self.clock = clock
        # Two messages of one conversation at once must not open two contacts: one of a
        # few locks per conversation (striped: bounded however many conversations run).
        self._locks = [asyncio.Lock() for _ in range(32)]
        self.received = 0
        self.duplicates = 0

    async def receive(self, message: InboundMessage) -> Received:
        """Store `message` and route it (see the module docstring)."""
        spec = self.specs.get(message.channel)
        if spec is None or message.channel not in self.routes:
            raise InvalidData(f"channel {message.channel!r} is not running")
        if self.outbox is not None:
            # A saturated store writer slows every intake down rather than failing it.
            await self.outbox.room()
        if self.outbox is not None and self.outbox.holding:
            # Contacts held for the store take ids this one would collide with: wait a
            # little (a busy store is back in moments), then let the provider give the
            # message again (nothing is lost).
            deadline = time.monotonic() + self.hold_wait_seconds
            while self.outbox.holding:
                if time.monotonic() >= deadline:
                    raise StoreUnavailable("the store is not taking writes; try again shortly")
                await asyncio.sleep(0.05)
        first_ref = message.thread_refs[0] if message.thread_refs else message.sender
        async with self._locks[hash((message.channel, first_ref)) % len(self._locks)]:
            received, queued = await self._store(message, spec)
        if received.duplicate:
            self.duplicates += 1
            return received
        self.received += 1
        if queued is not None:
            self.bus.publish(queued)
        else:
            self.bus.publish(
                MessageReceived(
                    received.interaction_id, received.message_id, message.channel, self.clock()
                )
            )
        return received

    async def _store(
        self, message: InboundMessage, spec: ChannelSpec
    ) -> tuple[Received, ContactQueued | None]:
        at = datetime.fromtimestamp(message.received_at, UTC)
        async with self.sessionmaker.begin() as session:
            known = await messages.stored(session, message.channel, message.provider_id)
            if known is not None:
                return Received(known.interaction_id, known.id, False, duplicate=True), None
            thread_key, current = await self._conversation(session, message)
            queued: ContactQueued | None = None
            score = await self._survey_answer(session, message, current)
            if score is not None and current is not None:
                # The answer to "how did we do?": the closed contact's CSAT, not a new one.
                await record_contact_csat(session, current.id, score)
            elif current is None or current.ended_at is not None:
                current, queued = await self._open(session, message, spec, thread_key, at)
            stored = await messages.add_inbound(
                session,
                current.id,
                channel=message.channel,
                provider_id=message.provider_id,
                sender=message.sender,
                sender_name=message.sender_name,
                recipient=message.recipient,
                subject=message.subject,
                body=message.body,
                thread_key=thread_key,
                thread_refs=message.thread_refs,
                attachments=[
                    AttachmentRow(a.filename, a.content_type, a.size, a.ref, a.dropped)
                    for a in message.attachments
                ],
                at=at,
            )
            return Received(current.id, stored.id, queued is not None), queued

    async def _survey_answer(
        self, session: AsyncSession, message: InboundMessage, current: Interaction | None
    ) -> int | None:
        survey = self.surveys.get(message.channel)
        if survey is None or current is None or current.ended_at is None:
            return None
        last = await session.scalar(
            select(Message)
            .where(Message.interaction_id == current.id)
            .order_by(Message.id.desc())
            .limit(1)
        )
        if last is None:
            return None
        return answers_survey(
            survey,
            last_body=last.body,
            last_from_daemon=last.direction == "outbound" and last.author_id is None,
            asked_at=(last.status_at or last.created_at).timestamp(),
            now=message.received_at,
            body=message.body,
        )

    async def _conversation(
        self, session: AsyncSession, message: InboundMessage
    ) -> tuple[str, Interaction | None]:
        """The conversation's key, and its newest contact when it has one."""
        channel = message.channel
        if message.thread_token and self.read_token is not None:
            interaction_id = self.read_token(message.thread_token)
            if interaction_id is not None:
                try:
                    found = await get_interaction(session, interaction_id)
                except NotFound:
                    found = None
                if found is not None and found.channel == channel:
                    named = found.external_id or message.provider_id
                    newest = await messages.latest_in_thread(session, channel, named)
                    return named, newest or found
        key: str | None
        if message.thread_refs:
            key = await messages.thread_of(session, channel, message.thread_refs)
            if key is None:
                # A chat's id names its conversation. An email whose thread we have not
                # seen is keyed by the thread's root (References start with it; In-Reply-To
                # comes first in thread_refs), so the earlier mails, if they arrive after
                # this one (mailboxes do not keep order), join it rather than split it.
                refs = message.thread_refs
                key = refs[1] if channel == "email" and len(refs) > 1 else refs[0]
        else:
            # SMS: one conversation per number. A new email thread is named by its first
            # mail, which a reply that came first may already have opened.
            key = message.provider_id if channel == "email" else message.sender
        return key, await messages.latest_in_thread(session, channel, key)

    async def _open(
        self,
        session: AsyncSession,
        message: InboundMessage,
        spec: ChannelSpec,
        thread_key: str,
        at: datetime,
    ) -> tuple[Interaction, ContactQueued]:
        """A new contact for the conversation, and what routing is told of it."""
        route = self.routes[message.channel]
        customer = None
        if message.sender:
            try:
                customer = await customers.find_customer_by_contact(
                    session, spec.address_kind, message.sender, self.region
                )
            except InvalidData:
                customer = None  # an address the store cannot normalise: nobody to find
        if customer is None and message.sender_email:
            try:
                customer = await customers.find_customer_by_contact(
                    session, "email", message.sender_email, self.region
                )
            except InvalidData:
                customer = None  # not an email address: nobody to find by it
        queue = message.queue or route.queue
        interaction = await record_interaction(
            session,
            channel=message.channel,
            customer_id=customer.id if customer else None,
            external_id=thread_key,
            address=message.sender,
            address_name=message.sender_name,
            started_at=at,
            queue=queue,
        )
        queued = ContactQueued(
            interaction_id=interaction.id,
            channel=message.channel,
            queue=queue,
            at=message.received_at,
            address=message.sender,
            address_name=message.sender_name,
            customer_id=customer.id if customer else None,
            tier=customer.tier if customer else None,
            priority=message.priority or route.priority,
            skills=dict(message.skills),
        )
        return interaction, queued
