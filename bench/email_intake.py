"""Email intake: messages per second from a real Dovecot to stored, routed contacts.

Run from the repository root (Debian: `apt-get install dovecot-imapd`):

    .venv/bin/python bench/email_intake.py [--quick] [--messages N] [--arrivals M]
        [--rate R] [--rounds K] [--database-url URL] [--profile]

Each round starts a fresh Dovecot (tests/integration/dovecot_server.py: its own config,
127.0.0.1 only) and a fresh store (a SQLite file in a temporary directory, or a scratch
PostgreSQL database with `--database-url`, see bench/scratch_db.py), then:

1. backlog: N realistic mails (plain text in UTF-8 or Latin-1, multipart/alternative with
   HTML, a few with attachments, replies threaded by In-Reply-To/References) are put
   into the Maildir before Dovecot starts, and the mailbox is opened once (Dovecot
   indexes it) before anything is timed.
2. baselines over the same N messages: aioimaplib alone fetching them one UID FETCH each
   (what ImapSource does, without parse or store), the same in batches of BATCH UIDs per
   FETCH (what a batched source could do), and `parse_email` alone over the fetched bytes.
3. the daemon, in this process as `contact-center run` builds it (make_app: the store,
   the bus, routing, the email channel: EmailChannel over ImapSource into MessageIntake),
   reads the backlog: messages per second from the first UID FETCH to the last message
   stored, the process's CPU seconds per message over that window (Dovecot's too), and
   where the time goes, from timers around the daemon's own functions (the UID FETCH and
   STORE round trips, parse_email in its thread, keep_attachments, the intake's store
   transaction, the cursor save). The timers wrap, they change nothing.
4. arrival: M more mails are APPENDed (one imaplib connection in a thread, paced at R a
   second) while the daemon IDLEs; per message, stored time minus the moment the APPEND
   completed (median, p99), and CPU per message less the appending thread's own.

Every round checks that each mail was stored exactly once (by Message-ID), that every
new thread published a ContactQueued that routing holds, every reply a MessageReceived,
and that the mailbox has nothing left unseen. Figures are printed per round, then the
medians over the rounds; the last line is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import imaplib
import io
import json
import logging
import os
import pstats
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ itself is first on sys.path: drop it for the repository root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import aioimaplib  # noqa: E402
import yaml  # noqa: E402
from aiohttp import web  # noqa: E402
from sqlalchemy import event, func, select  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

import adapters.email.channel as channel_module  # noqa: E402
from adapters.email.attachments import keep_attachments  # noqa: E402
from adapters.email.channel import EmailChannel  # noqa: E402
from adapters.email.imap_cursor import body_of_fetch, uids_of_search  # noqa: E402
from adapters.email.imap_source import ImapSource  # noqa: E402
from adapters.email.parse import parse_email  # noqa: E402
from adapters.messaging.events import MessageReceived  # noqa: E402
from adapters.messaging.intake import MessageIntake  # noqa: E402
from bench.scratch_db import backend_name, describe_load, scratch_database  # noqa: E402
from contact_center.app import make_app  # noqa: E402
from contact_center.config import parse_config  # noqa: E402
from contact_center.email_wiring import StoreCursors  # noqa: E402
from contact_center.keys import DAEMON  # noqa: E402
from crm_store import customers, migrate  # noqa: E402
from crm_store.database import make_engine, make_sessionmaker  # noqa: E402
from crm_store.models import Interaction  # noqa: E402
from crm_store.models import Message as StoredMessage  # noqa: E402
from routing.events import ContactQueued  # noqa: E402
from tests.integration.dovecot_server import PASSWORD, USER, DovecotServer  # noqa: E402

SUPPORT = "support@example.com"
MAX_BODY_BYTES = 1_000_000  # the shipped config's channels.email limits
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
BATCH = 100  # UIDs per FETCH in the batched baseline
SENDERS = 400  # distinct customer addresses; every other one is a known customer
FULL = {"messages": 2000, "arrivals": 200, "rate": 20.0}
QUICK = {"messages": 200, "arrivals": 40, "rate": 20.0}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WORDS = (
    "order",
    "invoice",
    "delivery",
    "refund",
    "account",
    "password",
    "router",
    "broken",
    "thanks",
    "please",
    "urgent",
    "tomorrow",
    "parcel",
    "tracking",
    "number",
    "replacement",
    "warranty",
    "charged",
    "twice",
    "subscription",
    "cancel",
    "upgrade",
    "billing",
    "address",
    "help",
    "waiting",
    "since",
    "Monday",
)


class BenchError(Exception):
    """The bench cannot run (bad options, no Dovecot): exit 2 with the reason."""


# --- the mails ------------------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    """One generated mail: its bytes, its Message-ID (without <>), and its kind."""

    raw: bytes
    message_id: str
    kind: str  # plain, html, attachment, reply
    sender: str
    parent: str | None = None  # the Message-ID a reply answers


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _paragraphs(rng: random.Random) -> str:
    return "\n\n".join(
        " ".join(_sentence(rng, rng.randint(6, 16)) for _ in range(rng.randint(2, 5)))
        for _ in range(rng.randint(1, 4))
    )


def make_mails(count: int, seed: int = 7) -> list[Mail]:
    """`count` realistic mails, the same for a seed: 45% plain text (UTF-8 or Latin-1,
    quoted-printable), 33% multipart/alternative with HTML, 5% with an attachment (a PDF
    or a PNG of 20-120 KB), 17% replies to an earlier thread (In-Reply-To, References,
    the quoted original). Replies only follow their thread's first mail."""
    rng = random.Random(seed)
    mails: list[Mail] = []
    roots: list[Mail] = []
    start = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    for i in range(count):
        pick = rng.random()
        kind = (
            "reply"
            if pick < 0.17 and roots
            else "attachment"
            if pick < 0.22
            else "html"
            if pick < 0.55
            else "plain"
        )
        parent = rng.choice(roots) if kind == "reply" else None
        sender = (
            parent.sender if parent is not None else f"customer{rng.randrange(SENDERS)}@example.net"
        )
        name = sender.split("@")[0].replace("customer", "Customer ")
        message = EmailMessage()
        message["From"] = f'"{name} Pérez" <{sender}>' if i % 3 == 0 else f"{name} <{sender}>"
        message["To"] = f"Support <{SUPPORT}>"
        message["Date"] = format_datetime(start + timedelta(seconds=37 * i))
        message_id = f"<{seed}.{i}.{rng.getrandbits(48):012x}@mail.example.net>"
        message["Message-ID"] = message_id
        body = _paragraphs(rng)
        if parent is not None:
            message["Subject"] = "Re: " + _subject_of(parent)
            message["In-Reply-To"] = f"<{parent.message_id}>"
            message["References"] = f"<{parent.message_id}>"
            quoted = "\n".join("> " + line for line in body.splitlines()[:6])
            body = f"{_sentence(rng, 8)}\n\nOn Monday you wrote:\n{quoted}\n"
        else:
            message["Subject"] = f"{_sentence(rng, rng.randint(3, 7))[:-1]} #{i}"
        charset = "iso-8859-1" if i % 7 == 0 else "utf-8"
        text = body + ("\n\nMerci, José" if charset == "iso-8859-1" else "\n\nRegards, 陈")
        message.set_content(text, charset=charset, cte="quoted-printable")
        if kind == "html":
            html = "".join(f"<p>{p}</p>" for p in text.split("\n\n"))
            message.add_alternative(
                f"<html><body style='font-family:Arial'>{html}"
                "<div class='sig'><b>Sent from my phone</b></div></body></html>",
                subtype="html",
            )
        elif kind == "attachment":
            payload = rng.randbytes(rng.randint(20_000, 120_000))
            if rng.random() < 0.5:
                message.add_attachment(
                    b"%PDF-1.4\n" + payload,
                    maintype="application",
                    subtype="pdf",
                    filename=f"invoice-{i}.pdf",
                )
            else:
                message.add_attachment(
                    b"\x89PNG\r\n\x1a\n" + payload,
                    maintype="image",
                    subtype="png",
                    filename=f"photo {i}.png",
                )
        if message.is_multipart():
            message.set_boundary(f"=_part_{seed}_{i}_{rng.getrandbits(32):08x}")
        raw = message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        mail = Mail(
            raw, message_id.strip("<>"), kind, sender, parent.message_id if parent else None
        )
        mails.append(mail)
        if parent is None:
            roots.append(mail)
    return mails


