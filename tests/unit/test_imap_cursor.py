"""The pure part of the IMAP source: cursor, what to fetch, poison messages, the server's
replies (lines as aioimaplib gives them, recorded from Dovecot 2.3), and back-off."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.email.backoff import backoff_delay
from adapters.email.imap_cursor import (
    POISON_LIMIT,
    Cursor,
    Failures,
    ImapReplyError,
    MemoryCursorStore,
    advance,
    after_failure,
    body_of_fetch,
    reports_new_mail,
    resume,
    search_criteria,
    to_fetch,
    trouble,
    uids_of_search,
    uidvalidity_of,
)

# Recorded from Dovecot 2.3.19 through aioimaplib 2.0.3.
SELECT: list[bytes | bytearray] = [
    b"FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
    b"OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.",
    b"3 EXISTS",
    b"3 RECENT",
    b"OK [UNSEEN 1] First unseen.",
    b"OK [UIDVALIDITY 1796167924] UIDs valid",
    b"OK [UIDNEXT 4] Predicted next UID",
    b"[READ-WRITE] Select completed (0.002 + 0.000 + 0.001 secs).",
]
BODY = b"From: a@b\r\nSubject: x1\r\n\r\nhi {1}\r\n)\r\n"
FETCH: list[bytes | bytearray] = [
    b"2 FETCH (UID 2 BODY[] {37}",
    bytearray(BODY),
    b")",
    b"Fetch completed (0.001 secs).",
]


# --- cursor --------------------------------------------------------------------------


def test_a_first_read_starts_at_the_beginning() -> None:
    start = resume(None, 77)
    assert start.cursor == Cursor(77, 0) and start.reset is None


def test_the_saved_cursor_holds_while_uidvalidity_does() -> None:
    assert resume(Cursor(77, 12), 77).cursor == Cursor(77, 12)
    assert resume(Cursor(77, 12), 77).reset is None


def test_a_new_uidvalidity_voids_the_cursor_and_says_why() -> None:
    start = resume(Cursor(77, 12), 78)
    assert start.cursor == Cursor(78, 0)
    assert start.reset is not None
    assert "UIDVALIDITY changed from 77 to 78" in start.reset and "UID 12" in start.reset


def test_a_cursor_cannot_hold_nonsense() -> None:
    with pytest.raises(ValueError, match="not an IMAP cursor"):
        Cursor(0, 5)
    with pytest.raises(ValueError, match="not an IMAP cursor"):
        Cursor(7, -1)


def test_the_search_asks_for_everything_after_the_cursor() -> None:
    assert search_criteria(Cursor(5, 0)) == ("UID", "1:*")
    assert search_criteria(Cursor(5, 41)) == ("UID", "42:*")


def test_the_highest_uid_that_n_star_always_matches_is_not_fetched_again() -> None:
    # `UID SEARCH UID 4:*` on a mailbox whose last UID is 3 answers 3.
    assert to_fetch(Cursor(5, 3), [3]) == []


def test_what_to_fetch_is_in_uid_order_without_duplicates() -> None:
    assert to_fetch(Cursor(5, 3), [9, 4, 2, 9, 7]) == [4, 7, 9]


@given(
    last=st.integers(min_value=0, max_value=10_000),
    uids=st.lists(st.integers(min_value=1, max_value=10_050)),
)
def test_to_fetch_is_sorted_unique_and_after_the_cursor(last: int, uids: list[int]) -> None:
    result = to_fetch(Cursor(1, last), uids)
    assert result == sorted(set(result))
    assert all(uid > last for uid in result)
    assert set(result) == {uid for uid in uids if uid > last}


def test_the_cursor_only_moves_forward() -> None:
    assert advance(Cursor(5, 3), 7) == Cursor(5, 7)
    with pytest.raises(ValueError, match="not after the cursor"):
        advance(Cursor(5, 7), 7)


# --- poison messages ----------------------------------------------------------------


def test_a_message_is_skipped_on_its_fifth_failure() -> None:
    failures: Failures | None = None
    verdicts = []
    for _ in range(POISON_LIMIT):
        failures, skip = after_failure(failures, 8)
        verdicts.append(skip)
    assert POISON_LIMIT == 5
    assert verdicts == [False, False, False, False, True]
    assert failures == Failures(8, 5)


def test_a_failure_on_another_message_counts_from_one() -> None:
    failures, _ = after_failure(None, 8)
    failures, _ = after_failure(failures, 8)
    assert after_failure(failures, 9) == (Failures(9, 1), False)


def test_the_limit_can_be_chosen() -> None:
    assert after_failure(None, 3, limit=1) == (Failures(3, 1), True)


# --- the server's replies -------------------------------------------------------------


def test_uidvalidity_from_select() -> None:
    assert uidvalidity_of(SELECT) == 1796167924


def test_a_select_without_uidvalidity_is_an_error() -> None:
    with pytest.raises(ImapReplyError, match="without UIDVALIDITY"):
        uidvalidity_of([b"3 EXISTS", b"Select completed."])


def test_uids_of_a_search() -> None:
    assert uids_of_search([b"3 4 17", b"Search completed (0.001 + 0.000 secs)."]) == [3, 4, 17]


def test_an_empty_search() -> None:
    # "* SEARCH" alone reaches the caller as an empty line.
    assert uids_of_search([b"", b"Search completed (0.001 + 0.000 secs)."]) == []
    assert uids_of_search([b"Search completed."]) == []


def test_the_status_text_of_a_search_is_not_read_as_uids() -> None:
    assert uids_of_search([b"5", b"2 3"]) == [5]


def test_the_body_of_a_fetch() -> None:
    assert body_of_fetch(FETCH, 2) == BODY


def test_the_body_when_uid_comes_after_it() -> None:
    lines: list[bytes | bytearray] = [
        b"2 FETCH (BODY[] {37}",
        bytearray(BODY),
        b" UID 2)",
        b"Fetch completed.",
    ]
    assert body_of_fetch(lines, 2) == BODY


def test_flag_updates_in_a_fetch_reply_are_passed_over() -> None:
    lines: list[bytes | bytearray] = [b"1 FETCH (UID 1 FLAGS (\\Seen))", *FETCH]
    assert body_of_fetch(lines, 2) == BODY


def test_a_message_gone_since_the_search_has_no_body() -> None:
    assert body_of_fetch([b"Fetch completed (0.001 + 0.000 secs)."], 9) is None


def test_a_fetch_that_names_the_uid_without_a_body_is_an_error() -> None:
    with pytest.raises(ImapReplyError, match="UID 2 without the message"):
        body_of_fetch([b"2 FETCH (UID 2 FLAGS (\\Seen))", b"Fetch completed."], 2)


def test_a_body_that_looks_like_a_fetch_line_is_only_a_body() -> None:
    body = bytearray(b"3 FETCH (UID 3 BODY[] {5}\r\n")
    lines: list[bytes | bytearray] = [b"2 FETCH (UID 2 BODY[] {27}", body, b")", b"Done."]
    assert body_of_fetch(lines, 2) == bytes(body)
    assert body_of_fetch(lines, 3) is None


def test_new_mail_in_an_idle_push_or_a_noop_reply() -> None:
    assert reports_new_mail([b"5 EXISTS", b"5 RECENT"])
    assert reports_new_mail([b"4 EXISTS", b"4 RECENT", b"NOOP completed (0.002 secs)."])
    assert not reports_new_mail([b"NOOP completed (0.001 + 0.000 secs)."])
    assert not reports_new_mail([b"OK Still here", b"3 EXPUNGE"])


def test_trouble_in_an_idle_push() -> None:
    assert trouble([b"BYE Server shutting down."]) == "BYE Server shutting down."
    assert trouble([b"NO Internal error occurred."]) == "NO Internal error occurred."
    assert trouble([b"OK Still here", b"5 EXISTS"]) is None
    assert trouble([bytearray(b"BYE in a body")]) is None


async def test_the_memory_cursor_store() -> None:
    store = MemoryCursorStore()
    assert await store.load("INBOX") is None
    await store.save("INBOX", 77, 12)
    await store.save("Support", 5, 1)
    assert await store.load("INBOX") == (77, 12)
    assert await store.load("Support") == (5, 1)


# --- back-off ------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    ceilings = [backoff_delay(n, base=1, cap=60, jitter=1.0) for n in range(1, 9)]
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60]


def test_backoff_jitter_stays_in_the_upper_half() -> None:
    assert backoff_delay(3, base=1, cap=60, jitter=0.0) == 2.0
    assert backoff_delay(3, base=1, cap=60, jitter=0.5) == 3.0


@given(
    attempt=st.integers(min_value=1, max_value=5000),
    jitter=st.floats(min_value=0, max_value=1),
)
def test_backoff_never_overflows_nor_passes_the_cap(attempt: int, jitter: float) -> None:
    delay = backoff_delay(attempt, base=1.0, cap=60.0, jitter=jitter)
    assert 0.5 <= delay <= 60.0


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "jitter", "message"),
    [
        (0, 1.0, 60.0, 0.5, "attempt"),
        (1, 1.0, 60.0, 1.5, "jitter"),
        (1, 0.0, 60.0, 0.5, "base"),
        (1, 10.0, 5.0, 0.5, "base"),
    ],
)
def test_backoff_refuses_nonsense(
    attempt: int, base: float, cap: float, jitter: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        backoff_delay(attempt, base=base, cap=cap, jitter=jitter)
