"""Normalising contact points: phones to E.164 with `phonenumbers`, emails lower-cased."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers

from crm_store.errors import InvalidData

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# A caller id as the store keeps it (interactions.address holds 320): a SIP URI with a
# display part fits; anything longer is junk from the network, kept only as a clue.
MAX_CALLER_ID = 128
# What Asterisk writes when there is no caller id at all ("anonymous" is a withheld one).
_NO_CALLER_ID = "unknown"


def bounded_caller_id(raw: object) -> str | None:
    """A caller id (AGI agi_callerid, AMI CallerIDNum) safe to store and show.

    Control and format characters (NUL, CR/LF, bidi overrides, lone surrogates) become
    blanks, runs of blanks one, and the rest is cut to MAX_CALLER_ID characters. None when
    nothing is left or Asterisk says there is none ("unknown"). Never raises.
    """
    if not isinstance(raw, str):
        return None
    # Cut first: the work below is bounded whatever length came in.
    text = "".join(
        " " if unicodedata.category(ch)[0] == "C" else ch for ch in raw[: MAX_CALLER_ID * 4]
    )
    text = " ".join(text.split())[:MAX_CALLER_ID].strip()
    if not text or text.lower() == _NO_CALLER_ID:
        return None
    return text


MAX_NAME = 200  # interactions.address_name
# What Asterisk and phones write when there is no name.
_NO_NAME = frozenset({"unknown", "<unknown>", "anonymous", "unavailable"})


def clean_name(raw: object) -> str | None:
    """A caller id name or a sender's display name, safe to store and show: as
    `bounded_caller_id`, cut to MAX_NAME; None for empty and Asterisk's `<unknown>`."""
    if not isinstance(raw, str):
        return None
    text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in raw[: MAX_NAME * 4])
    text = " ".join(text.split())[:MAX_NAME].strip()
    if not text or text.lower() in _NO_NAME:
        return None
    return text


@lru_cache(maxsize=65536)
def normalize_phone(raw: str, region: str) -> str:
    """Return `raw` as E.164 ("+442079460018"), read in `region` when national."""
    # Only numbers that parse are cached (an exception is not): junk cannot fill it.
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
