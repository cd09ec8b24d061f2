"""The pure part of reading a mailbox over IMAP: the cursor, what to fetch next, poison
messages, and reading the server's replies (as aioimaplib hands them over). No I/O.

A mailbox is read by UID, oldest first. The cursor is (UIDVALIDITY, last UID handled):
the next messages are the UIDs above it. A server that changes a mailbox's UIDVALIDITY
(mailbox recreated, server migrated) has renumbered it, so the old cursor means nothing
and the mailbox is read from the start again; that is safe because the message handler
is idempotent (by Message-ID).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

# Handler failures on one message before it is skipped, so one poison message cannot
# stop the mailbox for ever.
POISON_LIMIT = 5

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH = re.compile(rb"^\d+ FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")
_LITERAL_END = re.compile(rb"\{\d+\}$")
_EXISTS = re.compile(rb"^\d+ EXISTS$")


class RetryLater(Exception):
    """Raised by a message handler that can take no message now (its store is down): the
    message is tried again after a back-off, and this does not count towards skipping
    it as poison. Any other exception does."""


class ImapReplyError(Exception):
    """The server's reply did not have what the protocol promises."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far a mailbox has been read: every UID up to `last_uid` is done."""

    uidvalidity: int
    last_uid: int

    def __post_init__(self) -> None:
        if self.uidvalidity < 1 or self.last_uid < 0:
            raise ValueError(f"not an IMAP cursor: {self.uidvalidity}/{self.last_uid}")


@dataclass(frozen=True, slots=True)
class Resume:
    """Where reading starts after SELECT, and why."""

    cursor: Cursor
    # Why the saved cursor was set aside (None when it still holds).
    reset: str | None = None


def resume(saved: Cursor | None, uidvalidity: int) -> Resume:
    """The cursor to read from, given the saved one and the mailbox's UIDVALIDITY now."""
    if saved is None:
        return Resume(Cursor(uidvalidity, 0))
    if saved.uidvalidity != uidvalidity:
        return Resume(
            Cursor(uidvalidity, 0),
            reset=(
                f"UIDVALIDITY changed from {saved.uidvalidity} to {uidvalidity}: the mailbox "
                f"was renumbered, reading it again from the start (was at UID {saved.last_uid})"
            ),
        )
    return Resume(saved)


def search_criteria(cursor: Cursor) -> tuple[str, str]:
    """UID SEARCH arguments for every message after the cursor."""
    return ("UID", f"{cursor.last_uid + 1}:*")


def to_fetch(cursor: Cursor, uids: Iterable[int]) -> list[int]:
    """The UIDs still to handle, in order. `n:*` always matches the highest UID even when
    it is below n (RFC 3501 6.4.8), so the server's answer is filtered here."""
    return sorted({uid for uid in uids if uid > cursor.last_uid})


def advance(cursor: Cursor, uid: int) -> Cursor:
    """The cursor once `uid` is done (handled, skipped or found gone)."""
    if uid <= cursor.last_uid:
        raise ValueError(f"UID {uid} is not after the cursor ({cursor.last_uid})")
    return Cursor(cursor.uidvalidity, uid)


@dataclass(frozen=True, slots=True)
class Failures:
    """How often the handler failed on the message it is stuck on."""

    uid: int
    count: int


def after_failure(
    previous: Failures | None, uid: int, limit: int = POISON_LIMIT
) -> tuple[Failures, bool]:
    """Count a handler failure on `uid`; True when the message is to be skipped now.
    Messages are handled in order and a failure stops the run, so only one UID at a time
    can be failing: a failure on another UID starts the count again."""
    count = previous.count + 1 if previous is not None and previous.uid == uid else 1
    return Failures(uid, count), count >= limit


# --- the server's replies, as aioimaplib's Response.lines --------------------------------
#
# aioimaplib strips the leading "* " of untagged lines, puts a literal ({n} bytes) in a
# bytearray line of its own after the line announcing it, and ends every reply with the
# text of the tagged status line.


def uidvalidity_of(lines: Sequence[bytes | bytearray]) -> int:
    """UIDVALIDITY from a SELECT reply (`OK [UIDVALIDITY n]`)."""
    for line in lines:
        found = _UIDVALIDITY.search(bytes(line))
        if found is not None:
            return int(found.group(1))
    raise ImapReplyError("SELECT reply without UIDVALIDITY")


def uids_of_search(lines: Sequence[bytes | bytearray]) -> list[int]:
    """The UIDs of a UID SEARCH reply (`* SEARCH 3 4 5`, given as b"3 4 5")."""
    uids: list[int] = []
    for line in lines[:-1]:  # the last line is the status text
        words = bytes(line).split()
        if words and all(word.isdigit() for word in words):
            uids.extend(int(word) for word in words)
    return uids


def body_of_fetch(lines: Sequence[bytes | bytearray], uid: int) -> bytes | None:
    """The message of a `UID FETCH uid (UID BODY.PEEK[])` reply; None when the server has
    no such message (expunged since the search). Other FETCH lines (flag changes the
    server reports on the way) are passed over; UID may come before or after the body."""
    announced = False
    for index, line in enumerate(lines):
        if isinstance(line, bytearray) or not _FETCH.match(line):
            continue
        has_body = bool(_LITERAL_END.search(line)) and index + 1 < len(lines)
        tail = lines[index + 2] if has_body and index + 2 < len(lines) else b""
        found = _UID.search(line) or _UID.search(bytes(tail))
        if found is None or int(found.group(1)) != uid:
            continue
        body = lines[index + 1] if has_body else None
        if isinstance(body, bytearray):
            return bytes(body)
        announced = True
    if announced:
        raise ImapReplyError(f"FETCH reply for UID {uid} without the message")
    return None


def reports_new_mail(lines: Iterable[bytes | bytearray]) -> bool:
    """True when untagged lines (an IDLE push, a NOOP reply) include `n EXISTS`."""
    return any(_EXISTS.match(bytes(line)) for line in lines)


def trouble(lines: Iterable[bytes | bytearray]) -> str | None:
    """The text of an untagged `BYE`, `NO` or `BAD` (the server ends the session, or
    reports it broken), or None. Dovecot says BYE, or NO "Internal error", to an IDLE
    whose mailbox was deleted, and may keep the socket open all the same."""
    for line in lines:
        if isinstance(line, bytearray):
            continue
        word, _, text = bytes(line).partition(b" ")
        if word in (b"BYE", b"NO", b"BAD"):
            return f"{word.decode()} {text.decode(errors='replace')}".strip()
    return None


# --- where cursors are kept ----------------------------------------------------------


class CursorStore(Protocol):
    """Where the cursor of each mailbox is kept across restarts (the daemon: its database)."""

    async def load(self, mailbox: str) -> tuple[int, int] | None:
        """(uidvalidity, last_uid) saved for the mailbox, or None."""
        ...

    async def save(self, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        """Keep the mailbox's cursor."""
        ...


class MemoryCursorStore:
    """A CursorStore in memory (tests; a daemon that may read its mailbox again)."""

    def __init__(self) -> None:
        self.cursors: dict[str, tuple[int, int]] = {}

    async def load(self, mailbox: str) -> tuple[int, int] | None:
        """The saved cursor, or None."""
        return self.cursors.get(mailbox)

    async def save(self, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        """Keep the cursor."""
        self.cursors[mailbox] = (uidvalidity, last_uid)
