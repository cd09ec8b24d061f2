"""Twilio's webhook form fields as our vocabulary (pure): an inbound SMS/MMS becomes an
`InboundMessage` (with its opt-out keyword, if it is one), a status callback a
`StatusUpdate`.

Fields: https://www.twilio.com/docs/messaging/guides/webhook-request. Twilio sends
numbers in E.164, so a number that does not read as one is refused rather than guessed.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from adapters.messaging.model import Attachment, InboundMessage
from adapters.sms import CHANNEL
from adapters.sms.opt_out import KeywordMatch, match_keyword
from crm_store.errors import InvalidData
from crm_store.phones import normalize_phone

# Twilio's resource ids: two letters and 32 hex digits (SM..., MM... for an MMS).
_SID = re.compile(r"[A-Z]{2}[0-9a-f]{32}")
_ERROR_CODE = re.compile(r"[0-9]{1,10}")
# Twilio writes SMS numbers in E.164; anything else ("whatsapp:+44...", which the phone
# library would read past) is another channel's address.
_E164 = re.compile(r"\+[1-9][0-9]{2,14}")
MAX_MEDIA = 10  # Twilio's own limit per message
MAX_URL_CHARS = 2048
MAX_ADDRESS_CHARS = 64  # what is kept of To
MAX_CONTENT_TYPE_CHARS = 127
# "Unknown region": only numbers written with their country code read as phone numbers.
_NO_REGION = "ZZ"
# Kept in a body: line breaks and tabs; every other control or format character (NUL,
# bidi overrides, lone surrogates) is dropped, so what is stored shows as it was meant.
_KEPT_CONTROLS = frozenset("\n\t")
# Python's own table only, not the host's /etc/mime.types: the same name on every machine.
_MIME_TYPES = mimetypes.MimeTypes()

# Every status Twilio reports for an outbound message.
STATUSES = frozenset(
    {
        "accepted",
        "scheduled",
        "canceled",
        "queued",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "read",
        "partially_delivered",
    }
)


class WebhookFormError(ValueError):
    """A webhook's fields are missing or malformed; the message says which."""


@dataclass(frozen=True, slots=True)
class InboundSms:
    """One inbound SMS or MMS, with the keyword it is when it is one (STOP, START, HELP)."""

    message: InboundMessage
    keyword: KeywordMatch | None = None


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """What a status callback says about a message we sent."""

    provider_id: str  # the MessageSid the send returned
    status: str  # one of STATUSES
    error: str | None = None  # Twilio's ErrorCode ("30003") when it failed


class StatusSink(Protocol):
    """Where delivery statuses go (the CRM store's message rows)."""

    async def message_status(
        self, provider_id: str, status: str, error: str | None, at: float
    ) -> None:
        """Record `status` for the message Twilio knows as `provider_id`."""
        ...


def parse_inbound(
    fields: Mapping[str, str], *, max_body_chars: int, now: float, queue: str | None = None
) -> InboundSms:
    """An incoming-message webhook's fields as an `InboundSms` (routed to `queue`);
    WebhookFormError if bad."""
    sid = _sid(fields, "MessageSid")
    sender = _phone(_required(fields, "From"), "From")
    recipient = fields.get("To", "").strip()[:MAX_ADDRESS_CHARS] or None
    body = _readable(fields.get("Body", ""))
    if len(body) > max_body_chars:
        raise WebhookFormError(f"Body: {len(body)} characters, over the {max_body_chars} allowed")
    attachments = _media(fields)
    if not body and not attachments:
        raise WebhookFormError("Body: empty, and no media")
    message = InboundMessage(
        channel=CHANNEL,
        provider_id=sid,
        sender=sender,
        body=body,
        received_at=now,
        attachments=attachments,
        queue=queue,
        recipient=recipient,
    )
    return InboundSms(message, match_keyword(body, fields.get("OptOutType")))


def parse_status(fields: Mapping[str, str]) -> StatusUpdate:
    """A status callback's fields as a `StatusUpdate`; WebhookFormError if bad."""
    sid = _sid(fields, "MessageSid")
    status = _required(fields, "MessageStatus").strip().lower()
    if status not in STATUSES:
        raise WebhookFormError(f"MessageStatus: unknown status {status[:40]!r}")
    code = fields.get("ErrorCode", "").strip()
    if code and not _ERROR_CODE.fullmatch(code):
        raise WebhookFormError(f"ErrorCode: expected digits, got {code[:40]!r}")
    # Twilio sends ErrorCode 0 (or none) on success.
    return StatusUpdate(sid, status, code if code.strip("0") else None)


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name, "")
    if not value.strip():
        raise WebhookFormError(f"{name}: missing")
    return value


def _sid(fields: Mapping[str, str], name: str) -> str:
    value = _required(fields, name).strip()
    if not _SID.fullmatch(value):
        raise WebhookFormError(f"{name}: not a Twilio id: {value[:40]!r}")
    return value


def _phone(raw: str, name: str) -> str:
    text = raw.strip()
    if not _E164.fullmatch(text):
        raise WebhookFormError(f"{name}: not an E.164 phone number: {text[:40]!r}")
    try:
        return normalize_phone(text, _NO_REGION)
    except InvalidData as exc:
        raise WebhookFormError(f"{name}: {exc.message}") from None


def _readable(text: str) -> str:
    return "".join(ch for ch in text if ch in _KEPT_CONTROLS or unicodedata.category(ch)[0] != "C")


def _media(fields: Mapping[str, str]) -> tuple[Attachment, ...]:
    raw = fields.get("NumMedia", "0").strip() or "0"
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_MEDIA:
        raise WebhookFormError(f"NumMedia: expected 0..{MAX_MEDIA}, got {raw[:20]!r}")
    return tuple(_attachment(fields, n) for n in range(int(raw)))


def _attachment(fields: Mapping[str, str], n: int) -> Attachment:
    url = _required(fields, f"MediaUrl{n}").strip()
    parts = urlsplit(url)
    if len(url) > MAX_URL_CHARS or parts.scheme not in ("https", "http") or not parts.netloc:
        raise WebhookFormError(f"MediaUrl{n}: not an http(s) URL")
    content_type = fields.get(f"MediaContentType{n}", "").strip().lower()
    if not content_type or len(content_type) > MAX_CONTENT_TYPE_CHARS or "/" not in content_type:
        content_type = "application/octet-stream"
    extension = _MIME_TYPES.guess_extension(content_type, strict=False) or ""
    # Twilio's media URLs end in the media's own id (ME...): a stable, readable name.
    stem = parts.path.rstrip("/").rsplit("/", 1)[-1][:64] or f"media-{n}"
    return Attachment(filename=f"{stem}{extension}", content_type=content_type, size=0, ref=url)
