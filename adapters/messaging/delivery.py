"""What agents write, sent from the store: queued first, then sent, retried, or failed.

The API stores a message `queued` (`queue_reply`) and wakes the loop; the loop claims due
messages (a lease, so a daemon that dies mid-send leaves them due again rather than
lost), hands each to its channel's `MessageSender`, and records the outcome: sent,
queued again with back-off after a temporary failure, or failed with the provider's
reason after a permanent one or too many attempts. Each change is published
(`MessageStatusChanged`) for the agent's desktop. A restart picks up where it was: the
state is in the store, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.messaging.events import MessageStatusChanged
from adapters.messaging.model import (
    MessageSender,
    OutboundMessage,
    PermanentFailure,
    SendResult,
    TemporaryFailure,
)
from crm_store import messages
from crm_store.errors import InvalidData
from crm_store.interactions import get_interaction
from crm_store.models import Message
from routing.ports import EventPublisher

log = logging.getLogger(__name__)

# Seconds before the next try after the n-th temporary failure; then the message fails.
BACKOFF: tuple[float, ...] = (2.0, 10.0, 30.0, 120.0, 600.0, 1800.0)


def retry_delay(attempt: int, backoff: Sequence[float] = BACKOFF) -> float | None:
    """Seconds to wait after failed attempt number `attempt` (1-based); None: give up."""
    if attempt < 1 or attempt > len(backoff):
        return None
    return backoff[attempt - 1]


def reply_references(inbound_refs: Sequence[str], inbound_id: str | None) -> list[str]:
    """The References chain of a reply, oldest first, ending with the message answered.

    Inbound refs are stored In-Reply-To first, then References (oldest first)."""
    chain = list(inbound_refs[1:])
    if inbound_refs and inbound_refs[0] not in chain:
        chain.append(inbound_refs[0])
    if inbound_id and inbound_id not in chain:
        chain.append(inbound_id)
    return chain


def quoted(body: str, who: str, when: datetime) -> str:
    """The customer's message as an email reply quotes it, below the answer."""
    lines = body.rstrip().splitlines() or [""]
    quote = "\n".join(">" + (" " + line if line else "") for line in lines)
    return f"On {when:%Y-%m-%d %H:%M} UTC, {who} wrote:\n{quote}\n"


async def queue_reply(
    session: AsyncSession,
    interaction_id: int,
    *,
    body: str,
    author_id: int | None,
    subject: str | None = None,
    provider_id: str | None = None,
    quote: bool = False,
    at: datetime | None = None,
) -> Message:
    """Store an agent's message for the contact's customer, answering their latest one
    (quoted below it when `quote`, as email replies do)."""
    interaction = await get_interaction(session, interaction_id)
    if not interaction.address:
        raise InvalidData("this contact has no address to answer")
    last_in = await session.scalar(
        select(Message)
        .where(Message.interaction_id == interaction_id, Message.direction == "inbound")
        .order_by(Message.id.desc())
        .limit(1)
    )
    refs: list[str] = []
    if last_in is not None and interaction.channel == "email":
        refs = reply_references(last_in.thread_refs or [], last_in.provider_id)
    if subject is None and last_in is not None:
        subject = last_in.subject
    if quote and last_in is not None:
        who = last_in.sender_name or last_in.sender or "you"
        body = f"{body.rstrip()}\n\n{quoted(last_in.body, who, last_in.created_at)}"
    return await messages.queue_outbound(
        session,
        interaction_id,
        body=body,
        recipient=interaction.address,
        author_id=author_id,
        subject=subject,
        provider_id=provider_id,
        thread_refs=refs,
        at=at,
    )


def outbound_of(row: Message, sender_name: str | None = None) -> OutboundMessage:
    """The stored row as its channel's sender takes it."""
    refs = tuple(row.thread_refs or ())
    return OutboundMessage(
        message_id=row.id,
        interaction_id=row.interaction_id,
        channel=row.channel,
        recipient=row.recipient or "",
        body=row.body,
        subject=row.subject,
        own_provider_id=row.provider_id,
        in_reply_to=refs[-1] if refs else None,
        references=refs,
        sender_name=sender_name,
        attempt=row.attempts,
    )