def replies_before_parent(order: list[str], mails: list[Mail]) -> int:
    """Replies that reach the daemon before the mail they answer, in `order` (Message-IDs
    in UID order): each opens its thread's contact, which the parent joins after it."""
    by_id = {m.message_id: m for m in mails}
    seen: set[str] = set()
    early = 0
    for message_id in order:
        parent = by_id[message_id].parent
        early += parent is not None and parent not in seen
        seen.add(message_id)
    return early


_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.M | re.I)


def message_id_of(raw: bytes) -> str:
    """The Message-ID of one of the bench's own mails (without <>)."""
    found = _MESSAGE_ID.search(raw)
    if found is None:
        raise BenchError("a fetched mail has no Message-ID")
    return found.group(1).decode()


def _subject_of(mail: Mail) -> str:
    found = re.search(rb"^Subject: (.*)$", mail.raw, re.M)
    return found.group(1).decode().strip() if found else "your message"


# --- timers around the daemon's functions -----------------------------------------------


@dataclass
class Probe:
    """Durations of the daemon's steps, and when each message was stored (perf_counter)."""

    spans: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    first_fetch: float | None = None
    first_fetch_cpu: tuple[float, float] = (0.0, 0.0)  # user, system
    stored: dict[str, float] = field(default_factory=dict)
    last_stored_cpu: tuple[float, float] = (0.0, 0.0)
    stored_twice: list[str] = field(default_factory=list)
    fetched_at: dict[int, float] = field(default_factory=dict)  # UID -> its FETCH sent
    statements: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    commits: int = 0
    pushes: list[float] = field(default_factory=list)  # when each IDLE push came back

    def reset(self) -> None:
        self.spans.clear()
        self.first_fetch = None
        self.stored.clear()
        self.fetched_at.clear()
        self.statements.clear()
        self.commits = 0
        self.pushes.clear()

    def span(self, name: str, seconds: float) -> None:
        self.spans[name].append(seconds)


