"""The vocabulary of text channels, shared by every channel adapter (pure, no I/O).

An adapter parses what its provider gives it (an IMAP message, a Twilio webhook, a chat
socket frame) into an `InboundMessage` and hands it to the message intake
(`MessageSink.receive`). What agents write is stored first as an `OutboundMessage` and
sent by the channel's `MessageSender`; a sender says how a send went by returning a
`SendResult` or raising `TemporaryFailure` (tried again later, with back-off) or
`PermanentFailure` (shown to the agent as failed, never retried).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with a message, kept by reference (never inline in a row)."""

    filename: str
    content_type: str
    size: int
    # Where the bytes are: a path under the daemon's attachment folder, or a provider's
    # URL (MMS media). None when the attachment was over the size limit and not kept.
    ref: str | None = None
    # Why it was not kept, when it was not ("over 10 MB").
    dropped: str | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message a customer sent, as its channel adapter understood it."""

    channel: str  # "email", "sms", "chat"
    # The provider's id of this message: email Message-ID (or a hash of the message
    # when it has none), Twilio MessageSid, the chat frame's id. Storing is idempotent
    # on (channel, provider_id): a message delivered twice is stored once.
    provider_id: str
    # The customer's address on this channel: email address (lower-cased), E.164 phone
    # number, the chat visitor's id.
    sender: str
    body: str  # plain text, already made safe for display (HTML reduced to text)
    received_at: float  # epoch seconds
    sender_name: str | None = None  # display name as given (From: name, pre-chat form)
    subject: str | None = None
    # Which conversation it belongs to. Email: In-Reply-To and References message ids
    # plus any thread token found in the To address or subject. Chat: the chat id.
    # SMS: empty (one open conversation per customer number).
    thread_refs: tuple[str, ...] = ()
    thread_token: str | None = None
    attachments: tuple[Attachment, ...] = ()
    # Routing hints from the channel (a chat's topic mapped to skills).
    queue: str | None = None
    skills: dict[str, int] = field(default_factory=dict)
    priority: int = 0
    # Who it was addressed to (our mailbox, our number): shown, and replies come from it.
    recipient: str | None = None
    # An email address the customer gave on another channel (a chat's pre-chat form):
    # finds them in the store when their address on the channel does not.
    sender_email: str | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """What the intake did with an inbound message."""

    interaction_id: int
    message_id: int
    new_contact: bool  # a new contact was opened and queued for an agent
    duplicate: bool = False  # already stored: nothing was done


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message an agent wrote (or the daemon: a chat transcript), stored before sending."""

    message_id: int  # the stored row: the sender's idempotence key
    interaction_id: int
    channel: str
    recipient: str  # the customer's address on the channel
    body: str
    subject: str | None = None
    # Email threading: the Message-ID this one will carry, and the ids it answers.
    own_provider_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    sender_name: str | None = None  # the agent's display name, where the channel shows it
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class SendResult:
    """A send the provider accepted."""

    provider_id: str | None  # Twilio's MessageSid, the Message-ID sent, the chat frame id
    status: str = "sent"  # "sent"; "delivered" when the channel knows at once (chat)


class TemporaryFailure(Exception):
    """The provider could not take the message now (connection refused, 5xx, 429)."""


class PermanentFailure(Exception):
    """The provider refused the message for good (bad address, opted out, 4xx)."""


class MessageSink(Protocol):
    """Where channel adapters hand what customers send (adapters.messaging.intake)."""

    async def receive(self, message: InboundMessage) -> Received:
        """Store the message (idempotently) and route it; raises
        crm_store.errors.InvalidData for a message that cannot be stored (nothing is)."""
        ...


class MessageSender(Protocol):
    """A channel's way out to customers."""

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one message; SendResult, or TemporaryFailure / PermanentFailure."""
        ...
