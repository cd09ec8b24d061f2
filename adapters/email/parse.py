"""Raw RFC 5322 mail to the fields of an `InboundMessage`, pure; never raises on any bytes.

The stdlib parser gives the MIME tree, under `policy.compat32`, and every header is read
with the compat32 tools (`decode_header`, `getaddresses`) and our own charset fallbacks.
Not `policy.default`: its header classes raise on some hostile input, decode a `gb2312`
encoded word holding GBK characters into surrogates, and re-parse a part's Content-Type
on every look-up, so a 150 kB mail of 3 000 tiny parts took 3 s to parse (0.15 s under
compat32) and a few MB of them would take minutes. Nothing from the mail reaches the
result with control characters or lone surrogates in it.

Body: the text/plain alternative when it says something, else the HTML one reduced to
text; parts of multipart/mixed follow each other. Attachments carry their bytes, or None
with the reason when they are over the limit (`keep_attachments` writes them to disk).
Parsing is CPU work (BeautifulSoup on a large HTML body takes seconds): the transport
runs it in a worker thread.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from adapters.email.auto_reply import automatic_reason
from adapters.email.charsets import clean_line, clean_text, decode_words, repair_surrogates
from adapters.email.conversation_threads import find_token
from adapters.email.mime_walk import AttachmentPart, walk_message
from adapters.messaging.model import Attachment, InboundMessage

CHANNEL = "email"
TRUNCATED_MARKER = "\n\n[message truncated]"
MAX_ID_CHARS = 250  # longer ids (or ones with blanks) are stored as their hash
MAX_HEADER_FIELDS = 500  # a header bomb is read this far
_RECIPIENT_HEADERS = ("to", "cc", "delivered-to", "x-original-to", "envelope-to")
_MSGID_RE = re.compile(r"<([^<>\s]+)>")
_UNFOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_BLANKS_RE = re.compile(r"\s+")


class EmailWithoutSender(ValueError):
    """The mail names no sender address (no From, no Sender): nobody to answer."""


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    """What one raw mail says, ready to become an `InboundMessage`."""

    provider_id: str  # Message-ID without <>, or "sha256:<hex of the raw bytes>"
    sender: str  # lower-cased address from From (Sender when From has none); "" if none
    sender_name: str | None
    recipient: str  # our mailbox it came to, without any +tag
    subject: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    thread_token: str | None  # a token's shape only: check it with read_token
    body: str
    body_truncated: bool
    attachments: tuple[AttachmentPart, ...]
    date: float | None  # the Date header, epoch seconds
    automatic: str | None  # why no person wrote it (auto-reply, bounce, list), or None

    @property
    def thread_refs(self) -> tuple[str, ...]:
        """Ids it answers, most specific first: In-Reply-To, then References newest first."""
        refs = dict.fromkeys((*self.in_reply_to, *reversed(self.references)))
        refs.pop(self.provider_id, None)
        return tuple(refs)

    def to_inbound(
        self, received_at: float, *, attachments: Sequence[Attachment] | None = None
    ) -> InboundMessage:
        """The message for the intake; pass what `keep_attachments` returned as attachments.

        Without them, attachments are listed by metadata only (no ref). Raises
        EmailWithoutSender when there is no sender address.
        """
        if not self.sender:
            raise EmailWithoutSender(f"email {self.provider_id} has no sender address")
        if attachments is None:
            attachments = [part.metadata() for part in self.attachments]
        return InboundMessage(
            channel=CHANNEL,
            provider_id=self.provider_id,
            sender=self.sender,
            body=self.body,
            received_at=received_at,
            sender_name=self.sender_name,
            subject=self.subject,
            thread_refs=self.thread_refs,
            thread_token=self.thread_token,
            attachments=tuple(attachments),
            recipient=self.recipient,
        )


def parse_email(
    raw: bytes, *, max_body_bytes: int, max_attachment_bytes: int, mailbox_address: str
) -> ParsedEmail:
    """Parse one raw mail; malformed input gives a best-effort result, never an error."""
    if max_body_bytes < len(TRUNCATED_MARKER) or max_attachment_bytes < 0:
        raise ValueError("max_body_bytes or max_attachment_bytes is too small")
    mailbox = base_address(mailbox_address)
    if "@" not in mailbox:
        raise ValueError(f"mailbox_address is not an address: {mailbox_address!r}")
    message = _parse_tree(raw)
    walked = walk_message(
        message, max_attachment_bytes=max_attachment_bytes, max_body_bytes=max_body_bytes
    )
    headers = header_texts(message, walked.charset)
    senders = addresses(message, "from", walked.charset) or addresses(
        message, "sender", walked.charset
    )
    sender_name, sender = senders[0] if senders else ("", "")
    sender = sender.lower()
    subject = headers.get("subject") or None  # "Subject:" with nothing is no subject
    ours = [
        address
        for name in _RECIPIENT_HEADERS
        for _, address in addresses(message, name, walked.charset)
        if base_address(address) == mailbox
    ]
    body, truncated = _truncate(walked.body, max_body_bytes)
    automatic = automatic_reason(headers)
    if automatic is None and sender and base_address(sender) == mailbox:
        automatic = "loop (sent from our own mailbox)"
    return ParsedEmail(
        provider_id=_provider_id(headers.get("message-id"), raw),
        sender=sender,
        sender_name=sender_name or None,
        recipient=mailbox,
        subject=subject,
        in_reply_to=message_ids(headers.get("in-reply-to")),
        references=message_ids(headers.get("references")),
        thread_token=find_token(ours, subject),
        body=body,
        body_truncated=truncated or walked.truncated,
        attachments=walked.attachments,
        date=_date(headers.get("date")),
        automatic=automatic,
    )


def _parse_tree(raw: bytes) -> Message:
    """The MIME tree; headers only when the body defeats the parser (deep nesting)."""
    parser = BytesParser(policy=policy.compat32)
    try:
        return parser.parsebytes(raw)
    # The stdlib parser is not hardened: RecursionError and stray IndexErrors on hostile
    # input are its bugs, and a mail must still be read as far as it can be.
    except Exception:
        pass
    try:
        return parser.parsebytes(raw, headersonly=True)
    except Exception:
        return Message(policy=policy.compat32)


def _raw_values(message: Message, name: str) -> Iterable[str]:
    for index, (key, value) in enumerate(message.raw_items()):
        if index >= MAX_HEADER_FIELDS:
            return
        if key.lower() == name:
            yield _UNFOLD_RE.sub("", str(value))


def header_texts(message: Message, charset_hint: str | None) -> dict[str, str]:
    """The first value of every header field, decoded, by lower-cased name."""
    texts: dict[str, str] = {}
    for index, (key, value) in enumerate(message.raw_items()):
        if index >= MAX_HEADER_FIELDS:
            break
        name = clean_line(str(key)).lower()
        if name and name not in texts:
            texts[name] = decode_words(_UNFOLD_RE.sub("", str(value)), charset_hint)
    return texts


def addresses(message: Message, name: str, charset_hint: str | None) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header; addresses stripped, not lowered."""
    found: list[tuple[str, str]] = []
    for raw in _raw_values(message, name):
        try:
            pairs = getaddresses([raw])
        except Exception:  # the compat32 address parser has failed on odd input before
            continue
        for display, address in pairs:
            address = clean_line(repair_surrogates(address, charset_hint)).replace(" ", "")
            if address:
                found.append((decode_words(display, charset_hint), address))
    return found