def cpu_now() -> tuple[float, float]:
    """This process's user and system CPU seconds so far (every thread)."""
    times = os.times()
    return times.user, times.system


def _timed_async(probe: Probe, name: str, original: Callable[..., Awaitable[Any]]) -> Any:
    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            probe.span(name, time.perf_counter() - start)

    return timed


def _timed_sync(probe: Probe, name: str, original: Callable[..., Any]) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            probe.span(name, time.perf_counter() - start)  # list.append: safe from a thread

    return timed


@contextlib.contextmanager
def instrumented(probe: Probe) -> Iterator[None]:
    """Timers around the daemon's steps (class and module attributes, put back after)."""
    patches: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, replacement: Any) -> None:
        patches.append((owner, name, getattr(owner, name)))
        setattr(owner, name, replacement)

    original_uid = aioimaplib.IMAP4.uid

    async def uid(self: Any, command: str, *criteria: str) -> Any:
        start = time.perf_counter()
        if command.lower() == "fetch":
            if probe.first_fetch is None:
                probe.first_fetch, probe.first_fetch_cpu = start, cpu_now()
            if criteria and criteria[0].isdigit():
                probe.fetched_at[int(criteria[0])] = start
        try:
            return await original_uid(self, command, *criteria)
        finally:
            probe.span(f"UID {command.upper()} round trip", time.perf_counter() - start)

    original_receive = MessageIntake.receive

    async def receive(self: MessageIntake, message: Any) -> Any:
        start = time.perf_counter()
        received = await original_receive(self, message)
        now = time.perf_counter()
        probe.span("intake.receive (lock, transaction, publish)", now - start)
        if not received.duplicate:
            if message.provider_id in probe.stored:
                probe.stored_twice.append(message.provider_id)
            probe.stored[message.provider_id] = now
            probe.last_stored_cpu = cpu_now()
        return received

    original_push = aioimaplib.IMAP4.wait_server_push

    async def wait_server_push(self: Any, *args: Any, **kwargs: Any) -> Any:
        push = await original_push(self, *args, **kwargs)
        probe.pushes.append(time.perf_counter())
        return push

    patch(aioimaplib.IMAP4, "uid", uid)
    patch(aioimaplib.IMAP4, "wait_server_push", wait_server_push)
    patch(MessageIntake, "receive", receive)
    patch(
        aioimaplib.IMAP4,
        "uid_search",
        _timed_async(probe, "UID SEARCH", aioimaplib.IMAP4.uid_search),
    )
    patch(aioimaplib.IMAP4, "noop", _timed_async(probe, "NOOP", aioimaplib.IMAP4.noop))
    patch(
        ImapSource, "_take", _timed_async(probe, "one message (ImapSource._take)", ImapSource._take)
    )
    patch(EmailChannel, "handle", _timed_async(probe, "EmailChannel.handle", EmailChannel.handle))
    patch(
        MessageIntake,
        "_store",
        _timed_async(probe, "store transaction (_store)", MessageIntake._store),
    )
    patch(StoreCursors, "save", _timed_async(probe, "cursor save transaction", StoreCursors.save))
    patch(
        channel_module,
        "parse_email",
        _timed_sync(probe, "parse_email (in its thread)", parse_email),
    )
    patch(
        channel_module,
        "keep_attachments",
        _timed_sync(probe, "keep_attachments (in its thread)", keep_attachments),
    )

    def statement(_conn: Any, _cursor: Any, text: str, *_args: Any) -> None:
        probe.statements[statement_kind(text)] += 1

    def commit(_conn: Any) -> None:
        probe.commits += 1

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", commit)
    try:
        yield
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
        event.remove(Engine, "commit", commit)
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)


_STATEMENT = re.compile(
    r"^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM)\b(?:.*?\bFROM\b)?\s*\(?\s*([\w.\"]+)",
    re.I | re.S,
)


def statement_kind(text: str) -> str:
    """ "INSERT INTO messages", "SELECT interactions": what a SQL statement does, where."""
    found = _STATEMENT.match(text)
    if found is None:
        return text.split(None, 1)[0].upper() if text.strip() else "?"
    return f"{found.group(1).upper()} {found.group(2).strip(chr(34))}"


# --- Dovecot and the store ----------------------------------------------------------------


