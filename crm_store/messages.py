"""Messages of text channels (email, SMS, chat), both ways, with their delivery state.

Inbound messages are stored once per provider id (the intake's idempotence); each belongs
to a conversation by its `thread_key` (an email thread's first Message-ID, a customer's
number, a chat id). Outbound messages are stored `queued` before anything is sent, so a
crash, a provider outage or a restart never loses what an agent wrote: the delivery loop
claims due messages (`claim_due`, a lease: a claimed message whose sender never answered
is due again when the lease ends), and records each outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_store._common import clean_text, flush_or_conflict
from crm_store.errors import InvalidData, NotFound
from crm_store.interactions import MAX_BODY, get_interaction
from crm_store.models import CHANNELS, Interaction, Message, utcnow

# How far a status may move on: a late "sent" callback never undoes "delivered".
_RANK: Final = {
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "undelivered": 3,
    "failed": 3,
    "delivered": 4,
    "read": 5,
}
MAX_REFS: Final = 50
MAX_ATTACHMENTS: Final = 50


@dataclass(frozen=True, slots=True)
class AttachmentRow:
    """An attachment's metadata as stored (the bytes live where `ref` says)."""

    filename: str
    content_type: str
    size: int
    ref: str | None = None
    dropped: str | None = None


def _body(body: object) -> str:
    if not isinstance(body, str):
        raise InvalidData("message body must be text")
    if len(body) > MAX_BODY:
        raise InvalidData(f"message body is longer than {MAX_BODY} characters")
    if "\x00" in body:
        raise InvalidData("message body must not contain NUL characters")
    return body


def _refs(refs: Sequence[str]) -> list[str] | None:
    kept = [r for r in (clean_text(ref, "thread reference", 255) for ref in refs[:MAX_REFS]) if r]
    return kept or None


def _attachments(items: Sequence[AttachmentRow]) -> list[dict[str, Any]] | None:
    if len(items) > MAX_ATTACHMENTS:
        raise InvalidData(f"more than {MAX_ATTACHMENTS} attachments")
    return [
        {
            "filename": clean_text(a.filename, "attachment filename", 255) or "attachment",
            "content_type": clean_text(a.content_type, "attachment type", 255)
            or "application/octet-stream",
            "size": max(0, int(a.size)),
            "ref": clean_text(a.ref, "attachment ref", 2000),
            "dropped": clean_text(a.dropped, "attachment note", 200),
        }
        for a in items
    ] or None


async def stored(session: AsyncSession, channel: str, provider_id: str) -> Message | None:
    """The message already stored under (channel, provider_id), if any."""
    return await session.scalar(
        select(Message).where(Message.channel == channel, Message.provider_id == provider_id)
    )


async def thread_of(session: AsyncSession, channel: str, refs: Sequence[str]) -> str | None:
    """The conversation one of `refs` (message ids this message answers) belongs to."""
    wanted = [r for r in refs[:MAX_REFS] if r]
    if not wanted:
        return None
    return await session.scalar(
        select(Message.thread_key)
        .where(Message.channel == channel, Message.provider_id.in_(wanted))
        .where(Message.thread_key.is_not(None))
        .order_by(Message.id.desc())
        .limit(1)
    )


async def latest_in_thread(
    session: AsyncSession, channel: str, thread_key: str
) -> Interaction | None:
    """The newest interaction of the conversation `thread_key` (open or not)."""
    interaction_id = await session.scalar(
        select(Message.interaction_id)
        .where(Message.channel == channel, Message.thread_key == thread_key)
        .order_by(Message.id.desc())
        .limit(1)
    )
    return None if interaction_id is None else await session.get(Interaction, interaction_id)


