"""A mail's MIME tree walked into one body text and its attachments, pure; never raises.

- multipart/alternative: the text/plain part when it has words, else the richest other
  (HTML, or a multipart/related holding it); the others still give up their attachments.
- multipart/related: the root (first) part is body, the rest are its resources.
- other multiparts (mixed, report, signed, ...): every part in order, so a body split
  around an inline image reads as one text.
- an embedded message (message/rfc822, a bounce's delivery-status) is an attachment,
  never walked into: the quoted original of a bounce must not pass for its body.
Every stdlib accessor is guarded: on hostile input they raise, and the walk goes on.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass, field
from email import policy
from email.message import Message

from adapters.email.charsets import clean_line, decode_text, decode_words, repair_surrogates
from adapters.email.html_text import html_to_text
from adapters.messaging.model import Attachment

MAX_PARTS = 500  # a mail of 100 000 parts is read this far
MAX_DEPTH = 30
MAX_HTML_CHARS = 1_000_000  # BeautifulSoup parses about 1 MB/s: bound the time per mail
_BODY_TYPES = frozenset({"text/plain", "text/html"})
_CONTENT_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_MESSAGE_NAMES = {
    "message/rfc822": "message.eml",
    "message/global": "message.eml",
    "message/delivery-status": "delivery-status.txt",
    "message/disposition-notification": "disposition-notification.txt",
}
_mime_types = mimetypes.MimeTypes()  # its built-in table only: the same on every host


@dataclass(frozen=True, slots=True)
class AttachmentPart:
    """An attachment as parsed: its metadata and bytes (None when not kept, with why)."""

    filename: str  # as the sender named it (decoded): not safe as a path, see attachments.py
    content_type: str
    size: int  # decoded bytes
    content: bytes | None
    dropped: str | None = None

    def metadata(self) -> Attachment:
        """The model's Attachment, without a ref (nothing written yet)."""
        return Attachment(self.filename, self.content_type, self.size, None, self.dropped)


@dataclass(frozen=True, slots=True)
class WalkedMessage:
    """The body text and attachments of one mail."""

    body: str
    attachments: tuple[AttachmentPart, ...]
    charset: str | None  # the first declared text charset: a hint for raw 8-bit headers
    truncated: bool  # HTML cut before conversion, or parts past MAX_PARTS left unread


def walk_message(
    message: Message, *, max_attachment_bytes: int, max_body_bytes: int
) -> WalkedMessage:
    """Body and attachments of a parsed mail (the HTML read is bounded by max_body_bytes)."""
    walk = _Walk(max_attachment_bytes, min(MAX_HTML_CHARS, max(4 * max_body_bytes, 65_536)))
    walk.visit(message, depth=0, want_body=True)
    body = "\n\n".join(text.strip("\r\n") for text in walk.bodies if text.strip())
    return WalkedMessage(body, tuple(walk.attachments), walk.charset, walk.truncated)