def dovecot_cpu(server: DovecotServer) -> float:
    """User + system CPU so far of every live process in Dovecot's process group."""
    assert server.process is not None
    group, total = server.process.pid, 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == group:
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def imap_session(server: DovecotServer) -> imaplib.IMAP4:
    """A logged-in stdlib client (the bench's own, independent of the code measured)."""
    client = imaplib.IMAP4("127.0.0.1", server.port, timeout=30)
    client.login(USER, PASSWORD)
    return client


def unseen_count(server: DovecotServer) -> int:
    client = imap_session(server)
    try:
        client.select("INBOX", readonly=True)
        status, data = client.uid("SEARCH", "UNSEEN")
        assert status == "OK", data
        return len((data[0] or b"").split())
    finally:
        client.logout()


def open_mailbox(server: DovecotServer) -> int:
    """SELECT once (Dovecot indexes the Maildir's new mail): the number of messages."""
    client = imap_session(server)
    try:
        status, data = client.select("INBOX", readonly=True)
        assert status == "OK", data
        return int(data[0] or 0)
    finally:
        client.logout()


async def seed_customers(url: str) -> None:
    """The schema, and every other sender as a known customer (the pop finds them)."""
    await migrate.upgrade(url)
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            for n in range(0, SENDERS, 2):
                await customers.create_customer(
                    session,
                    name=f"Customer {n}",
                    emails=[f"customer{n}@example.net"],
                    region="GB",
                )
    finally:
        await engine.dispose()


def daemon_config(url: str, server: DovecotServer, folder: Path) -> Any:
    """The shipped config.yaml, on this store, no telephony, email from this Dovecot."""
    raw: dict[str, Any] = yaml.safe_load((ROOT / "config.yaml").read_text())
    raw["database"] = {"url": url}
    raw["pbx"] = {"mode": "off"}
    raw["web"]["sessions"] = "memory"
    channels = raw.setdefault("channels", {})
    channels["chat"] = {**channels.get("chat", {}), "enabled": False}
    channels["email"] = {
        "enabled": True,
        "queue": "email",
        "attachments_dir": str(folder / "attachments"),
        "imap": {
            "host": "127.0.0.1",
            "port": server.port,
            "ssl": False,
            "username": USER,
            "password": PASSWORD,
            "mailbox": "INBOX",
            "poll_seconds": 30,
        },
        "smtp": {"host": "127.0.0.1", "port": 2525, "starttls": False, "from_address": SUPPORT},
    }
    return parse_config(raw, {})


# --- baselines --------------------------------------------------------------------------


async def bare_fetch(server: DovecotServer, *, batch: int) -> tuple[float, list[bytes]]:
    """aioimaplib alone: every message of INBOX, `batch` UIDs per UID FETCH (1: as
    ImapSource does). Seconds from the first FETCH to the last reply, and the bodies."""
    client = aioimaplib.IMAP4(host="127.0.0.1", port=server.port, timeout=30)
    await client.wait_hello_from_server()
    await client.login(USER, PASSWORD)
    await client.select("INBOX")
    found = await client.uid_search("ALL", charset=None)
    uids = uids_of_search(found.lines)
    bodies: list[bytes] = []
    start = time.perf_counter()
    if batch == 1:
        for uid in uids:
            reply = await client.uid("fetch", str(uid), "(UID BODY.PEEK[])")
            body = body_of_fetch(reply.lines, uid)
            assert body is not None, uid
            bodies.append(body)
    else:
        for at in range(0, len(uids), batch):
            chunk = uids[at : at + batch]
            reply = await client.uid("fetch", f"{chunk[0]}:{chunk[-1]}", "(UID BODY.PEEK[])")
            bodies.extend(bytes(line) for line in reply.lines if isinstance(line, bytearray))
    elapsed = time.perf_counter() - start
    await client.logout()
    return elapsed, bodies


def bare_parse(raws: list[bytes]) -> float:
    """parse_email alone over the raw messages, in this thread: seconds."""
    start = time.perf_counter()
    for raw in raws:
        parse_email(
            raw,
            max_body_bytes=MAX_BODY_BYTES,
            max_attachment_bytes=MAX_ATTACHMENT_BYTES,
            mailbox_address=SUPPORT,
        )
    return time.perf_counter() - start


# --- the arrival phase's mail carrier --------------------------------------------------------


def append_paced(
    server: DovecotServer, mails: list[Mail], rate: float
) -> tuple[dict[str, tuple[float, int]], float]:
    """APPEND each mail at `rate` a second on one connection (run in a thread): when each
    APPEND completed (perf_counter) and its UID, by Message-ID; this thread's CPU seconds."""
    client = imap_session(server)
    cpu_start = time.thread_time()
    appended: dict[str, tuple[float, int]] = {}
    start = time.perf_counter()
    try:
        for n, mail in enumerate(mails):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            status, data = client.append("INBOX", "", None, mail.raw)
            done = time.perf_counter()
            found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            assert status == "OK" and found is not None, data
            appended[mail.message_id] = (done, int(found.group(1)))
    finally:
        cpu = time.thread_time() - cpu_start
        client.logout()
    return appended, cpu


