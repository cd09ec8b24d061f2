"""FastAGI: 2,000 concurrent IVR sessions through the daemon's IVR path and store.

Run from the repository root:

    .venv/bin/python bench/fastagi.py [--quick] [--sessions N] [--runs N]
        [--database-url URL]

The server is the daemon's own: adapters/asterisk/pbx.py's AsteriskPbx (only its FastAGI
server is started, on 127.0.0.1 port 0; no AMI), in a benchmark process of its own, with
the daemon's store as contact_center/app.py opens it (migrated schema, engine, the SQLite
fast intake, the outbox that holds writes the store cannot take). Its route `ivr` is the
path a real call takes: open_contact records the interaction, the channel is tagged (SET
VARIABLE CC_INTERACTION_ID), adapters/asterisk/ivr_runner.py's run_flow runs the bundled
flow ivr_flows/main.yaml (the caller look-ups read the store; the path and keys are
written to it), then the call leaves for cc-holding (SET CONTEXT / EXTENSION / PRIORITY)
and hand_to_routing stores the queue and the routing request and publishes ContactQueued
(counted here: nothing routes). The store is empty of customers, so look-ups find nobody.
It is a fresh temporary SQLite file per run, or with `--database-url
postgresql+asyncpg://127.0.0.1:5432/test` a scratch PostgreSQL database per run
(cc_bench_<random>, dropped at the end). The flow's clock is fixed on a Tuesday morning,
inside its opening hours. Logging stays at WARNING (the daemon's default INFO would add
one log line per session).

Each run starts a fresh server process (multiprocessing spawn), so every run's memory is
measured from the same cold start: a Python process keeps the memory its first sessions
took (see "kept" below, even after malloc_trim) and reuses it for later ones, so a second
run in the same process would show almost no growth.

Another process plays Asterisk: it opens every connection first,
and once the server has accepted them all, sends each one the agi_* environment a real
Asterisk 22 sent (tests/fixtures/asterisk-traces/h2_fastagi_ivr_to_queue, with
agi_channel, agi_uniqueid and agi_callerid made per session) and answers every command at
once the way Asterisk does (`200 result=0 endpos=...` for a prompt played out, the keys
for GET DATA, `200 result= (timeout)` for silence, `200 result=1` for SET VARIABLE,
`200 result=0` for SET CONTEXT/EXTENSION/PRIORITY). Callers take turns at four paths:

  support   menu key 2                                  6 commands
  billing   key 1, account 12345#, not found prompt     8 commands
  spanish   key 3                                       6 commands
  silence   no key, "invalid option" prompt, then 2     8 commands

No audio time is simulated, so the figures are the server's cost, not a call's length.
A session is lost when it does not begin with the channel tagged and end with the server
closing the socket after the exit commands above, when a scripted key is left unused,
when the server's counters show an error, when the queues the flow chose differ from the
callers' paths, when no ContactQueued was published for it, or when its interaction is
not in the store with its queue, IVR path and routing request once the outbox is empty
(waited for up to STORE_TIMEOUT after the last session).

Measured per run: total time from the first environment sent to the last socket closed,
sessions per second, the time until every write was in the store, each session's
duration (environment sent to socket closed) median and p99, the contacts the outbox had
to hold, the server process's CPU time per session (store writes included), and its
memory from
/proc/self/status: peak RSS growth (VmHWM at the end, reset with /proc/self/clear_refs
before the run, minus VmRSS before the run) and that divided by the sessions, RSS with
every connection accepted and idle, and RSS still held after the run (garbage collected,
malloc_trim). The table shows each run and the medians; the last line is a JSON object
of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds routing.py, which must not shadow the routing package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from adapters.asterisk.pbx import INTERACTION_VAR, AsteriskPbx  # noqa: E402
from adapters.asterisk.settings import AgiConfig, PbxConfig  # noqa: E402
from bench.scratch_db import backend_name, describe_load, load_average, scratch_database  # noqa: E402
from crm_store import migrate  # noqa: E402
from crm_store.database import is_sqlite, make_engine, make_sessionmaker  # noqa: E402
from crm_store.fast_intake import SqliteIntake  # noqa: E402
from crm_store.models import Interaction  # noqa: E402
from ivr_flows.loader import load_flows  # noqa: E402
from ivr_flows.model import Flow  # noqa: E402
from routing.events import ContactQueued  # noqa: E402
from routing.intake import StoreOutbox  # noqa: E402

TRACES = ROOT / "tests" / "fixtures" / "asterisk-traces"
TRACE_ENV_FILE = TRACES / "h2_fastagi_ivr_to_queue.agi-from-asterisk.txt"
FLOW = "main"
HOLDING_CONTEXT = PbxConfig().holding_context
READ_TIMEOUT = PbxConfig().agi.read_timeout_seconds  # the daemon's default, 30 s
# Tuesday 3 March 2026, 10:00 in London (GMT): inside main.yaml's opening hours.
FLOW_NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
FULL_SESSIONS, QUICK_SESSIONS, RUNS = 2000, 200, 3
CONNECT_CONCURRENCY = 256  # connects in flight at once (the server's backlog is 1,024)
RUN_TIMEOUT = 120.0  # seconds for every session of a run to end
STORE_TIMEOUT = 60.0  # seconds, after the last session, for every held write to be stored
REGION = "GB"

# The caller paths: the GET DATA replies each one gives, in order, and the queue it ends in.
PATHS: tuple[tuple[str, tuple[bytes, ...], str], ...] = (
    ("support", (b"200 result=2\n",), "support"),
    ("billing", (b"200 result=1\n", b"200 result=12345\n"), "billing"),
    ("spanish", (b"200 result=3\n",), "spanish"),
    ("silence", (b"200 result= (timeout)\n", b"200 result=2\n"), "support"),
)
# Prompt lengths as Asterisk reports them (8 kHz samples played) when played out.
ENDPOS = {b"welcome": 26400, b"invalid-option": 14720, b"account-not-found": 19840}
EXIT_COMMANDS = [
    f"SET CONTEXT {HOLDING_CONTEXT}".encode(),
    b"SET EXTENSION s",
    b"SET PRIORITY 1",
]


# --- the Asterisk side (another process) ------------------------------------------------


def environment_template() -> list[tuple[bytes, bytes]]:
    """The recorded environment block as (key, value) lines, in Asterisk's order."""
    block = TRACE_ENV_FILE.read_bytes().split(b"\n\n", 1)[0]
    return [(k, v) for k, _, v in (line.partition(b": ") for line in block.split(b"\n"))]


