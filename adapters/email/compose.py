"""Agent replies and chat transcripts as RFC 5322 messages for SMTP, pure (time given).

Threading headers follow RFC 5322 3.6.4: In-Reply-To names the message answered;
References is the parent's References plus the parent, bounded to MAX_REFERENCES ids by
dropping from the middle (the first id, the thread's root, and the newest ones stay),
as news and mail clients trim it. The Message-ID is made before sending
(`new_message_id`) so the row holds it first and a reply to it finds its conversation.

Agent replies are written by people: no Auto-Submitted, so the customer's vacation
responder answers them normally. A transcript is machine-made: `Auto-Submitted:
auto-generated` (RFC 3834), so responders stay quiet.

Header injection is impossible: a CR, LF or NUL in an address or display name is refused
(UnsafeHeader); a subject is reduced to one line. The stdlib refuses such values too,
but not on every path of every Python version, so this module does not rely on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email import errors, policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from adapters.email.charsets import clean_text
from adapters.email.conversation_threads import clean_subject, reply_subject, tag_subject
from adapters.messaging.model import OutboundMessage

MAX_REFERENCES = 10
TRANSCRIPT_SUBJECT = "Chat transcript"
# SMTP line ends; a 7-bit transfer encoding (quoted-printable or base64, whichever is
# shorter) so any relay takes the body, 8BITMIME or not.
_POLICY = policy.SMTP.clone(cte_type="7bit")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_MSGID_RE = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_UNSAFE = ("\r", "\n", "\0")


class UnsafeHeader(ValueError):
    """A value cannot go into a mail header safely (CR/LF/NUL, not an address, bad id)."""


def new_message_id(domain: str) -> str:
    """A fresh Message-ID, without <>, for a mail about to be stored and then sent."""
    if not _DOMAIN_RE.fullmatch(domain):
        raise UnsafeHeader(f"not a domain for Message-IDs: {domain!r}")
    return make_msgid(domain=domain)[1:-1]


def compose_reply(
    out: OutboundMessage,
    *,
    from_address: str,
    from_name: str | None,
    reply_to: str | None,
    domain: str,
    now: float,
    thread_token: str | None = None,
) -> EmailMessage:
    """An agent's message as a mail: a reply (`Re:`) when it answers one, else a new mail."""
    answers = bool(out.in_reply_to or out.references)
    subject = (
        reply_subject(out.subject, thread_token)
        if answers
        else tag_subject(out.subject, thread_token)
    )
    return _message(out, from_address, from_name, reply_to, domain, now, subject)


def compose_transcript(
    out: OutboundMessage,
    *,
    from_address: str,
    from_name: str | None,
    reply_to: str | None,
    domain: str,
    now: float,
    thread_token: str | None = None,
) -> EmailMessage:
    """A chat transcript the daemon mails to the customer (`Auto-Submitted: auto-generated`)."""
    subject = tag_subject(out.subject or TRANSCRIPT_SUBJECT, thread_token)
    message = _message(out, from_address, from_name, reply_to, domain, now, subject)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"  # Exchange's own way to say the same
    return message


def reference_chain(references: Iterable[str], in_reply_to: str | None) -> tuple[str, ...]:
    """The References ids of a reply: the parent's chain plus the parent, bounded."""
    chain = [ref for ref in references if _MSGID_RE.fullmatch(ref)]
    if in_reply_to and _MSGID_RE.fullmatch(in_reply_to):
        chain.append(in_reply_to)
    unique = list(dict.fromkeys(reversed(chain)))[::-1]  # each once, at its newest place
    if len(unique) > MAX_REFERENCES:
        unique = unique[:1] + unique[-(MAX_REFERENCES - 1) :]
    return tuple(unique)


def _message(
    out: OutboundMessage,
    from_address: str,
    from_name: str | None,
    reply_to: str | None,
    domain: str,
    now: float,
    subject: str,
) -> EmailMessage:
    if out.channel != "email":
        raise ValueError(f"not an email message: channel {out.channel!r}")
    message_id = out.own_provider_id or new_message_id(domain)
    if not _MSGID_RE.fullmatch(message_id):
        raise UnsafeHeader(f"not a Message-ID: {message_id!r}")
    message = EmailMessage(policy=_POLICY)
    message["From"] = _address(from_address, from_name)
    message["To"] = _address(out.recipient, None)
    if reply_to:
        message["Reply-To"] = _address(reply_to, None)
    message["Subject"] = clean_subject(subject)
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = f"<{message_id}>"
    if out.in_reply_to and _MSGID_RE.fullmatch(out.in_reply_to):
        message["In-Reply-To"] = f"<{out.in_reply_to}>"
    chain = reference_chain(out.references, out.in_reply_to)
    if chain:
        message["References"] = " ".join(f"<{ref}>" for ref in chain)
    body = clean_text(out.body).rstrip("\n") + "\n"
    message.set_content(body, subtype="plain", charset="utf-8")
    return message


def _address(address: str, name: str | None) -> Address:
    """One mailbox for a header; refuses anything that could break out of the header."""
    for value in (address, name or ""):
        if any(ch in value for ch in _UNSAFE):
            raise UnsafeHeader(f"line break or NUL in a mail address or name: {value!r}")
    if not address.isascii():
        raise UnsafeHeader(f"non-ASCII address (needs SMTPUTF8): {address!r}")
    try:
        parsed = Address(display_name=name or "", addr_spec=address.strip())
    except (ValueError, IndexError, errors.HeaderParseError) as error:
        raise UnsafeHeader(f"not a mail address: {address!r}") from error
    if not parsed.username or not parsed.domain:
        raise UnsafeHeader(f"not a mail address: {address!r}")
    return parsed