# --- one round --------------------------------------------------------------------------------


def _quantile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def _until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running_dovecot(backlog: list[Mail]) -> AsyncIterator[DovecotServer]:
    server = DovecotServer()
    try:
        for mail in backlog:
            server.deliver_to_maildir(mail.raw)
        await server.start()
        yield server
    finally:
        await server.close()


async def one_round(
    mails: list[Mail],
    arrivals: list[Mail],
    *,
    rate: float,
    database_url: str | None,
    profile: cProfile.Profile | None,
) -> dict[str, Any]:
    """Baselines, the backlog and the arrival phase on a fresh Dovecot and store."""
    n = len(mails)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cc-bench-email-") as tmp:
        folder = Path(tmp)
        async with running_dovecot(mails) as server, scratch_database(database_url, folder) as url:
            in_box = await asyncio.to_thread(open_mailbox, server)
            if in_box != n:
                raise BenchError(f"Dovecot shows {in_box} messages of the {n} delivered")

            one_by_one, raws = await bare_fetch(server, batch=1)
            batched, batched_raws = await bare_fetch(server, batch=BATCH)
            if len(batched_raws) != n or sorted(map(len, batched_raws)) != sorted(map(len, raws)):
                raise BenchError("the batched FETCH did not return the same messages")
            parse_alone = bare_parse(raws)
            figures.update(
                bare_fetch_per_s=n / one_by_one,
                bare_fetch_ms=1000 * one_by_one / n,
                bare_fetch_batched_per_s=n / batched,
                bare_fetch_batched_ms=1000 * batched / n,
                parse_alone_ms=1000 * parse_alone / n,
                # Dovecot numbers a Maildir's new mail in its own order, not always the
                # order it was delivered in; APPENDs are numbered as they come.
                uid_order=[message_id_of(raw) for raw in raws]
                + [mail.message_id for mail in arrivals],
                mean_raw_kb=sum(map(len, raws)) / n / 1024,
            )

            await seed_customers(url)
            app = make_app(daemon_config(url, server, folder))
            daemon = app[DAEMON]
            published: dict[str, int] = {"queued": 0, "received": 0}

            async def on_queued(event: ContactQueued) -> None:
                published["queued"] += event.channel == "email"

            async def on_received(event: MessageReceived) -> None:
                published["received"] += event.channel == "email"

            daemon.bus.subscribe(ContactQueued, on_queued)
            daemon.bus.subscribe(MessageReceived, on_received)
            probe = Probe()
            runner = web.AppRunner(app)
            with instrumented(probe):
                dovecot_before = dovecot_cpu(server)
                if profile is not None:
                    profile.enable()
                await runner.setup()  # the daemon starts: the channel reads the backlog
                try:
                    await _until(lambda: len(probe.stored) >= n, 60 + n * 0.2, "the backlog")
                    if profile is not None:
                        profile.disable()
                    dovecot_after = dovecot_cpu(server)
                    assert probe.first_fetch is not None
                    last = max(probe.stored.values())
                    window = last - probe.first_fetch
                    user = probe.last_stored_cpu[0] - probe.first_fetch_cpu[0]
                    system = probe.last_stored_cpu[1] - probe.first_fetch_cpu[1]
                    cpu = user + system
                    figures.update(
                        backlog_per_s=n / window,
                        backlog_ms=1000 * window / n,
                        backlog_cpu_ms=1000 * cpu / n,
                        backlog_cpu_user_ms=1000 * user / n,
                        backlog_cpu_system_ms=1000 * system / n,
                        backlog_cpu_share=cpu / window,
                        dovecot_cpu_ms=1000 * (dovecot_after - dovecot_before) / n,
                        breakdown=breakdown(probe, window, n),
                        sql_per_message=sum(probe.statements.values()) / n,
                        commits_per_message=probe.commits / n,
                        sql_statements={k: v / n for k, v in probe.statements.items()},
                    )
                    source = _source(daemon)
                    await _until(lambda: source.handled >= n, 30, "the backlog marked seen")

                    # Arrival: mail comes while the daemon IDLEs.
                    await asyncio.sleep(0.5)
                    probe.reset()
                    cpu_start = sum(cpu_now())
                    appended, appender_cpu = await asyncio.to_thread(
                        append_paced, server, arrivals, rate
                    )
                    m = len(arrivals)
                    await _until(lambda: len(probe.stored) >= m, 60 + m * 0.2, "the arrivals")
                    cpu = sum(probe.last_stored_cpu) - cpu_start - appender_cpu
                    latencies = [probe.stored[k] - at for k, (at, _uid) in appended.items()]
                    # In the mailbox -> FETCH sent: Dovecot's IDLE push, DONE, SEARCH;
                    # FETCH sent -> stored: the daemon's own work on the message.
                    noticed = [probe.fetched_at[uid] - at for at, uid in appended.values()]
                    worked = [
                        probe.stored[k] - probe.fetched_at[uid]
                        for k, (_at, uid) in appended.items()
                    ]
                    # The first IDLE push after the APPEND, when it came before the FETCH.
                    pushed = [
                        next((p for p in probe.pushes if at <= p <= probe.fetched_at[uid]), None)
                        for at, uid in appended.values()
                    ]
                    to_push = [
                        p - at
                        for p, (at, _u) in zip(pushed, appended.values(), strict=True)
                        if p is not None
                    ]
                    push_to_fetch = [
                        probe.fetched_at[uid] - p
                        for p, (_at, uid) in zip(pushed, appended.values(), strict=True)
                        if p is not None
                    ]
                    figures.update(
                        arrival_to_push_median_ms=1000 * statistics.median(to_push or [0.0]),
                        push_to_fetch_median_ms=1000 * statistics.median(push_to_fetch or [0.0]),
                        arrival_found_by_push=len(to_push) / m,
                        arrival_rate=rate,
                        arrival_median_ms=1000 * statistics.median(latencies),
                        arrival_p99_ms=1000 * _quantile(latencies, 99),
                        arrival_max_ms=1000 * max(latencies),
                        arrival_to_fetch_median_ms=1000 * statistics.median(noticed),
                        arrival_to_fetch_p99_ms=1000 * _quantile(noticed, 99),
                        fetch_to_stored_median_ms=1000 * statistics.median(worked),
                        fetch_to_stored_p99_ms=1000 * _quantile(worked, 99),
                        arrival_cpu_ms=1000 * cpu / m,
                        arrival_sql_per_message=sum(probe.statements.values()) / m,
                    )
                    await _until(lambda: source.handled >= n + m, 30, "the arrivals marked seen")
                    await daemon.bus.drain()
                    order = figures.pop("uid_order")
                    figures.update(
                        await check_round(daemon, server, mails + arrivals, order, published, probe)
                    )
                finally:
                    await runner.cleanup()
    return figures