class MessageDelivery:
    """The loop that sends queued messages through their channels' senders."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: EventPublisher,
        senders: Mapping[str, MessageSender],
        *,
        lease_seconds: float = 120.0,
        backoff: Sequence[float] = BACKOFF,
        concurrency: int = 8,
        idle_seconds: float = 30.0,
        author_names: Callable[[int], str | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.senders = dict(senders)
        self.lease = timedelta(seconds=lease_seconds)
        self.backoff = tuple(backoff)
        self.idle_seconds = idle_seconds
        self.author_names = author_names
        self.clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = self.retried = self.failed = 0

    def new_provider_id(self, channel: str) -> str | None:
        """The id a message of `channel` will carry, made before it is stored, where the
        channel names its own messages (an email's Message-ID); None otherwise."""
        make = getattr(self.senders.get(channel), "new_provider_id", None)
        return str(make()) if callable(make) else None

    def wake(self) -> None:
        """Something was queued: look now rather than at the next idle tick."""
        self._wake.set()

    def start(self) -> None:
        """Start the loop (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="message-delivery")

    async def stop(self) -> None:
        """Stop the loop; claimed messages not sent are due again after their lease."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            # Cleared before looking, not after: a message queued while this pass reads
            # the store wakes the next pass at once instead of waiting out the idle tick.
            self._wake.clear()
            try:
                wait = await self.deliver_due()
            except Exception:
                log.exception("message delivery: the store could not be read; trying again")
                wait = 5.0
            if self._wake.is_set() or wait <= 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def deliver_due(self) -> float:
        """Send every due message; seconds until the next one is due (or the idle tick)."""
        while True:
            async with self.sessionmaker.begin() as session:
                # Only channels running here: another daemon's (or a later start's) stay.
                claimed = await messages.claim_due(
                    session, self._now(), channels=list(self.senders), lease=self.lease, limit=20
                )
                outs = [outbound_of(row, self._name(row.author_id)) for row in claimed]
            if not outs:
                break
            await asyncio.gather(*(self._send_one(out) for out in outs))
        async with self.sessionmaker() as session:
            due = await messages.next_due_at(session, list(self.senders))
        if due is None:
            return self.idle_seconds
        return max(0.0, min(self.idle_seconds, (due - self._now()).total_seconds()))

    def _name(self, author_id: int | None) -> str | None:
        if author_id is None or self.author_names is None:
            return None
        return self.author_names(author_id)

    async def _send_one(self, out: OutboundMessage) -> None:
        sender = self.senders.get(out.channel)
        async with self._slots:
            outcome: SendResult | Exception
            if sender is None:
                outcome = TemporaryFailure(f"the {out.channel} channel is not running")
            else:
                try:
                    outcome = await sender.send(out)
                except (TemporaryFailure, PermanentFailure) as exc:
                    outcome = exc
                except Exception as exc:  # a sender's bug must not stop the loop
                    log.exception("message %s: the %s sender failed", out.message_id, out.channel)
                    outcome = TemporaryFailure(f"{type(exc).__name__}: {exc}")
        await self._record(out, outcome)

    async def _record(self, out: OutboundMessage, outcome: SendResult | Exception) -> None:
        now = self._now()
        status: str
        error: str | None = None
        async with self.sessionmaker.begin() as session:
            if isinstance(outcome, SendResult):
                row = await messages.record_sent(
                    session,
                    out.message_id,
                    provider_id=outcome.provider_id,
                    status=outcome.status,
                    at=now,
                )
                status = row.status
                self.sent += 1
            else:
                error = str(outcome) or type(outcome).__name__
                delay = (
                    retry_delay(out.attempt, self.backoff)
                    if isinstance(outcome, TemporaryFailure)
                    else None
                )
                if delay is None:
                    await messages.record_failed(session, out.message_id, error=error, at=now)
                    status = "failed"
                    self.failed += 1
                    log.warning("message %s not sent: %s", out.message_id, error)
                else:
                    await messages.record_retry(
                        session,
                        out.message_id,
                        error=error,
                        retry_at=now + timedelta(seconds=delay),
                    )
                    status = "queued"
                    self.retried += 1
        self.bus.publish(
            MessageStatusChanged(out.interaction_id, out.message_id, status, error, self.clock())
        )

    def figures(self) -> dict[str, Any]:
        """For /status and /metrics."""
        return {"sent": self.sent, "retried": self.retried, "failed": self.failed}
