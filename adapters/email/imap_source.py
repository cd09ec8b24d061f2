"""Customer email in: read one IMAP mailbox, hand every new message over, in UID order.

Each message is fetched with BODY.PEEK[] (reading does not mark it), handed to the
handler, and only once the handler has returned is it flagged \\Seen and the cursor moved
past it (imap_cursor.py), so a message is never lost between the mailbox and the store: a
crash or a dropped connection hands it over again (the handler is idempotent by
Message-ID). A handler failure leaves the message unread and it is tried again after a
back-off; one that fails POISON_LIMIT times is skipped (logged, counted in `skipped`),
unless the handler said RetryLater (its store is down: no message's fault).
New mail is waited for with IDLE when the server has it (renewed well before servers'
30-minute cut-off), else by polling. Any connection error or timeout reconnects with
exponential back-off and jitter; `on_state` follows the link for /status.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Protocol

import aioimaplib
from pydantic import SecretStr

from adapters.email.backoff import backoff_delay
from adapters.email.imap_cursor import (
    POISON_LIMIT,
    Cursor,
    CursorStore,
    Failures,
    ImapReplyError,
    RetryLater,
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
from adapters.email.imap_link import ImapLink, ImapLinkError, expect_ok

log = logging.getLogger(__name__)

Handler = Callable[[int, bytes], Awaitable[None]]
StateListener = Callable[[str, str | None], None]

IDLE_RENEW_SECONDS = 25 * 60.0  # servers may drop an IDLE after 30 min (RFC 2177)


class ImapSettings(Protocol):
    """What the source needs of `channels.email.imap` (contact_center.config.ImapConfig)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def ssl(self) -> bool: ...
    @property
    def username(self) -> str: ...
    @property
    def password(self) -> SecretStr: ...
    @property
    def mailbox(self) -> str: ...
    @property
    def poll_seconds(self) -> float: ...