def _source(daemon: Any) -> ImapSource:
    """The running email channel's IMAP source (found through the intake's token reader)."""
    reader = daemon.messages.read_token if daemon.messages is not None else None
    channel = getattr(reader, "__self__", None)
    if not isinstance(channel, EmailChannel):
        raise BenchError("the email channel did not start (see the log above)")
    return channel.source


async def check_round(
    daemon: Any,
    server: DovecotServer,
    mails: list[Mail],
    order: list[str],
    published: dict[str, int],
    probe: Probe,
) -> dict[str, Any]:
    """Stored exactly once, routed, nothing left unseen: the counts, and `problems`."""
    async with daemon.sessionmaker() as session:
        rows = (
            await session.execute(
                select(StoredMessage.provider_id, func.count())
                .where(StoredMessage.channel == "email", StoredMessage.direction == "inbound")
                .group_by(StoredMessage.provider_id)
            )
        ).all()
        contacts = int(
            await session.scalar(
                select(func.count()).select_from(Interaction).where(Interaction.channel == "email")
            )
            or 0
        )
    counts = {str(pid): int(c) for pid, c in rows}
    expected = {m.message_id for m in mails}
    if sorted(order) != sorted(expected):
        raise BenchError("the mailbox does not hold exactly the bench's mails")
    early = replies_before_parent(order, mails)
    # One contact per thread, whichever of its mails came first (see replies_before_parent).
    threads = sum(m.kind != "reply" for m in mails)
    routed = sum(1 for c in daemon.routing.contacts.values() if c.channel == "email")
    unseen = await asyncio.to_thread(unseen_count, server)
    problems = []
    if set(counts) != expected:
        problems.append(
            f"stored {len(set(counts) & expected)} of {len(expected)} mails, "
            f"{len(set(counts) - expected)} unknown"
        )
    if any(c != 1 for c in counts.values()) or probe.stored_twice:
        problems.append("a mail was stored more than once")
    if contacts != threads or published["queued"] != threads or routed != threads:
        problems.append(
            f"{threads} contacts expected: {contacts} stored, {published['queued']} "
            f"ContactQueued, {routed} held by routing"
        )
    if published["received"] != len(mails) - threads:
        problems.append(f"{published['received']} MessageReceived, {len(mails) - threads} expected")
    if unseen:
        problems.append(f"{unseen} messages left unseen in the mailbox")
    return {
        "replies_before_parent": early,
        "stored": sum(counts.values()),
        "stored_distinct": len(counts),
        "contacts": contacts,
        "contact_queued": published["queued"],
        "message_received": published["received"],
        "routed": routed,
        "unseen_left": unseen,
        "problems": problems,
    }