def environment(template: list[tuple[bytes, bytes]], n: int) -> bytes:
    """Session n's environment: its own channel, uniqueid and caller number."""
    number = b"%d" % (5550000 + n)
    own = {
        b"agi_channel": b"Local/%s@simcaller-%08x;1" % (number, n),
        b"agi_uniqueid": b"1795327500.%d" % (100 + 2 * n),
        b"agi_callerid": number,
    }
    return b"".join(b"%s: %s\n" % (k, own.get(k, v)) for k, v in template) + b"\n"


class FakeAsterisk(asyncio.Protocol):
    """One AGI() call as Asterisk runs it: the environment, then a reply per command."""

    def __init__(self, env: bytes, keys: tuple[bytes, ...], done: asyncio.Future[None]) -> None:
        self.env = env
        self.keys = list(keys)
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.commands: list[bytes] = []
        self.problems: list[str] = []
        self.server_closed = False
        self.started = 0.0
        self.ended = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def go(self) -> None:
        """Send the environment: the server's handler starts."""
        assert self.transport is not None
        self.started = time.perf_counter()
        self.transport.write(self.env)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        lines = (self.buffer + data).split(b"\n")
        self.buffer = lines.pop()
        out = b"".join(self.reply(line) for line in lines)
        if out:
            self.transport.write(out)

    def reply(self, line: bytes) -> bytes:
        """What Asterisk 22 answers to a command (res_agi.c; see the recorded traces)."""
        self.commands.append(line)
        if line.startswith(b"STREAM FILE "):
            name = line.split(b" ", 3)[2]
            return b"200 result=0 endpos=%d\n" % ENDPOS.get(name, 16000)
        if line.startswith(b"GET DATA "):
            if self.keys:
                return self.keys.pop(0)
            self.problems.append(f"GET DATA beyond the script: {line!r}")
            return b"200 result= (timeout)\n"
        if line.startswith(b"SET VARIABLE ") or line.startswith(b"VERBOSE "):
            return b"200 result=1\n"
        if line.startswith((b"SET CONTEXT ", b"SET EXTENSION ", b"SET PRIORITY ")):
            return b"200 result=0\n"
        if line == b"ANSWER" or line.startswith(b"GET VARIABLE "):
            return b"200 result=0\n"
        if line == b"HANGUP":
            return b"200 result=1\nHANGUP\n"
        self.problems.append(f"unexpected command {line!r}")
        return b"510 Invalid or unknown command\n"

    def eof_received(self) -> bool | None:
        self.server_closed = True
        return None  # close our side too, as Asterisk does when the AGI ends

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = time.perf_counter()
        if exc is not None:
            self.problems.append(f"connection lost: {exc}")
        if not self.done.done():
            self.done.set_result(None)

    def verdict(self) -> str | None:
        """Why this session failed, or None."""
        if not self.done.done():
            return "did not end in time"
        if self.problems:
            return self.problems[0]
        if not self.server_closed:
            return "the server did not close the connection"
        if self.keys:
            return f"{len(self.keys)} scripted key replies unused"
        if not self.commands[0].startswith(f"SET VARIABLE {INTERACTION_VAR} ".encode()):
            return f"the channel was not tagged first: {self.commands[:1]!r}"
        if self.commands[-3:] != EXIT_COMMANDS:
            return f"did not leave for the holding context: {self.commands[-3:]!r}"
        return None