async def add_inbound(
    session: AsyncSession,
    interaction_id: int,
    *,
    channel: str,
    provider_id: str,
    sender: str | None,
    body: str,
    thread_key: str,
    sender_name: str | None = None,
    recipient: str | None = None,
    subject: str | None = None,
    thread_refs: Sequence[str] = (),
    attachments: Sequence[AttachmentRow] = (),
    at: datetime | None = None,
) -> Message:
    """Store what a customer sent on `interaction_id`'s conversation."""
    if channel not in CHANNELS:
        raise InvalidData(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    message = Message(
        interaction_id=(await get_interaction(session, interaction_id)).id,
        channel=channel,
        direction="inbound",
        status="received",
        provider_id=clean_text(provider_id, "provider_id", 255, required=True),
        sender=clean_text(sender, "sender", 320),
        sender_name=clean_text(sender_name, "sender name", 200),
        recipient=clean_text(recipient, "recipient", 320),
        subject=clean_text(subject, "subject", 998),
        body=_body(body),
        thread_key=clean_text(thread_key, "thread key", 320, required=True),
        thread_refs=_refs(thread_refs),
        attachments=_attachments(attachments),
        created_at=at or utcnow(),
    )
    session.add(message)
    await flush_or_conflict(session, f"{channel} message {provider_id} is already stored")
    return message


async def queue_outbound(
    session: AsyncSession,
    interaction_id: int,
    *,
    body: str,
    recipient: str,
    author_id: int | None,
    subject: str | None = None,
    provider_id: str | None = None,
    thread_refs: Sequence[str] = (),
    at: datetime | None = None,
) -> Message:
    """Store a message for the customer, `queued`: the delivery loop sends it."""
    interaction = await get_interaction(session, interaction_id)
    text = _body(body)
    if not text.strip():
        raise InvalidData("the message is empty")
    now = at or utcnow()
    thread_key = await session.scalar(
        select(Message.thread_key)
        .where(Message.interaction_id == interaction.id, Message.thread_key.is_not(None))
        .order_by(Message.id.desc())
        .limit(1)
    )
    message = Message(
        interaction_id=interaction.id,
        channel=interaction.channel,
        direction="outbound",
        status="queued",
        body=text,
        recipient=clean_text(recipient, "recipient", 320, required=True),
        subject=clean_text(subject, "subject", 998),
        provider_id=clean_text(provider_id, "provider_id", 255),
        thread_key=thread_key or interaction.external_id,
        thread_refs=_refs(thread_refs),
        author_id=author_id,
        created_at=now,
        next_attempt_at=now,
        status_at=now,
    )
    session.add(message)
    await flush_or_conflict(session, "cannot queue the message")
    return message


async def claim_due(
    session: AsyncSession,
    now: datetime,
    *,
    channels: Sequence[str],
    lease: timedelta,
    limit: int = 20,
) -> list[Message]:
    """Outbound messages of `channels` due to be sent, marked `sending` until `now + lease`."""
    rows = list(
        (
            await session.scalars(
                select(Message)
                .where(Message.status.in_(("queued", "sending")))
                .where(Message.channel.in_(list(channels)))
                .where(Message.next_attempt_at <= now)
                .order_by(Message.next_attempt_at, Message.id)
                .limit(limit)
            )
        ).all()
    )
    for message in rows:
        message.status, message.status_at = "sending", now
        message.attempts += 1
        message.next_attempt_at = now + lease
    await session.flush()
    return rows


async def next_due_at(session: AsyncSession, channels: Sequence[str]) -> datetime | None:
    """When the next outbound message of `channels` is due, if any is waiting."""
    return await session.scalar(
        select(Message.next_attempt_at)
        .where(Message.status.in_(("queued", "sending")))
        .where(Message.channel.in_(list(channels)))
        .order_by(Message.next_attempt_at)
        .limit(1)
    )


async def _one(session: AsyncSession, message_id: int) -> Message:
    message = await session.get(Message, message_id)
    if message is None:
        raise NotFound(f"message {message_id} does not exist")
    return message


async def record_sent(
    session: AsyncSession, message_id: int, *, provider_id: str | None, status: str, at: datetime
) -> Message:
    """The provider took the message."""
    message = await _one(session, message_id)
    message.status = status if _RANK.get(status, -1) >= _RANK["sent"] else "sent"
    message.status_at, message.next_attempt_at, message.last_error = at, None, None
    if provider_id and not message.provider_id:
        message.provider_id = clean_text(provider_id, "provider_id", 255)
    await flush_or_conflict(session, f"{message.channel} message {provider_id} is already stored")
    return message


async def record_retry(
    session: AsyncSession, message_id: int, *, error: str, retry_at: datetime
) -> Message:
    """The provider could not take it now: queued again for `retry_at`."""
    message = await _one(session, message_id)
    message.status, message.next_attempt_at = "queued", retry_at
    message.last_error = clean_text(error, "error", 500)
    await session.flush()
    return message


async def record_failed(
    session: AsyncSession, message_id: int, *, error: str, at: datetime
) -> Message:
    """The message will not be sent: the agent sees why."""
    message = await _one(session, message_id)
    message.status, message.status_at, message.next_attempt_at = "failed", at, None
    message.last_error = clean_text(error, "error", 500)
    await session.flush()
    return message


async def record_status(
    session: AsyncSession,
    channel: str,
    provider_id: str,
    *,
    status: str,
    error: str | None,
    at: datetime,
) -> Message | None:
    """A provider's later word on a sent message (a delivery receipt). Never moves a
    status back (callbacks arrive out of order); None for a message we do not know."""
    if status not in _RANK:
        raise InvalidData(f"message status {status!r} is not one of {', '.join(_RANK)}")
    message = await stored(session, channel, provider_id)
    if message is None or message.direction != "outbound":
        return None
    if _RANK[status] > _RANK.get(message.status, -1):
        message.status, message.status_at = status, at
        if error:
            message.last_error = clean_text(error, "error", 500)
        await session.flush()
    return message


async def cancel_queued(session: AsyncSession, interaction_id: int) -> int:
    """Nothing queued on the interaction is sent any more (it was deleted, say)."""
    result = await session.execute(
        update(Message)
        .where(Message.interaction_id == interaction_id, Message.status == "queued")
        .values(status="failed", last_error="cancelled", next_attempt_at=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)
