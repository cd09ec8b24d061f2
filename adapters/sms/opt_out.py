"""Opt-out keywords (STOP, START, HELP) as Twilio reads them, and where opt-outs are kept.

Twilio blocks a number that texts an opt-out word and unblocks it on an opt-in word, but
only for the number it was sent to: we keep our own record too, so no number of ours
sends to a customer who said STOP. A message is a keyword only when the whole of it,
trimmed, is the word, in any case: "stop" is, "stop please" is not (Twilio's rule).
With Advanced Opt-Out, Twilio itself says which kind a message was (`OptOutType`), and
that covers keywords the account added.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class Keyword(Enum):
    """What a keyword message asks for."""

    STOP = "stop"  # opt out of every message from us
    START = "start"  # opt back in
    HELP = "help"  # Twilio answers it; nothing changes


# Twilio's default keywords for long codes and toll-free numbers.
_WORDS: dict[str, Keyword] = {
    **dict.fromkeys(
        ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"),
        Keyword.STOP,
    ),
    **dict.fromkeys(("START", "YES", "UNSTOP", "OPTIN"), Keyword.START),
    **dict.fromkeys(("HELP", "INFO"), Keyword.HELP),
}
# The longest keyword a body can be (a custom Advanced Opt-Out word included), as recorded.
MAX_WORD_CHARS = 32


@dataclass(frozen=True, slots=True)
class KeywordMatch:
    """A keyword message: what it asks for and the word the customer used."""

    keyword: Keyword
    word: str  # upper-cased, as recorded beside the opt-out

    @property
    def opted_out(self) -> bool | None:
        """The customer's opt-out state after this message; None when it does not change."""
        if self.keyword is Keyword.STOP:
            return True
        if self.keyword is Keyword.START:
            return False
        return None


def match_keyword(body: str, opt_out_type: str | None = None) -> KeywordMatch | None:
    """The keyword `body` is, or None; Twilio's own `OptOutType` wins when it names one."""
    text = body.strip()
    word = text.upper()[:MAX_WORD_CHARS]
    if opt_out_type:
        try:
            return KeywordMatch(Keyword(opt_out_type.strip().lower()), word)
        except ValueError:
            pass  # a kind Twilio may add later: read the body as usual
    # ASCII only: str.upper() maps some other letters onto ASCII (U+017F long s is "S").
    if not text.isascii():
        return None
    keyword = _WORDS.get(word)
    return KeywordMatch(keyword, word) if keyword is not None else None


class OptOutSink(Protocol):
    """Where opt-outs are kept (the CRM store), per channel and customer address."""

    async def set_opted_out(
        self, channel: str, address: str, opted_out: bool, at: float, word: str
    ) -> None:
        """Record that `address` opted out (or back in) at `at` by texting `word`."""
        ...

    async def is_opted_out(self, channel: str, address: str) -> bool:
        """True when `address` has opted out of messages on `channel`."""
        ...