class ImapSource:
    """Reads one mailbox for ever (`run`), handing new messages to `handle(uid, raw)`."""

    def __init__(
        self,
        config: ImapSettings,
        handle: Handler,
        cursors: CursorStore,
        *,
        on_state: StateListener | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        idle_renew_seconds: float = IDLE_RENEW_SECONDS,
        reconnect_base: float = 1.0,
        reconnect_max: float = 60.0,
        retry_base: float = 1.0,
        retry_max: float = 60.0,
        poison_limit: int = POISON_LIMIT,
    ) -> None:
        self.config = config
        self.mailbox = config.mailbox
        self._handle = handle
        self._cursors = cursors
        self._on_state = on_state
        self._ssl_context = ssl_context
        self.timeout = timeout
        self.idle_renew_seconds = idle_renew_seconds
        self.reconnect_base, self.reconnect_max = reconnect_base, reconnect_max
        self.retry_base, self.retry_max = retry_base, retry_max
        self.poison_limit = poison_limit
        self.state = "down"
        self.last_error: str | None = None
        self.handled = 0  # messages handed over and marked \Seen
        self.skipped = 0  # poison messages given up on
        self._cursor: Cursor | None = None
        self._failures: Failures | None = None
        self._unavailable = 0  # RetryLater in a row
        self._attempt = 0

    # --- life cycle -------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, catch up, wait for mail, reconnect on failure; until cancelled."""
        while True:
            self._set_state("connecting", self.last_error)
            try:
                await self._session()
            except (OSError, TimeoutError, aioimaplib.AioImapException, ImapLinkError) as exc:
                self._down(str(exc) or type(exc).__name__)
            except ImapReplyError as exc:
                self._down(f"unexpected server reply: {exc}")
            except Exception as exc:
                # The cursor store or something unforeseen: keep reading mail regardless.
                log.exception("IMAP source for %s failed", self.mailbox)
                self._down(f"{type(exc).__name__}: {exc}")
            self._attempt += 1
            await asyncio.sleep(
                backoff_delay(
                    self._attempt,
                    base=self.reconnect_base,
                    cap=self.reconnect_max,
                    jitter=random.random(),
                )
            )

    def _set_state(self, state: str, error: str | None) -> None:
        self.state, self.last_error = state, error
        if self._on_state is not None:
            try:
                self._on_state(state, error)
            except Exception:
                log.exception("IMAP state listener failed")

    def _down(self, error: str) -> None:
        # Logged once when the link goes away, not on every failed retry.
        where = f"{self.config.host}:{self.config.port}"
        if self._attempt == 0:
            log.warning("IMAP %s at %s is down: %s (retrying)", self.mailbox, where, error)
        else:
            log.debug("IMAP %s at %s still down: %s", self.mailbox, where, error)
        self._set_state("down", error)

    # --- one connection ---------------------------------------------------------------

    def _connect(self) -> ImapLink:
        context = self._ssl_context
        if self.config.ssl and context is None:
            context = ssl.create_default_context()
        return ImapLink(
            self.config.host,
            self.config.port,
            ssl_context=context if self.config.ssl else None,
            timeout=self.timeout,
        )

    async def _session(self) -> None:
        link = self._connect()
        client = link.client
        try:
            await link.call(client.wait_hello_from_server(), bounded=False)
            login = await link.call(
                client.login(self.config.username, self.config.password.get_secret_value())
            )
            expect_ok(login, "LOGIN")
            # What the server offers may change at login: ask again (RFC 3501 6.2.3).
            await link.call(client.protocol.capability())
            # aioimaplib sends the name as given: quoted, "Customer Care" is one name.
            selected = await link.call(client.select(aioimaplib.quoted(self.mailbox)))
            expect_ok(selected, f"SELECT {self.mailbox}")
            await self._resume(uidvalidity_of(selected.lines))
            use_idle = client.has_capability("IDLE")
            self._attempt = 0
            how = "IDLE" if use_idle else f"polling every {self.config.poll_seconds:g} s"
            where = f"{self.config.host}:{self.config.port}"
            log.info("IMAP %s at %s is up (%s)", self.mailbox, where, how)
            self._set_state("up", None)
            while True:
                await self._catch_up(link)
                if use_idle:
                    await self._idle(link)
                else:
                    await link.sleep(self.config.poll_seconds)
        finally:
            link.close()

    async def _resume(self, uidvalidity: int) -> None:
        saved = await self._cursors.load(self.mailbox)
        try:
            previous = Cursor(*saved) if saved is not None else None
        except ValueError as exc:
            log.warning("IMAP %s: saved cursor ignored (%s)", self.mailbox, exc)
            previous = None
        start = resume(previous, uidvalidity)
        if start.reset is not None:
            log.warning("IMAP %s: %s", self.mailbox, start.reset)
            self._failures = None
        self._cursor = start.cursor

    async def _catch_up(self, link: ImapLink) -> None:
        """Hand over every message after the cursor, until the server reports none."""
        client = link.client
        while True:
            assert self._cursor is not None
            # NOOP goes out right behind the SEARCH: aioimaplib gives unsolicited
            # responses only to a pending NOOP, and an EXISTS for mail that arrived
            # while the SEARCH ran would be lost otherwise (IDLE does not repeat it).
            search = asyncio.ensure_future(
                client.uid_search(*search_criteria(self._cursor), charset=None)
            )
            ping = asyncio.ensure_future(client.noop())  # started second: sent second
            try:
                found = await link.call(search)
                noop = await link.call(ping)
            finally:
                search.cancel()
                ping.cancel()
            expect_ok(found, "UID SEARCH")
            expect_ok(noop, "NOOP")
            uids = to_fetch(self._cursor, uids_of_search(found.lines))
            for uid in uids:
                if not await self._take(link, uid):
                    break  # failed: back off done, search again from the cursor
            if not uids and not reports_new_mail(noop.lines):
                return

    async def _take(self, link: ImapLink, uid: int) -> bool:
        """Fetch, hand over, mark and pass one message; False when the handler failed."""
        client = link.client
        # Unbounded here: aioimaplib times a FETCH out only when data stops coming.
        fetched = await link.call(client.uid("fetch", str(uid), "(UID BODY.PEEK[])"), bounded=False)
        expect_ok(fetched, f"UID FETCH {uid}")
        raw = body_of_fetch(fetched.lines, uid)
        if raw is None:
            log.info("IMAP %s: UID %d was expunged before it was read", self.mailbox, uid)
            await self._advance(uid)
            return True
        try:
            await self._handle(uid, raw)
        except RetryLater as exc:
            self._unavailable += 1
            log.warning("IMAP %s: handler unavailable for UID %d: %s", self.mailbox, uid, exc)
            await link.sleep(self._retry_delay(self._unavailable))
            return False
        except Exception as exc:
            return await self._failed(link, uid, exc)
        self._unavailable = 0
        stored = await link.call(client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Seen)"))
        if stored.result != "OK":
            # Handled all the same: the cursor, not the flag, says what is done.
            log.warning("IMAP %s: could not mark UID %d \\Seen", self.mailbox, uid)
        self.handled += 1
        await self._advance(uid)
        return True

    async def _failed(self, link: ImapLink, uid: int, exc: Exception) -> bool:
        self._failures, skip = after_failure(self._failures, uid, self.poison_limit)
        count = self._failures.count
        if skip:
            log.error(
                "IMAP %s: UID %d skipped after %d failed attempts, left unread in the mailbox: %s",
                self.mailbox,
                uid,
                count,
                exc,
                exc_info=exc,
            )
            self.skipped += 1
            await self._advance(uid)
            return True
        log.warning(
            "IMAP %s: handler failed on UID %d (attempt %d of %d): %s",
            self.mailbox,
            uid,
            count,
            self.poison_limit,
            exc,
            exc_info=exc,
        )
        await link.sleep(self._retry_delay(count))
        return False

    def _retry_delay(self, attempt: int) -> float:
        return backoff_delay(
            attempt, base=self.retry_base, cap=self.retry_max, jitter=random.random()
        )

    async def _advance(self, uid: int) -> None:
        assert self._cursor is not None
        self._cursor = advance(self._cursor, uid)
        if self._failures is not None and self._failures.uid <= uid:
            self._failures = None
        await self._cursors.save(self.mailbox, self._cursor.uidvalidity, self._cursor.last_uid)

    async def _idle(self, link: ImapLink) -> None:
        """IDLE until the server reports new mail or it is time to renew the IDLE."""
        client = link.client
        idle = await link.call(client.idle_start(timeout=self.idle_renew_seconds))
        while True:
            try:
                push = await link.call(
                    client.wait_server_push(timeout=self.idle_renew_seconds + self.timeout),
                    bounded=False,
                )
            except TimeoutError:
                break
            problem = trouble(push)
            if problem is not None:
                # A fresh session (SELECT, UIDVALIDITY) is the only safe way on.
                raise ImapLinkError(f"the server interrupted IDLE: {problem}")
            if push == aioimaplib.STOP_WAIT_SERVER_PUSH or reports_new_mail(push):
                break
        client.idle_done()
        expect_ok(await link.call(idle), "IDLE")