def asterisk_main(port: int, sessions: int, conn: Connection) -> None:
    """Entry point of the second process."""
    raise_fd_limit(sessions)
    asyncio.run(_asterisk(port, sessions, conn))


async def _asterisk(port: int, sessions: int, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    template = environment_template()
    calls: list[FakeAsterisk] = []
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(n: int) -> None:
        call = FakeAsterisk(
            environment(template, n), PATHS[n % len(PATHS)][1], loop.create_future()
        )
        async with limit:
            await loop.create_connection(lambda: call, "127.0.0.1", port)
        calls.append(call)

    started = time.perf_counter()
    await asyncio.gather(*(connect(n) for n in range(sessions)))
    conn.send(("connected", len(calls), time.perf_counter() - started))
    conn.recv()  # "go": the server has accepted them all

    # Everything the load generator builds from here on is short-lived; its own garbage
    # collections would only delay the replies the server waits for.
    gc.collect()
    gc.freeze()
    go, cpu = time.perf_counter(), time.process_time()
    for call in calls:
        call.go()
    await asyncio.wait([call.done for call in calls], timeout=RUN_TIMEOUT)
    cpu = time.process_time() - cpu
    last = max((c.ended for c in calls if c.done.done()), default=time.perf_counter())
    failures = Counter(v for v in (c.verdict() for c in calls) if v is not None)
    for call in calls:
        if call.transport is not None:
            call.transport.abort()
    conn.send(
        {
            "started": len(calls),
            "completed": sum(1 for c in calls if c.done.done() and c.verdict() is None),
            "failures": dict(failures),
            "total_s": last - go,
            "durations_ms": [(c.ended - c.started) * 1000 for c in calls if c.done.done()],
            "commands": sum(len(c.commands) for c in calls),
            "cpu_s": cpu,
        }
    )


# --- the server side (a fresh process per run) ------------------------------------------


@dataclass
class QueuedEvents:
    """The bus: what routing would be told, counted (nothing routes in this bench)."""

    queued: Counter[str] = field(default_factory=Counter)
    ids: set[int] = field(default_factory=set)
    others: Counter[str] = field(default_factory=Counter)

    def publish(self, event: Any) -> None:
        """Count a ContactQueued by queue; anything else by its type."""
        if isinstance(event, ContactQueued):
            self.queued[event.queue] += 1
            self.ids.add(event.interaction_id)
        else:
            self.others[type(event).__name__] += 1


@dataclass
class Store:
    """The daemon's store as contact_center/app.py opens it: engine, the SQLite fast
    intake, the outbox that holds writes the store cannot take now."""

    url: str
    engine: Any
    sessionmaker: Any
    fast: SqliteIntake | None
    outbox: StoreOutbox

    @classmethod
    async def open(cls, url: str) -> Store:
        """Create the schema (migrations, as a new daemon does), then open."""
        await migrate.upgrade(url)
        engine = make_engine(url)
        sessionmaker = make_sessionmaker(engine)
        fast = await SqliteIntake.open(url) if is_sqlite(url) else None
        outbox = StoreOutbox(sessionmaker, fast=fast)
        await outbox.start()
        return cls(url, engine, sessionmaker, fast, outbox)

    async def close(self) -> None:
        """Stop the outbox (its last flush), close the intake and the engine."""
        await self.outbox.stop()
        if self.fast is not None:
            await self.fast.close()
        await self.engine.dispose()

    async def recorded(self, sessions: int) -> dict[str, int]:
        """Sessions whose interaction is in the store with its queue, IVR path and
        routing request, by the session number in its uniqueid; and what is not."""
        async with self.sessionmaker() as db:
            rows = (
                await db.execute(
                    select(
                        Interaction.external_id,
                        Interaction.queue,
                        Interaction.ivr_path,
                        Interaction.routing,
                    ).where(Interaction.channel == "voice")
                )
            ).all()
        complete = 0
        for external_id, queue, path, routing in rows:
            n = (int(str(external_id).rsplit(".", 1)[1]) - 100) // 2
            if 0 <= n < sessions and queue == PATHS[n % len(PATHS)][2] and path and routing:
                complete += 1
        return {"interactions": len(rows), "complete": complete}


def daemon_ivr(flow: Flow, store: Store, bus: QueuedEvents) -> AsteriskPbx:
    """The daemon's AsteriskPbx, whose FastAGI route `ivr` is the real IVR path: open the
    contact, tag the channel, run_flow (look-ups and the path recorded in the store),
    then hand_to_routing (queue and routing request stored, ContactQueued published).
    Only its FastAGI server is started: no AMI connection is made."""
    config = PbxConfig(agi=AgiConfig(host="127.0.0.1", port=0))
    return AsteriskPbx(
        config,
        bus=bus,
        sessionmaker=store.sessionmaker,
        flows={FLOW: flow},
        default_flow=FLOW,
        region=REGION,
        fast_intake=store.fast,
        outbox=store.outbox,
        ivr_clock=lambda: FLOW_NOW,
    )


def raise_fd_limit(sessions: int) -> None:
    """One socket per session plus some: lift the soft limit towards the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = sessions + 256
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            sys.exit(f"open files limit {hard} is below the {needed} this run needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def memory_kb() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in kB."""
    figures: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                figures[key] = int(value.split()[0])
    return figures


def settle() -> None:
    """Collect garbage and give freed heap pages back to the system."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_peak() -> bool:
    """Restart VmHWM at the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # 5: reset the peak resident set size (VmHWM)
    except OSError:
        return False
    return True


async def _receive(conn: Connection, within: float) -> Any:
    """The next message on the pipe, without a thread (the loop watches its fd)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await asyncio.wait_for(ready, within)
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


async def _until(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def expected_queues(sessions: int) -> Counter[str]:
    """The queue each caller's path ends in, counted."""
    return Counter(PATHS[n % len(PATHS)][2] for n in range(sessions))


async def one_run(flow: Flow, sessions: int, database_url: str | None) -> dict[str, Any]:
    """Serve `sessions` concurrent IVR sessions from a fresh server and store; the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        async with scratch_database(database_url, Path(tmp)) as url:
            store = await Store.open(url)
            try:
                return await _serve(flow, sessions, store)
            finally:
                await store.close()


class OutageCounter(logging.Handler):
    """Counts the intake's warnings that the store could not take a write (the outbox
    then holds writes until it can): how often the store fell behind."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        """One more warning."""
        self.count += 1


async def _serve(flow: Flow, sessions: int, store: Store) -> dict[str, Any]:
    bus = QueuedEvents()
    outages, lookups = OutageCounter(), OutageCounter()
    logging.getLogger("routing.intake").addHandler(outages)
    # "IVR look-up without the store", "IVR could not record ...": served, not stored yet.
    logging.getLogger("adapters.asterisk.ivr_runner").addHandler(lookups)
    pbx = daemon_ivr(flow, store, bus)
    server = pbx.agi
    await server.start()
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    asterisk = ctx.Process(target=asterisk_main, args=(server.port, sessions, theirs))
    try:
        settle()
        hwm_reset = reset_peak()
        before = memory_kb()
        asterisk.start()
        theirs.close()
        _, connected, connect_s = await _receive(ours, RUN_TIMEOUT)
        await _until(lambda: server.stats.connections >= connected, 30.0)
        idle = memory_kb()
        cpu = time.process_time()
        ours.send("go")
        go = time.perf_counter()
        clients = await _receive(ours, RUN_TIMEOUT + 30)
        await _until(lambda: server.active_sessions == 0, 10.0)
        cpu_sessions = time.process_time() - cpu
        # Writes the store could not take at once wait in the outbox: a session counts
        # as stored only once they are in (or lost if they are not within STORE_TIMEOUT).
        held_at_end = store.outbox.size
        stored = await _until(lambda: store.outbox.depth == 0, STORE_TIMEOUT)
        stored_s = time.perf_counter() - go
        cpu = time.process_time() - cpu
        after = memory_kb()
        stats = server.stats
    finally:
        await server.stop()
        asterisk.join(30)
        if asterisk.is_alive():
            asterisk.kill()
    recorded = await store.recorded(sessions)
    settle()
    retained = memory_kb()["VmRSS"] - before["VmRSS"]

    errors = {
        name: value
        for name in (
            "early_closes",
            "timeouts",
            "protocol_errors",
            "unknown_scripts",
            "handler_errors",
            "caller_hangups",
        )
        if (value := getattr(stats, name))
    }
    expected = expected_queues(sessions)
    wrong_queues = sum(((expected - bus.queued) + (bus.queued - expected)).values())
    durations = clients["durations_ms"]
    peak = (after["VmHWM"] if hwm_reset else max(after["VmHWM"], after["VmRSS"])) - before["VmRSS"]
    # Lost: a caller not sent to the holding context, or a contact whose record, queue,
    # IVR path or routing request never reached the store, or routing never told.
    lost = max(
        sessions - clients["completed"],
        sessions - recorded["complete"],
        sessions - len(bus.ids),
        sum(errors.values()),
        wrong_queues,
    )
    return {
        "sessions": sessions,
        "backend": backend_name(store.url),
        "database": make_url(store.url).database,
        "started": clients["started"],
        "completed": clients["completed"],
        "failed": lost,
        "client_failures": clients["failures"],
        "server_errors": errors,
        "wrong_outcomes": wrong_queues,
        "served": stats.sessions_served,
        "queued": dict(bus.queued),
        "stored_interactions": recorded["interactions"],
        "stored_complete": recorded["complete"],
        "held_at_end": held_at_end,
        "held_contacts": store.outbox.held_contacts,
        "store_outages": outages.count,
        "ivr_store_warnings": lookups.count,
        "all_stored": stored,
        "commands": clients["commands"],
        "connect_s": connect_s,
        "total_s": clients["total_s"],
        "stored_s": stored_s,
        "sessions_per_s": sessions / clients["total_s"],
        "stored_sessions_per_s": sessions / stored_s,
        "session_median_ms": statistics.median(durations) if durations else 0.0,
        "session_p99_ms": _p(durations, 0.99) if durations else 0.0,
        "session_max_ms": max(durations, default=0.0),
        "cpu_us_per_session": cpu / sessions * 1e6,
        "sessions_cpu_us_per_session": cpu_sessions / sessions * 1e6,
        # Server CPU over the run's wall time: near 1 means the server's core was the limit.
        "server_busy": cpu / stored_s,
        "asterisk_cpu_us_per_session": clients["cpu_s"] / sessions * 1e6,
        "rss_before_kb": before["VmRSS"],
        "peak_rss_growth_kb": peak,
        "peak_kb_per_session": peak / sessions,
        "idle_connected_kb_per_session": (idle["VmRSS"] - before["VmRSS"]) / sessions,
        "retained_kb": retained,
        "hwm_reset": hwm_reset,
    }


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def server_main(sessions: int, database_url: str | None, conn: Connection) -> None:
    """Entry point of one run's server process: serve the run, send back its figures."""
    raise_fd_limit(sessions)
    # The daemon's default is INFO; a line per session would be measured as well.
    logging.basicConfig(level=logging.WARNING)
    flow = load_flows(ROOT / "ivr_flows")[FLOW]
    conn.send(asyncio.run(one_run(flow, sessions, database_url)))


