"""Conversation threads over email, pure: thread tokens and reply subjects.

Replies join their conversation by In-Reply-To / References first; a client that drops
those headers still keeps the address it replied to and, mostly, the subject. So every
mail the daemon sends carries a per-interaction token twice: plus-addressed in Reply-To
(`support+c<token>@example.com`) and in the subject (`[#<token>]`).

A token is the interaction id in base32 digits followed by 8 digits of an HMAC of it
(40 bits): it reads back without a lookup, and a customer who edits the digits to reach
someone else's conversation is refused. Tokens are lower case because mail systems fold
the case of local parts; they are read case-insensitively.

(Named `conversation_threads`, not `threading`, so nothing can shadow the stdlib module.)
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case
_DIGIT = {c: i for i, c in enumerate(_ALPHABET)}
MAC_DIGITS = 8  # 40 bits: far beyond what anyone can guess by sending mail
MAX_ID_DIGITS = 13  # 65 bits: any positive 64-bit id
MIN_SECRET_BYTES = 16
_TOKEN = rf"[a-z2-7]{{{MAC_DIGITS + 1},{MAC_DIGITS + MAX_ID_DIGITS}}}"
_SUBJECT_TOKEN_RE = re.compile(rf"\[#({_TOKEN})\]", re.IGNORECASE)
_ADDRESS_TOKEN_RE = re.compile(rf"\+c({_TOKEN})@", re.IGNORECASE)
_WHITESPACE_RE = re.compile(r"\s+")
# Reply and forward prefixes as mail clients write them, in the languages our customers
# use: `Re[2]:`, `AW:` (German), `SV:`/`VS:` (Nordic), `RV:`/`ENC:` (Spanish, Portuguese),
# `TR:` (French), `RIF:` (Italian), `回复:` and friends (Chinese, Japanese). Colons may be
# full-width. Bare one-letter ones (Italian `R:`/`I:`) are left alone: too easily real text.
_PREFIX_RE = re.compile(
    r"""^\s*(?:
        (?:re|aw|sv|vs|antw|antwort|odp|ynt|res|rif|fwd?|wg|tr|enc|rv|vl)
        (?:\s*[\[(]\d{1,4}[\])])?\s*[:\uff1a]
      | (?:回复|回覆|答复|答覆|转发|轉寄|轉發|返信|転送)\s*[:\uff1a]?
    )\s*""",
    re.IGNORECASE | re.VERBOSE,
)


def _mac_digits(interaction_id: int, secret: bytes) -> str:
    digest = hmac.new(secret, b"cc-email-thread:%d" % interaction_id, hashlib.sha256).digest()
    bits = int.from_bytes(digest[:5], "big")  # 40 bits = 8 base32 digits
    return "".join(_ALPHABET[(bits >> shift) & 31] for shift in range(35, -1, -5))


def _check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"thread token secret must be at least {MIN_SECRET_BYTES} bytes")


def thread_token(interaction_id: int, secret: bytes) -> str:
    """The token of an interaction's conversation (`dbmfa3k2qz7x`: id digits + MAC)."""
    _check_secret(secret)
    if interaction_id < 1 or interaction_id >= 32**MAX_ID_DIGITS:
        raise ValueError(f"interaction id out of range: {interaction_id}")
    digits = ""
    rest = interaction_id
    while rest:
        rest, digit = divmod(rest, 32)
        digits = _ALPHABET[digit] + digits
    return digits + _mac_digits(interaction_id, secret)


def read_token(token: str, secret: bytes) -> int | None:
    """The interaction id a token stands for, or None when it is malformed or forged."""
    _check_secret(secret)
    token = token.lower()
    if not re.fullmatch(_TOKEN, token):
        return None
    id_digits, mac = token[:-MAC_DIGITS], token[-MAC_DIGITS:]
    if id_digits[0] == _ALPHABET[0]:
        return None  # a leading zero digit: not a token we wrote (one id, one spelling)
    interaction_id = 0
    for digit in id_digits:
        interaction_id = interaction_id * 32 + _DIGIT[digit]
    if not hmac.compare_digest(mac, _mac_digits(interaction_id, secret)):
        return None
    return interaction_id


def plus_address(mailbox: str, token: str) -> str:
    """The reply-to address carrying a token: `support@x` -> `support+c<token>@x`."""
    local, at, domain = mailbox.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an email address: {mailbox!r}")
    local = local.split("+", 1)[0]  # the mailbox's own tag, if any, gives way
    return f"{local}+c{token}@{domain}"


def find_token(to_addresses: Iterable[str], subject: str | None) -> str | None:
    """A token from a plus-address among the recipients, else from the subject; unchecked.

    The caller checks it with `read_token`; a candidate only has the right shape.
    """
    for address in to_addresses:
        found = _ADDRESS_TOKEN_RE.search(address)
        if found:
            return found.group(1).lower()
    if subject:
        found = _SUBJECT_TOKEN_RE.search(subject)
        if found:
            return found.group(1).lower()
    return None


def clean_subject(subject: str | None) -> str:
    """A subject on one line: CR, LF, tabs and runs of blanks become one space."""
    return _WHITESPACE_RE.sub(" ", subject or "").strip()


def tag_subject(subject: str | None, token: str | None) -> str:
    """The subject with its thread token once, at the end (`Order 5 [#token]`).

    With no token given, the first token already in the subject is kept.
    """
    text = clean_subject(subject)
    token = token or _token_of(text)
    text = clean_subject(_SUBJECT_TOKEN_RE.sub(" ", text))
    if token is None:
        return text
    return f"{text} [#{token}]" if text else f"[#{token}]"


def strip_reply_prefixes(subject: str | None) -> str:
    """The subject without any leading `Re:`, `RE: Fwd: AW: 回复:` chain."""
    text = clean_subject(subject)
    while True:
        stripped = _PREFIX_RE.sub("", text, count=1)
        if stripped == text:
            return text
        text = stripped


def reply_subject(subject: str | None, token: str | None = None) -> str:
    """The subject of a reply: exactly one `Re: `, the thread token once at the end."""
    text = clean_subject(subject)
    token = token or _token_of(text)
    # Tokens out first: one a client put in front (`[#t] RE: x`) would hide the prefixes.
    rest = tag_subject(strip_reply_prefixes(_SUBJECT_TOKEN_RE.sub(" ", text)), token)
    return f"Re: {rest}" if rest else "Re:"


def _token_of(subject: str) -> str | None:
    found = _SUBJECT_TOKEN_RE.search(subject)
    return found.group(1).lower() if found else None
