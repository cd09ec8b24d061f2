"""Normalising contact points: phones to E.164 with `phonenumbers`, emails lower-cased."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from crm_store.errors import InvalidData

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@lru_cache(maxsize=65536)
def normalize_phone(raw: str, region: str) -> str:
    """Return `raw` as E.164 ("+442079460018"), read in `region` when national."""
    text = (raw or "").strip()
    if not text:
        raise InvalidData("phone number is empty")
    if text.startswith("00"):
        # International prefix written the European way.
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidData(f"cannot read phone number {raw!r}: {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidData(f"{raw!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def try_normalize_phone(raw: str, region: str) -> str | None:
    """Like `normalize_phone`, but None for what is not a phone number (caller id 'anonymous')."""
    try:
        return normalize_phone(raw, region)
    except InvalidData:
        return None


def normalize_email(raw: str) -> str:
    """Lower-case and trim an email address; refuse what is not one."""
    text = (raw or "").strip().lower()
    if not _EMAIL.match(text) or len(text) > 320:
        raise InvalidData(f"{raw!r} is not an email address")
    return text


def normalize_chat_handle(raw: str) -> str:
    """Trim a chat handle; refuse an empty one."""
    text = (raw or "").strip()
    if not text or len(text) > 320:
        raise InvalidData("chat handle must be 1 to 320 characters")
    return text
