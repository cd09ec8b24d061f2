"""Reading a customer's answer to the satisfaction question (adapters/messaging/survey.py)."""

from __future__ import annotations

import pytest

from adapters.messaging.survey import Survey, answers_survey, score_of

Q = Survey("How did we do? Reply 1 to 5.", window_seconds=3600)


@pytest.mark.parametrize(
    ("body", "score"),
    [
        ("4", 4),
        (" 5 ", 5),
        ("3/5", 3),
        ("2 stars", 2),
        ("\uff11", 1),  # a full-width digit one
        ("5分", 5),
        ("4.", 4),
        ("0", None),
        ("6", None),
        ("45", None),
        ("4 but the parcel is still missing", None),
        ("", None),
        ("STOP", None),
    ],
)
def test_score_of(body: str, score: int | None) -> None:
    assert score_of(body) == score


def test_only_an_answer_to_our_question_within_the_window_counts() -> None:
    kw = {"last_body": Q.question, "last_from_daemon": True, "asked_at": 1000.0}
    assert answers_survey(Q, now=1500.0, body="4", **kw) == 4  # type: ignore[arg-type]
    assert answers_survey(Q, now=1000.0 + 3601, body="4", **kw) is None  # type: ignore[arg-type]
    assert answers_survey(Q, now=900.0, body="4", **kw) is None  # type: ignore[arg-type]
    assert (
        answers_survey(
            Q,
            last_body="Anything else?",
            last_from_daemon=True,
            asked_at=1000.0,
            now=1500.0,
            body="4",
        )
        is None
    )
    assert (
        answers_survey(
            Q, last_body=Q.question, last_from_daemon=False, asked_at=1000.0, now=1500.0, body="4"
        )
        is None
    )