def breakdown(probe: Probe, window: float, n: int) -> dict[str, dict[str, float]]:
    """Per step: total seconds, share of the backlog window, per-message median (ms)."""
    out: dict[str, dict[str, float]] = {}
    for name, spans in sorted(probe.spans.items(), key=lambda item: -sum(item[1])):
        out[name] = {
            "calls": len(spans),
            "total_s": sum(spans),
            "share": sum(spans) / window,
            "median_ms": 1000 * statistics.median(spans),
            "per_message_ms": 1000 * sum(spans) / n,
        }
    return out


# --- the run: rounds, medians, the table ---------------------------------------------------

SCALARS = (
    ("backlog_per_s", "daemon: messages/s, first FETCH to last stored", "{:.1f}"),
    ("backlog_ms", "daemon: wall ms per message", "{:.2f}"),
    ("backlog_cpu_ms", "daemon: process CPU ms per message", "{:.2f}"),
    ("backlog_cpu_user_ms", "daemon: of which user CPU ms", "{:.2f}"),
    ("backlog_cpu_system_ms", "daemon: of which system CPU ms", "{:.2f}"),
    ("backlog_cpu_share", "daemon: CPU busy share of the window", "{:.2f}"),
    ("dovecot_cpu_ms", "Dovecot: CPU ms per message", "{:.2f}"),
    ("bare_fetch_per_s", "baseline: aioimaplib 1 UID/FETCH, messages/s", "{:.1f}"),
    ("bare_fetch_ms", "baseline: aioimaplib 1 UID/FETCH, ms per message", "{:.2f}"),
    ("bare_fetch_batched_per_s", f"baseline: aioimaplib {BATCH} UIDs/FETCH, messages/s", "{:.1f}"),
    ("bare_fetch_batched_ms", f"baseline: aioimaplib {BATCH} UIDs/FETCH, ms per message", "{:.2f}"),
    ("parse_alone_ms", "baseline: parse_email alone, ms per message", "{:.2f}"),
    ("arrival_median_ms", "arrival: in mailbox -> stored, median ms", "{:.1f}"),
    ("arrival_p99_ms", "arrival: in mailbox -> stored, p99 ms", "{:.1f}"),
    ("arrival_max_ms", "arrival: in mailbox -> stored, max ms", "{:.1f}"),
    ("arrival_to_fetch_median_ms", "arrival: in mailbox -> FETCH sent, median ms", "{:.1f}"),
    ("arrival_to_fetch_p99_ms", "arrival: in mailbox -> FETCH sent, p99 ms", "{:.1f}"),
    ("arrival_to_push_median_ms", "arrival: in mailbox -> IDLE push, median ms", "{:.1f}"),
    ("push_to_fetch_median_ms", "arrival: IDLE push -> FETCH (queued), median ms", "{:.1f}"),
    ("arrival_found_by_push", "arrival: share fetched after a push", "{:.2f}"),
    ("fetch_to_stored_median_ms", "arrival: FETCH sent -> stored, median ms", "{:.1f}"),
    ("fetch_to_stored_p99_ms", "arrival: FETCH sent -> stored, p99 ms", "{:.1f}"),
    ("arrival_cpu_ms", "arrival: process CPU ms per message", "{:.2f}"),
    ("sql_per_message", "daemon: SQL statements per message (backlog)", "{:.1f}"),
    ("commits_per_message", "daemon: commits per message (backlog)", "{:.2f}"),
    ("arrival_sql_per_message", "arrival: SQL statements per message", "{:.1f}"),
    ("share_fetch", "share: bare fetch / daemon ms per message", "{:.2f}"),
    ("share_parse", "share: bare parse / daemon ms per message", "{:.2f}"),
    ("ratio_vs_bare_fetch", "ratio: daemon / bare fetch (messages/s)", "{:.2f}"),
)


def add_ratios(figures: dict[str, Any]) -> None:
    figures["share_fetch"] = figures["bare_fetch_ms"] / figures["backlog_ms"]
    figures["share_parse"] = figures["parse_alone_ms"] / figures["backlog_ms"]
    figures["ratio_vs_bare_fetch"] = figures["backlog_per_s"] / figures["bare_fetch_per_s"]


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every figure over the rounds (the breakdown step by step)."""
    out: dict[str, Any] = {
        key: statistics.median(r[key] for r in rounds) for key, _label, _fmt in SCALARS
    }
    steps = {name for r in rounds for name in r["breakdown"]}
    kinds = {k for r in rounds for k in r["sql_statements"]}
    out["sql_statements"] = {
        k: statistics.median(r["sql_statements"].get(k, 0.0) for r in rounds) for k in kinds
    }
    out["breakdown"] = {
        name: {
            stat: statistics.median(r["breakdown"].get(name, {}).get(stat, 0.0) for r in rounds)
            for stat in ("calls", "total_s", "share", "median_ms", "per_message_ms")
        }
        for name in sorted(steps, key=lambda s: -rounds[0]["breakdown"].get(s, {}).get("share", 0))
    }
    return out


def print_statements(rounds: list[dict[str, Any]]) -> None:
    """The backlog's SQL statements per message, by kind (medians over the rounds)."""
    kinds = {k for r in rounds for k in r["sql_statements"]}
    rows = sorted(
        ((statistics.median(r["sql_statements"].get(k, 0.0) for r in rounds), k) for k in kinds),
        reverse=True,
    )
    print("\nSQL statements per stored message in the backlog (median over the rounds):")
    for per, kind in rows:
        if per >= 0.005:
            print(f"  {per:6.2f}  {kind}")