@dataclass
class _Walk:
    max_attachment_bytes: int
    html_chars: int  # how much HTML may still be read, over all parts
    bodies: list[str] = field(default_factory=list)
    attachments: list[AttachmentPart] = field(default_factory=list)
    charset: str | None = None
    truncated: bool = False
    parts: int = 0

    def visit(self, part: Message, *, depth: int, want_body: bool) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS or depth > MAX_DEPTH:
            self.truncated = True
            return
        content_type = _content_type(part)
        children = _children(part)
        if children is None:
            self._leaf(part, content_type, want_body)
        elif content_type.startswith("multipart/"):
            chosen = self._chosen(children) if content_type == "multipart/alternative" else -1
            for index, child in enumerate(children):
                if content_type == "multipart/alternative":
                    child_wants = want_body and index == chosen
                elif content_type == "multipart/related":
                    child_wants = want_body and index == 0
                else:
                    child_wants = want_body
                self.visit(child, depth=depth + 1, want_body=child_wants)
        else:
            self._embedded_message(part, content_type, children)

    def _chosen(self, children: list[Message]) -> int:
        """Which alternative is the body: plain text with words, else the last rich one."""
        richest = 0
        for index, child in enumerate(children):
            content_type = _content_type(child)
            if content_type == "text/plain" and not self._is_attachment(child):
                if self._text(child, content_type).strip():
                    return index
            elif content_type == "text/html" or content_type.startswith("multipart/"):
                richest = index
        return richest

    def _is_attachment(self, part: Message) -> bool:
        return self._filename(part) is not None or _disposition(part) == "attachment"

    def _leaf(self, part: Message, content_type: str, want_body: bool) -> None:
        if content_type.startswith("multipart/"):
            content_type = "text/plain"  # a multipart without a boundary: its text is all
        if content_type.startswith("text/") and self.charset is None:
            self.charset = _charset(part)
        if content_type in _BODY_TYPES and not self._is_attachment(part):
            if want_body:
                self.bodies.append(self._text(part, content_type))
            return  # an alternative rendering of the body: nothing to keep
        self._attach(self._filename(part), content_type, _payload_bytes(part))

    def _text(self, part: Message, content_type: str) -> str:
        text = decode_text(_payload_bytes(part), _charset(part))
        if content_type != "text/html":
            return text
        if len(text) > self.html_chars:
            text = text[: self.html_chars]
            self.truncated = True
        self.html_chars -= len(text)  # one budget for all parts: 500 HTML parts, one bound
        return html_to_text(text) if text else ""

    def _embedded_message(self, part: Message, content_type: str, inner: list[Message]) -> None:
        try:
            # compat32 writes the stored header lines back as they came, without refolding.
            data: bytes | None = b"".join(m.as_bytes(policy=policy.compat32) for m in inner)
        except Exception:  # the generator can fail on what the parser let through
            data = None
        name = self._filename(part) or _MESSAGE_NAMES.get(content_type)
        self._attach(name, content_type, data)

    def _attach(self, filename: str | None, content_type: str, data: bytes | None) -> None:
        name = filename or generated_filename(len(self.attachments) + 1, content_type)
        if data is None:
            self.attachments.append(AttachmentPart(name, content_type, 0, None, "unreadable"))
        elif len(data) > self.max_attachment_bytes:
            dropped = f"over {human_size(self.max_attachment_bytes)}"
            self.attachments.append(AttachmentPart(name, content_type, len(data), None, dropped))
        else:
            self.attachments.append(AttachmentPart(name, content_type, len(data), data))

    def _filename(self, part: Message) -> str | None:
        try:
            name = part.get_filename()
        except Exception:  # RFC 2231 parameters the stdlib cannot take apart
            return None
        if not name:
            return None
        name = str(name)
        if "=?" in name:  # Outlook writes RFC 2047 words into name="..."
            name = decode_words(name, self.charset)
        return clean_line(repair_surrogates(name, self.charset)) or None


def _children(part: Message) -> list[Message] | None:
    """The sub-parts of a multipart or message/* part; None for a leaf."""
    try:
        payload = part.get_payload()
    except Exception:
        return None
    if isinstance(payload, list):
        return [child for child in payload if isinstance(child, Message)]
    return None


def _content_type(part: Message) -> str:
    try:
        content_type = part.get_content_type().lower()
    except Exception:
        return "application/octet-stream"
    return content_type if _CONTENT_TYPE_RE.fullmatch(content_type) else "application/octet-stream"


def _charset(part: Message) -> str | None:
    try:
        charset = part.get_content_charset()
    except Exception:
        return None
    return str(charset) if charset else None


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:
        return None


def _payload_bytes(part: Message) -> bytes:
    """The decoded content (base64, quoted-printable) of a leaf, or its raw bytes."""
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    try:
        raw = part.get_payload()
    except Exception:
        return b""
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def generated_filename(index: int, content_type: str) -> str:
    """A name for an attachment that came without one (`attachment-2.png`)."""
    return f"attachment-{index}{_mime_types.guess_extension(content_type) or '.bin'}"


def human_size(size: int) -> str:
    """`10 MB`, `512 kB`, `900 bytes` (binary multiples, as mail clients show them)."""
    if size >= 1024**2:
        return f"{size / 1024**2:.3g} MB"
    if size >= 1024:
        return f"{size / 1024:.3g} kB"
    return f"{size} bytes"
