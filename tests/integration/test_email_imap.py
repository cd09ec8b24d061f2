"""ImapSource against a real Dovecot on 127.0.0.1: IDLE and polling, UID order, exactly
once across restarts, \\Seen only after the handler, retries, poison messages,
reconnection, UIDVALIDITY changes. Mail is delivered with IMAP APPEND."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.email.imap_cursor import MemoryCursorStore, RetryLater
from adapters.email.imap_source import ImapSource
from contact_center.config import ImapConfig
from tests.integration.dovecot_server import PASSWORD, USER, DovecotServer

pytestmark = pytest.mark.integration

SEEN = "\\Seen"


def mail(n: int, subject: str = "Help") -> bytes:
    """A small RFC 5322 message, CRLF line ends as IMAP carries them."""
    return (
        f"From: Customer {n} <customer{n}@example.org>\r\nTo: support@example.com\r\n"
        f"Subject: {subject} {n}\r\nMessage-ID: <m{n}.{time.time_ns()}@example.org>\r\n"
        f"\r\nMessage number {n}.\r\n"
    ).encode()


class Inbox:
    """The handler under test: records what it was given; may be told to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bytes]] = []
        self.done: list[int] = []  # UIDs whose handling returned
        self.fail: Callable[[int, int], bool] = lambda uid, attempt: False
        self.check: Callable[[int], Awaitable[None]] | None = None
        self._changed = asyncio.Event()

    async def handle(self, uid: int, raw: bytes) -> None:
        self.calls.append((uid, raw))
        self._changed.set()
        if self.check is not None:
            await self.check(uid)
        if self.fail(uid, sum(1 for u, _ in self.calls if u == uid)):
            raise RuntimeError(f"store unavailable for UID {uid}")
        self.done.append(uid)
        self._changed.set()

    async def wait(self, until: Callable[[], bool], within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not reached within {within} s: calls={self.calls}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))


@pytest.fixture
async def dovecot() -> AsyncIterator[DovecotServer]:
    server = DovecotServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def dovecot_without_idle() -> AsyncIterator[DovecotServer]:
    server = DovecotServer(idle=False)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def config(server: DovecotServer, **changes: Any) -> ImapConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "ssl": False,
        "username": USER,
        "password": SecretStr(PASSWORD),
        "mailbox": "INBOX",
        "poll_seconds": 60.0,
    }
    values.update(changes)
    return ImapConfig(**values)


class Running:
    """An ImapSource run in a task, with the states it went through."""

    def __init__(self, source: ImapSource, states: list[tuple[str, str | None]]) -> None:
        self.source = source
        self.states = states

    async def wait_state(self, state: str, within: float = 5.0, since: int = 0) -> str | None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for seen, error in self.states[since:]:
                if seen == state:
                    return error
            await asyncio.sleep(0.01)
        raise AssertionError(f"never {state!r} within {within} s: {self.states}")


@contextlib.asynccontextmanager
async def running(
    server: DovecotServer,
    inbox: Inbox,
    cursors: MemoryCursorStore,
    settings: ImapConfig | None = None,
    **options: Any,
) -> AsyncIterator[Running]:
    states: list[tuple[str, str | None]] = []
    options.setdefault("reconnect_base", 0.05)
    options.setdefault("reconnect_max", 0.2)
    options.setdefault("retry_base", 0.02)
    options.setdefault("retry_max", 0.05)
    options.setdefault("timeout", 5.0)
    source = ImapSource(
        settings or config(server),
        inbox.handle,
        cursors,
        on_state=lambda state, error: states.append((state, error)),
        **options,
    )
    task = asyncio.create_task(source.run())
    try:
        yield Running(source, states)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_new_mail_arrives_through_idle_within_two_seconds(dovecot: DovecotServer) -> None:
    inbox, cursors = Inbox(), MemoryCursorStore()
    async with running(dovecot, inbox, cursors) as run:  # polling every 60 s: IDLE or nothing
        await run.wait_state("up")
        await asyncio.sleep(0.3)  # in IDLE by now
        raw = mail(1)
        sent = time.monotonic()
        uid = await dovecot.append(raw)
        await inbox.wait(lambda: inbox.done == [uid], within=2.0)
        assert time.monotonic() - sent < 2.0
        assert inbox.calls == [(uid, raw)]  # the bytes as delivered
        await inbox.wait(lambda: run.source.handled == 1)
    assert SEEN in await dovecot.flags(uid)
    uidvalidity = await dovecot.uidvalidity()
    assert cursors.cursors == {"INBOX": (uidvalidity, uid)}
    assert [state for state, _ in run.states] == ["connecting", "up"]


