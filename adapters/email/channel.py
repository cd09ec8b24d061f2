"""The email channel assembled: a mailbox read over IMAP becomes routed contacts, and
what agents write goes out over SMTP, threaded so replies come back to their contact.

Per message from the mailbox: parsed off the event loop (`parse_email` is CPU work),
its attachments written to the attachment folder, then handed to the message intake,
which stores it once (by Message-ID) and routes it; only then does the IMAP source mark
it seen and move its cursor, so a crash neither loses nor duplicates a message.
Auto-replies and bounces are recognised and not routed, and mail from our own address
is never taken in (no loops). Replies carry the contact's token in their Reply-To
(`support+c<token>@...`) and subject, so a reply from a client that drops the threading
headers still joins its conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adapters.email.attachments import keep_attachments
from adapters.email.compose import compose_reply, compose_transcript, new_message_id
from adapters.email.conversation_threads import plus_address, read_token, thread_token
from adapters.email.imap_cursor import CursorStore, RetryLater
from adapters.email.imap_source import ImapSettings, ImapSource, StateListener
from adapters.email.parse import EmailWithoutSender, parse_email
from adapters.email.smtp_sender import SmtpSender, SmtpSettings
from adapters.messaging.model import MessageSink, OutboundMessage, SendResult
from routing.outbox import store_unavailable

log = logging.getLogger(__name__)

CHANNEL = "email"
# Past this a mail is not parsed whole (the parser's work grows with its parts): its
# headers make the contact and the agent is told to read it in the mailbox.
MAX_RAW_BYTES = 30 * 1024 * 1024


@dataclass(frozen=True)
class EmailSettings:
    """What the channel needs from `channels.email` in config."""

    imap: ImapSettings
    smtp: SmtpSettings
    max_body_bytes: int
    max_attachment_bytes: int
    attachments_dir: Path
    from_name: str | None = None
    smtp_implicit_tls: bool = False  # TLS from the first byte (port 465)


def _headers_only(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw[: end if 0 <= end < 1_000_000 else 64_000]
    note = b"\r\n\r\n(This message is too large to show here: read it in the mailbox.)\r\n"
    return head + note


class EmailChannel:
    """One support mailbox: IMAP in, SMTP out (the channel's `MessageSender`)."""

    def __init__(
        self,
        settings: EmailSettings,
        sink: MessageSink,
        cursors: CursorStore,
        secret: bytes,
        *,
        on_state: StateListener | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.secret = secret
        self.clock = clock
        self.address = settings.smtp.from_address.strip().lower()
        self.domain = self.address.rpartition("@")[2] or "localhost"
        self.source = ImapSource(settings.imap, self.handle, cursors, on_state=on_state)
        self.smtp = SmtpSender(settings.smtp, implicit_tls=settings.smtp_implicit_tls)
        self.sender = self
        self.automatic = 0  # auto-replies and bounces seen (not routed)
        self.own = 0  # our own mail seen in the mailbox (not taken in)
        self._task: asyncio.Task[None] | None = None

    # --- in ---------------------------------------------------------------------------

    async def handle(self, uid: int, raw: bytes) -> None:
        """One message from the mailbox; returns once it is stored (or deliberately not)."""
        if len(raw) > MAX_RAW_BYTES:
            log.warning("mail uid %s is %d bytes: taken in by its headers only", uid, len(raw))
            raw = _headers_only(raw)
        parsed = await asyncio.to_thread(
            parse_email,
            raw,
            max_body_bytes=self.settings.max_body_bytes,
            max_attachment_bytes=self.settings.max_attachment_bytes,
            mailbox_address=self.address,
        )
        if parsed.sender == self.address:
            self.own += 1
            log.info("mail %s is from our own address: not taken in", parsed.provider_id)
            return
        if parsed.automatic:
            self.automatic += 1
            log.info("mail %s not routed: %s", parsed.provider_id, parsed.automatic)
            return
        kept = await asyncio.to_thread(
            keep_attachments, self.settings.attachments_dir, parsed.provider_id, parsed.attachments
        )
        try:
            message = parsed.to_inbound(self.clock(), attachments=kept)
        except EmailWithoutSender:
            log.warning("mail %s has no sender address: nobody to answer, not routed", uid)
            return
        try:
            await self.sink.receive(message)
        except Exception as exc:
            if store_unavailable(exc):
                # The store's outage, not the message's fault: tried again later, and
                # never counted towards giving the message up as poison.
                raise RetryLater(str(exc)) from exc
            raise

    def read_token(self, token: str) -> int | None:
        """The contact a reply's token names; None for a forged or broken one."""
        return read_token(token, self.secret)

    # --- out --------------------------------------------------------------------------

    def new_provider_id(self) -> str:
        """The Message-ID of a reply, made before it is stored (threading needs it)."""
        return new_message_id(self.domain)

    async def send(self, message: OutboundMessage) -> SendResult:
        token = thread_token(message.interaction_id, self.secret)
        mail = compose_reply(
            message,
            from_address=self.settings.smtp.from_address,
            from_name=message.sender_name or self.settings.from_name,
            reply_to=plus_address(self.settings.smtp.from_address, token),
            domain=self.domain,
            now=self.clock(),
            thread_token=token,
        )
        return SendResult(await self.smtp.send(mail))

    async def send_transcript(self, interaction_id: int, to: str, body: str) -> str:
        """Mail a chat's transcript to the visitor who asked for it; its Message-ID."""
        out = OutboundMessage(
            message_id=0, interaction_id=interaction_id, channel=CHANNEL, recipient=to, body=body
        )
        mail = compose_transcript(
            out,
            from_address=self.settings.smtp.from_address,
            from_name=self.settings.from_name,
            reply_to=None,
            domain=self.domain,
            now=self.clock(),
        )
        return await self.smtp.send(mail)

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Read the mailbox from now on (reconnecting by itself)."""
        if self._task is None:
            self._task = asyncio.create_task(self.source.run(), name="email-imap")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