def benchmark(sessions: int, runs: int, database_url: str | None) -> dict[str, Any]:
    """`runs` runs of `sessions` concurrent sessions, each run's server in a fresh
    process; the per-run figures and their medians."""
    ctx = mp.get_context("spawn")
    per_run: list[dict[str, Any]] = []
    for _ in range(runs):
        load = load_average()[0]
        ours, theirs = ctx.Pipe()
        server = ctx.Process(target=server_main, args=(sessions, database_url, theirs))
        server.start()
        theirs.close()
        try:
            per_run.append({**ours.recv(), "load_1m": load})
        except EOFError:
            sys.exit(f"the server process of run {len(per_run) + 1} died")
        finally:
            server.join(60)
    medians = {
        key: statistics.median(run[key] for run in per_run)
        for key in (
            "connect_s",
            "total_s",
            "stored_s",
            "sessions_per_s",
            "stored_sessions_per_s",
            "session_median_ms",
            "session_p99_ms",
            "cpu_us_per_session",
            "sessions_cpu_us_per_session",
            "server_busy",
            "asterisk_cpu_us_per_session",
            "peak_rss_growth_kb",
            "peak_kb_per_session",
            "idle_connected_kb_per_session",
            "retained_kb",
            "load_1m",
        )
    }
    return {
        "bench": "fastagi",
        "flow": FLOW,
        "sessions": sessions,
        "runs": runs,
        "started": sum(run["started"] for run in per_run),
        "completed": sum(run["completed"] for run in per_run),
        "failed": sum(run["failed"] for run in per_run),
        "commands_per_session": per_run[0]["commands"] / sessions,
        **medians,
        "per_run": per_run,
    }


