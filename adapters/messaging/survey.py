"""The satisfaction question a text channel asks when its contact is over, and reading
the customer's answer (pure).

After an agent closes an SMS conversation, the daemon texts the channel's question
("How did we do? Reply 1 to 5"). A reply within the window that is just a score is that
contact's CSAT (it feeds the service-request loop like the chat's stars and the IVR
survey), not a new conversation; anything else opens a new contact as usual.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# "4", " 4 ", "4/5", "4 stars", and full-width digits (typed on Chinese keyboards).
_SCORE = re.compile(r"^\s*([1-5])\s*(?:/\s*5|stars?|分|星)?\s*[.!]?\s*$", re.I)


@dataclass(frozen=True, slots=True)
class Survey:
    """A channel's question, and how long after it an answer counts."""

    question: str
    window_seconds: float = 24 * 3600.0


def score_of(body: str) -> int | None:
    """The 1-5 score a reply gives, or None when it is not just a score."""
    text = unicodedata.normalize("NFKC", body or "")
    if len(text) > 20:
        return None
    found = _SCORE.match(text)
    return int(found.group(1)) if found else None


def answers_survey(
    survey: Survey,
    *,
    last_body: str | None,
    last_from_daemon: bool,
    asked_at: float | None,
    now: float,
    body: str,
) -> int | None:
    """The score, when `body` answers the question that was the closed contact's last
    message (sent by the daemon, within the window); None otherwise."""
    if not last_from_daemon or last_body != survey.question or asked_at is None:
        return None
    if not 0 <= now - asked_at <= survey.window_seconds:
        return None
    return score_of(body)