def print_table(rounds: list[dict[str, Any]], middle: dict[str, Any]) -> None:
    head = "".join(f"{'round ' + str(i + 1):>11}" for i in range(len(rounds)))
    print(f"{'figure':<52}{head}{'median':>11}")
    for key, label, fmt in SCALARS:
        cells = "".join(f"{fmt.format(r[key]):>11}" for r in rounds)
        print(f"{label:<52}{cells}{fmt.format(middle[key]):>11}")
    print()
    print("where the backlog's time goes (medians over the rounds; steps nest: a message's")
    print("_take holds its FETCH, handle and STORE; handle holds parse, attachments, intake)")
    print(f"{'step':<48}{'calls':>7}{'share':>8}{'ms/msg':>9}{'median ms':>11}")
    for name, stat in middle["breakdown"].items():
        print(
            f"{name:<48}{stat['calls']:>7.0f}{stat['share']:>8.2f}"
            f"{stat['per_message_ms']:>9.2f}{stat['median_ms']:>11.2f}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, help="backlog size (default 2000, quick 200)")
    parser.add_argument("--arrivals", type=int, help="mails arriving live (default 200, quick 40)")
    parser.add_argument("--rate", type=float, help="arrivals per second (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians over them")
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    parser.add_argument("--database-url", help="store URL (default: SQLite in a temp dir)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile round 1's backlog")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    args.messages = sizes["messages"] if args.messages is None else args.messages
    args.arrivals = sizes["arrivals"] if args.arrivals is None else args.arrivals
    args.rate = sizes["rate"] if args.rate is None else args.rate
    if args.messages < 1 or args.arrivals < 1 or args.rounds < 1 or not args.rate > 0:
        parser.error("--messages, --arrivals and --rounds must be at least 1, --rate positive")
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    everything = make_mails(args.messages + args.arrivals, args.seed)
    mails, arrivals = everything[: args.messages], everything[args.messages :]
    profile = cProfile.Profile() if args.profile else None
    rounds = []
    for index in range(args.rounds):
        figures = await one_round(
            mails,
            arrivals,
            rate=args.rate,
            database_url=args.database_url,
            profile=profile if index == 0 else None,
        )
        add_ratios(figures)
        rounds.append(figures)
    middle = medians(rounds)
    kinds = {
        k: sum(m.kind == k for m in everything) for k in ("plain", "html", "attachment", "reply")
    }
    print(
        f"Email intake, real Dovecot + daemon in-process, {backend_name(args.database_url)} "
        f"store: {args.messages} backlog + {args.arrivals} arriving at {args.rate:g}/s, "
        f"{args.rounds} rounds; {describe_load()}"
    )
    print(f"mails: {kinds}, mean {middle_raw(rounds):.1f} KB")
    print()
    print_table(rounds, middle)
    print_statements(rounds)
    problems = [p for r in rounds for p in r["problems"]]
    print()
    print(
        "problems: "
        + ("; ".join(problems) if problems else "none (every mail stored once, routed)")
    )
    if profile is not None:
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(40)
        print("\ncProfile of round 1's backlog (event-loop thread only; cumulative):")
        print("\n".join(text.getvalue().splitlines()[:60]))
    return {
        "bench": "email_intake",
        "backend": backend_name(args.database_url),
        "messages": args.messages,
        "arrivals": args.arrivals,
        "rate": args.rate,
        "rounds": len(rounds),
        "kinds": kinds,
        "median": middle,
        "per_round": [{k: r[k] for k, _l, _f in SCALARS} for r in rounds],
        "counts": [
            {
                k: r[k]
                for k in (
                    "stored",
                    "stored_distinct",
                    "contacts",
                    "contact_queued",
                    "message_received",
                    "routed",
                    "unseen_left",
                    "replies_before_parent",
                )
            }
            for r in rounds
        ],
        "problems": problems,
        "ok": not problems,
    }


def middle_raw(rounds: list[dict[str, Any]]) -> float:
    """The median over the rounds of the mean fetched mail's size (KB)."""
    return float(statistics.median(r["mean_raw_kb"] for r in rounds))


def _terminated(_signal: int, _frame: Any) -> None:
    # Exit as on Ctrl-C: the finally blocks and atexit stop the Dovecot we started.
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        figures = asyncio.run(run(args))
    except BenchError as exc:
        print(f"email_intake: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:
        if type(exc).__name__ in ("Skipped", "Failed"):  # no dovecot (require_server)
            print(f"email_intake: {exc}", file=sys.stderr)
            return 2
        raise
    print(json.dumps(figures, sort_keys=True))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
