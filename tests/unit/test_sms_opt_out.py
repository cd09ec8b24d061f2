"""Opt-out keywords read as Twilio reads them: the whole message, trimmed, any case."""

from __future__ import annotations

import pytest

from adapters.sms.opt_out import Keyword, KeywordMatch, match_keyword

STOP_WORDS = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"]
START_WORDS = ["START", "YES", "UNSTOP", "OPTIN"]
HELP_WORDS = ["HELP", "INFO"]


@pytest.mark.parametrize(
    ("words", "keyword", "opted_out"),
    [
        (STOP_WORDS, Keyword.STOP, True),
        (START_WORDS, Keyword.START, False),
        (HELP_WORDS, Keyword.HELP, None),
    ],
)
def test_twilios_default_keywords(
    words: list[str], keyword: Keyword, opted_out: bool | None
) -> None:
    for word in words:
        for written in (word, word.lower(), word.capitalize(), f"  {word.lower()}\n"):
            match = match_keyword(written)
            assert match == KeywordMatch(keyword, word), written
            assert match.opted_out is opted_out


@pytest.mark.parametrize(
    "body",
    [
        "stop please",
        "please stop",
        "STOP!",
        "S T O P",
        "",
        "   ",
        "yes I would like a refund",
        "\u017ftop",  # the long s upper-cases to S: not the ASCII word
        "\uff33\uff34\uff2f\uff30",  # full-width STOP
    ],
)
def test_anything_else_is_no_keyword(body: str) -> None:
    assert match_keyword(body) is None


def test_twilios_opt_out_type_wins_over_the_words() -> None:
    # Advanced Opt-Out keywords the account added ("ARRET") come with Twilio's verdict.
    assert match_keyword("Arret", "STOP") == KeywordMatch(Keyword.STOP, "ARRET")
    assert match_keyword("Oui", "start") == KeywordMatch(Keyword.START, "OUI")
    assert match_keyword("Aide", "HELP") == KeywordMatch(Keyword.HELP, "AIDE")


def test_an_unknown_opt_out_type_falls_back_on_the_words() -> None:
    assert match_keyword("stop", "SOMETHING_NEW") == KeywordMatch(Keyword.STOP, "STOP")
    assert match_keyword("hello", "SOMETHING_NEW") is None
    assert match_keyword("hello", "") is None


def test_the_recorded_word_is_bounded() -> None:
    match = match_keyword("x" * 500, "STOP")
    assert match is not None and len(match.word) == 32