def main() -> None:
    """Run the benchmark and print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SESSIONS} sessions")
    parser.add_argument("--sessions", type=int, help=f"concurrent sessions ({FULL_SESSIONS})")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs, medians shown ({RUNS})")
    parser.add_argument(
        "--database-url",
        help="the store: a SQLite URL (that file; a fresh temporary one by default) or a"
        " PostgreSQL URL (a scratch database beside the one named, dropped after each run)",
    )
    args = parser.parse_args()
    sessions = args.sessions or (QUICK_SESSIONS if args.quick else FULL_SESSIONS)
    if sessions < 1 or args.runs < 1:
        parser.error("--sessions and --runs must be positive")

    figures = benchmark(sessions, args.runs, args.database_url)
    figures["backend"] = backend_name(args.database_url)
    figures["load_average"] = [round(x, 2) for x in load_average()]
    print(
        f"FastAGI: {sessions:,} concurrent IVR sessions (flow {FLOW},"
        f" {figures['commands_per_session']:.1f} commands each on average) through the"
        f" daemon's IVR path and a {figures['backend']} store, Asterisk side in a second"
        f" process; {args.runs} run(s), medians last; {describe_load()}"
    )
    head = (
        f"{'run':<7} {'total s':>8} {'sess/s':>8} {'stored s':>8} {'med ms':>8} {'p99 ms':>8}"
        f" {'lost':>5} {'outs':>5} {'CPU us':>7} {'busy':>5} {'ast us':>7}"
        f" {'peak +MB':>9} {'KB/sess':>8} {'idle KB':>8} {'kept MB':>8} {'load':>5}"
    )
    print(head)

    def row(name: str, r: dict[str, Any], lost: str, outs: str) -> str:
        return (
            f"{name:<7} {r['total_s']:>8.3f} {r['sessions_per_s']:>8,.0f} {r['stored_s']:>8.3f}"
            f" {r['session_median_ms']:>8.1f} {r['session_p99_ms']:>8.1f} {lost:>5} {outs:>5}"
            f" {r['cpu_us_per_session']:>7.0f} {r['server_busy']:>5.0%}"
            f" {r['asterisk_cpu_us_per_session']:>7.0f} {r['peak_rss_growth_kb'] / 1024:>9.1f}"
            f" {r['peak_kb_per_session']:>8.1f} {r['idle_connected_kb_per_session']:>8.1f}"
            f" {r['retained_kb'] / 1024:>8.1f} {r['load_1m']:>5.2f}"
        )

    for n, run in enumerate(figures["per_run"], 1):
        print(row(str(n), run, str(run["failed"]), str(run["store_outages"])))
    held = sum(run["store_outages"] for run in figures["per_run"])
    print(row("median", figures, f"{figures['failed']}", str(held)))
    problems = [
        (n, run["client_failures"], run["server_errors"], run["wrong_outcomes"], run)
        for n, run in enumerate(figures["per_run"], 1)
        if run["failed"]
    ]
    for n, client, server, wrong, run in problems:
        print(
            f"run {n}: client saw {client}; server errors {server}; wrong outcomes {wrong};"
            f" {run['stored_complete']} of {run['sessions']} stored complete"
            f" ({run['stored_interactions']} interactions)"
        )
    first = figures["per_run"][0]
    print(
        f"queues chosen per run: {first['queued']};"
        f" connecting every socket took {figures['connect_s']:.2f} s (median);"
        f" server RSS before each run {first['rss_before_kb'] / 1024:.1f} MB"
        + ("" if first["hwm_reset"] else "; VmHWM could not be reset, peak is since start")
    )
    print(
        "total s: first environment sent to last socket closed; sess/s: sessions / total s;"
        " stored s: first environment sent to every write in the store (outbox empty);"
        " med/p99 ms: one session, environment sent to socket closed; lost: sessions not"
        " queued, or not stored with their queue, IVR path and routing request (median row"
        " = all runs); outs: times the store could not take a write at once, so the outbox"
        " held writes and stored them later (all runs); CPU us: server CPU per session,"
        " store writes included; busy: server CPU / stored s; ast us: the Asterisk side's CPU per"
        " session; peak +MB: server VmHWM over its RSS before the run; KB/sess: that per"
        " session; idle KB: RSS per accepted connection before its environment; kept MB:"
        " RSS still held after the run; load: 1-minute load average as the run started"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