async def test_polling_when_the_server_has_no_idle(
    dovecot_without_idle: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = dovecot_without_idle
    inbox, cursors = Inbox(), MemoryCursorStore()
    caplog.set_level(logging.INFO, logger="adapters.email.imap_source")
    async with running(server, inbox, cursors, config(server, poll_seconds=0.3)) as run:
        await run.wait_state("up")
        first = await server.append(mail(1))
        await inbox.wait(lambda: inbox.done == [first], within=2.0)
        second = await server.append(mail(2))
        await inbox.wait(lambda: inbox.done == [first, second], within=2.0)
    assert "polling every 0.3 s" in caplog.text


async def test_uid_order_and_exactly_once_across_a_restart(dovecot: DovecotServer) -> None:
    cursors = MemoryCursorStore()
    uids = [await dovecot.append(mail(n)) for n in range(3)]
    first = Inbox()
    async with running(dovecot, first, cursors) as run:
        await first.wait(lambda: run.source.handled == 3)
    assert first.done == uids

    later = [await dovecot.append(mail(n)) for n in range(3, 5)]
    second = Inbox()
    async with running(dovecot, second, cursors) as run:
        await second.wait(lambda: run.source.handled == 2)
        await asyncio.sleep(0.3)  # nothing more comes
    assert second.done == later
    assert [uid for uid, _ in first.calls + second.calls] == uids + later
    for uid in uids + later:
        assert SEEN in await dovecot.flags(uid)


async def test_seen_is_set_only_after_the_handler_returned(dovecot: DovecotServer) -> None:
    inbox, cursors = Inbox(), MemoryCursorStore()
    flags_during: list[set[str]] = []

    async def look(uid: int) -> None:
        flags_during.append(await dovecot.flags(uid))

    inbox.check = look
    uid = await dovecot.append(mail(1))
    async with running(dovecot, inbox, cursors) as run:
        await inbox.wait(lambda: run.source.handled == 1)
    assert flags_during == [{"\\Recent"}] or SEEN not in flags_during[0]
    assert SEEN in await dovecot.flags(uid)


async def test_a_failing_handler_leaves_the_message_unseen_and_it_is_retried(
    dovecot: DovecotServer,
) -> None:
    inbox, cursors = Inbox(), MemoryCursorStore()
    flags_during: list[set[str]] = []

    async def look(uid: int) -> None:
        flags_during.append(await dovecot.flags(uid))

    inbox.check = look
    inbox.fail = lambda uid, attempt: uid == 1 and attempt <= 2
    one, two = await dovecot.append(mail(1)), await dovecot.append(mail(2))
    async with running(dovecot, inbox, cursors) as run:
        await inbox.wait(lambda: run.source.handled == 2)
    assert [uid for uid, _ in inbox.calls] == [one, one, one, two]  # never past a failure
    assert all(SEEN not in flags for flags in flags_during)
    assert inbox.done == [one, two]
    assert run.source.skipped == 0
    assert cursors.cursors["INBOX"][1] == two


async def test_a_poison_message_is_skipped_after_five_failures(
    dovecot: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    inbox, cursors = Inbox(), MemoryCursorStore()
    inbox.fail = lambda uid, attempt: uid == 1
    poison, fine = await dovecot.append(mail(1)), await dovecot.append(mail(2))
    async with running(dovecot, inbox, cursors) as run:
        await inbox.wait(lambda: run.source.handled == 1)
        assert run.source.skipped == 1
    assert inbox.done == [fine]
    assert [uid for uid, _ in inbox.calls] == [poison] * 5 + [fine]
    assert SEEN not in await dovecot.flags(poison)  # left for a person to look at
    assert SEEN in await dovecot.flags(fine)
    assert cursors.cursors["INBOX"][1] == fine
    assert "UID 1 skipped after 5 failed attempts" in caplog.text


async def test_reconnects_after_a_server_restart_and_reads_what_came_meanwhile(
    dovecot: DovecotServer,
) -> None:
    inbox, cursors = Inbox(), MemoryCursorStore()
    async with running(dovecot, inbox, cursors, reconnect_base=0.2, reconnect_max=0.5) as run:
        await run.wait_state("up")
        first = await dovecot.append(mail(1))
        await inbox.wait(lambda: run.source.handled == 1)
        since = len(run.states)
        await dovecot.stop()
        error = await run.wait_state("down", since=since)
        # Dovecot says BYE as it goes, or the socket just closes.
        assert error in (
            "connection lost",
            "the server interrupted IDLE: BYE Server shutting down.",
        )
        raw = mail(2, "Sent while the server was down")
        dovecot.deliver_to_maildir(raw)
        await dovecot.start()
        await run.wait_state("up", since=since, within=5.0)
        await inbox.wait(lambda: run.source.handled == 2)
    assert [uid for uid, _ in inbox.calls] == [first, first + 1]
    assert inbox.calls[1][1].replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
    assert SEEN in await dovecot.flags(first + 1)


async def test_a_server_that_is_down_at_start_is_retried(dovecot: DovecotServer) -> None:
    inbox, cursors = Inbox(), MemoryCursorStore()
    await dovecot.stop()
    async with running(dovecot, inbox, cursors) as run:
        error = await run.wait_state("down")
        assert error is not None and "Connect call failed" in error
        await dovecot.start()
        await run.wait_state("up", within=5.0)
        uid = await dovecot.append(mail(1))
        await inbox.wait(lambda: inbox.done == [uid], within=2.0)


async def test_a_refused_login_is_reported_and_nothing_is_read(dovecot: DovecotServer) -> None:
    inbox, cursors = Inbox(), MemoryCursorStore()
    await dovecot.append(mail(1))
    wrong = config(dovecot, password=SecretStr("not-the-password"))
    async with running(dovecot, inbox, cursors, wrong) as run:
        error = await run.wait_state("down", within=10.0)
    assert error is not None and error.startswith("LOGIN refused: NO")
    assert "AUTHENTICATIONFAILED" in error
    assert inbox.calls == [] and cursors.cursors == {}


async def test_a_new_uidvalidity_reads_the_mailbox_again(
    dovecot: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    inbox, cursors = Inbox(), MemoryCursorStore()
    await dovecot.create("Support")
    settings = config(dovecot, mailbox="Support")
    old = [await dovecot.append(mail(n), "Support") for n in range(2)]
    async with running(dovecot, inbox, cursors, settings) as run:
        await inbox.wait(lambda: run.source.handled == 2)
    old_validity = await dovecot.uidvalidity("Support")
    assert cursors.cursors == {"Support": (old_validity, old[-1])}

    # The mailbox is recreated: its UIDs start again at 1, under a new UIDVALIDITY.
    await dovecot.delete("Support")
    await dovecot.create("Support")
    raw = mail(9, "Again")
    renumbered = await dovecot.append(raw, "Support")
    assert renumbered <= old[-1]  # a cursor that held would skip it
    new_validity = await dovecot.uidvalidity("Support")
    assert new_validity != old_validity
    async with running(dovecot, inbox, cursors, settings) as run:
        await inbox.wait(lambda: run.source.handled == 1)
    assert inbox.calls[-1] == (renumbered, raw)
    assert cursors.cursors == {"Support": (new_validity, renumbered)}
    assert f"UIDVALIDITY changed from {old_validity} to {new_validity}" in caplog.text


async def test_a_mailbox_recreated_while_read_is_read_again(dovecot: DovecotServer) -> None:
    inbox, cursors = Inbox(), MemoryCursorStore()
    await dovecot.create("Support")
    settings = config(dovecot, mailbox="Support")
    async with running(dovecot, inbox, cursors, settings) as run:
        first = await dovecot.append(mail(1), "Support")
        await inbox.wait(lambda: run.source.handled == 1)
        old_validity = cursors.cursors["Support"][0]
        await dovecot.delete("Support")
        await dovecot.create("Support")
        again = await dovecot.append(mail(2), "Support")
        await inbox.wait(lambda: run.source.handled == 2, within=5.0)
    assert inbox.done == [first, again]
    # Dovecot gives a mailbox deleted under an open session yet another UIDVALIDITY
    # when it repairs its index: only the change itself is certain.
    assert cursors.cursors["Support"][0] != old_validity
    assert [state for state, _ in run.states].count("up") >= 2


async def test_idle_is_renewed_and_mail_still_arrives(dovecot: DovecotServer) -> None:
    inbox, cursors = Inbox(), MemoryCursorStore()
    async with running(dovecot, inbox, cursors, idle_renew_seconds=0.2) as run:
        await run.wait_state("up")
        await asyncio.sleep(1.0)  # several DONE / IDLE rounds
        uid = await dovecot.append(mail(1))
        await inbox.wait(lambda: inbox.done == [uid], within=2.0)
        assert [state for state, _ in run.states] == ["connecting", "up"]


async def test_over_tls() -> None:
    server = DovecotServer(tls=True)
    await server.start()
    try:
        inbox, cursors = Inbox(), MemoryCursorStore()
        settings = config(server, ssl=True)
        async with running(server, inbox, cursors, settings, ssl_context=server.client_tls) as run:
            await run.wait_state("up")
            uid = await server.append(mail(1))
            await inbox.wait(lambda: inbox.done == [uid], within=2.0)

        # The system's trust store does not know the test's certificate.
        async with running(server, Inbox(), cursors, settings) as run:
            error = await run.wait_state("down")
        assert error is not None and "CERTIFICATE_VERIFY_FAILED" in error
    finally:
        await server.close()


async def test_retry_later_never_makes_a_message_poison(dovecot: DovecotServer) -> None:
    inbox, cursors = Inbox(), MemoryCursorStore()
    uid = await dovecot.append(mail(1))
    attempts = 0

    async def store_down(_uid: int) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 8:  # more than POISON_LIMIT
            raise RetryLater("database unavailable")

    inbox.check = store_down
    async with running(dovecot, inbox, cursors) as run:
        await inbox.wait(lambda: run.source.handled == 1)
        assert run.source.skipped == 0
    assert inbox.done == [uid] and attempts == 9


async def test_a_mailbox_name_with_a_space(dovecot: DovecotServer) -> None:
    inbox, cursors = Inbox(), MemoryCursorStore()
    await dovecot.create('"Customer Care"')
    uid = await dovecot.append(mail(1), '"Customer Care"')
    settings = config(dovecot, mailbox="Customer Care")
    async with running(dovecot, inbox, cursors, settings) as run:
        await inbox.wait(lambda: run.source.handled == 1)
    assert inbox.done == [uid]
    assert cursors.cursors["Customer Care"][1] == uid