def base_address(address: str) -> str:
    """The mailbox an address reaches, lower-cased, without a +tag."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at:
        return domain
    return f"{local.split('+', 1)[0]}@{domain}"


def message_ids(value: str | None) -> tuple[str, ...]:
    """The ids in a Message-ID / In-Reply-To / References value, normalised, in order."""
    if not value:
        return ()
    found = _MSGID_RE.findall(value)
    if not found:
        bare = value.strip().strip("<>")
        found = [bare] if bare and not _BLANKS_RE.search(bare) else []
    return tuple(dict.fromkeys(normal_id(item) for item in found))


def normal_id(message_id: str) -> str:
    """A message id as stored: without <>, blanks and controls; long ones as their hash."""
    text = _BLANKS_RE.sub("", clean_line(message_id)).strip("<>")
    if len(text) <= MAX_ID_CHARS:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _provider_id(message_id: str | None, raw: bytes) -> str:
    ids = message_ids(message_id)
    if ids and ids[0]:
        return ids[0]
    # No Message-ID: the same bytes fetched again must get the same id (idempotent store).
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:  # "-0000": UTC, time zone unknown (RFC 5322 3.3)
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    except (ValueError, TypeError, IndexError, OverflowError):
        return None


def _truncate(body: str, max_bytes: int) -> tuple[str, bool]:
    """The body within max_bytes of UTF-8, cut at a character boundary, with a marker."""
    body = clean_text(body).strip("\n")
    encoded = body.encode("utf-8")
    if len(encoded) <= max_bytes:
        return body, False
    room = max_bytes - len(TRUNCATED_MARKER.encode("utf-8"))
    return encoded[:room].decode("utf-8", "ignore").rstrip() + TRUNCATED_MARKER, True
