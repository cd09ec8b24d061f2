"""FastAGI: 2,000 concurrent IVR sessions of a few commands each, time and memory.

Run from the repository root:

    .venv/bin/python bench/fastagi.py [--quick] [--sessions N] [--runs N]

The server is the daemon's own FastAGI server (adapters/agi: FastAgiServer, AgiChannel,
the codec) on 127.0.0.1, port 0, with the route `ivr` that AsteriskPbx registers, in a
benchmark process of its own. Each session runs the bundled flow ivr_flows/main.yaml
through the pure interpreter, the daemon's caller port (adapters/asterisk/ivr.py
AgiCaller: STREAM FILE, GET DATA) and the daemon's way out of a queued call (SET VARIABLE
CC_INTERACTION_ID, then SET CONTEXT cc-holding / SET EXTENSION s / SET PRIORITY 1, as in
adapters/asterisk/pbx.py). What is left out is the store: adapters/asterisk/ivr_runner.py's
run_flow opens an interaction and records the IVR path in the database, so the loop here
is run_flow's without it; the flow's caller lookup finds nobody (no customers), and the
interaction ids come from a counter. The flow's clock is fixed on a Tuesday morning,
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
A session fails when it does not end with the server closing the socket after the exit
commands above, when a scripted key is left unused, when the server's counters show an
error, or when the queues the flow chose differ from the callers' paths.

Measured per run: total time from the first environment sent to the last socket closed,
sessions per second, each session's duration (environment sent to socket closed) median
and p99, the server process's CPU time per session, and its memory from
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
import itertools
import json
import multiprocessing as mp
import resource
import statistics
import sys
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

from adapters.agi import AgiChannel, AgiEnvironment, FastAgiServer  # noqa: E402
from adapters.asterisk.ivr import AgiCaller  # noqa: E402
from adapters.asterisk.ivr_runner import MAX_COMMANDS, CallerGone  # noqa: E402
from adapters.asterisk.pbx import INTERACTION_VAR  # noqa: E402
from adapters.asterisk.settings import PbxConfig  # noqa: E402
from ivr_flows import interpreter as ivr  # noqa: E402
from ivr_flows.loader import load_flows  # noqa: E402
from ivr_flows.model import Flow  # noqa: E402

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
        if (
            self.commands[-3:] != EXIT_COMMANDS
            or not self.commands[-4:-3]
            or not self.commands[-4].startswith(f"SET VARIABLE {INTERACTION_VAR} ".encode())
        ):
            return f"did not leave for the holding context: {self.commands[-4:]!r}"
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
class IvrService:
    """The `ivr` route: what AsteriskPbx._ivr_session does, without the store."""

    flow: Flow
    queued: Counter[str] = field(default_factory=Counter)
    other_outcomes: Counter[str] = field(default_factory=Counter)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def session(self, env: AgiEnvironment, channel: AgiChannel) -> None:
        """Run the flow for one caller, then send the call where the flow said."""
        interaction_id = next(self.ids)
        caller = AgiCaller(channel)
        session, command = ivr.start(self.flow, env.get("agi_callerid"), FLOW_NOW)
        for _ in range(MAX_COMMANDS):  # run_flow's loop
            if session.finished:
                break
            try:
                result = await self._execute(command, caller)
            except CallerGone:
                result = ivr.CallerHungUp()
            command = ivr.advance(self.flow, session, result, FLOW_NOW)
        if isinstance(command, ivr.Queue):
            await channel.set_variable(INTERACTION_VAR, str(interaction_id))
            await channel.continue_at(HOLDING_CONTEXT, "s")
            self.queued[command.queue] += 1
        else:
            self.other_outcomes[session.outcome or "none"] += 1
            await channel.hangup()

    @staticmethod
    async def _execute(command: ivr.Command, caller: AgiCaller) -> ivr.Result:
        if isinstance(command, ivr.Play):
            await caller.play(command.prompt)
            return ivr.Played()
        if isinstance(command, ivr.Collect):
            keys = await caller.collect(
                command.prompt, command.max_digits, command.timeout, command.terminator
            )
            return ivr.Timeout() if keys is None else ivr.Digits(keys)
        if isinstance(command, ivr.Lookup):
            return ivr.LookupResult()  # no customer store: nobody is found
        return ivr.Played()


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


async def one_run(flow: Flow, sessions: int) -> dict[str, Any]:
    """Serve `sessions` concurrent IVR sessions from a fresh server; the run's figures."""
    service = IvrService(flow)
    server = FastAgiServer("127.0.0.1", 0, {"ivr": service.session}, read_timeout=READ_TIMEOUT)
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
        clients = await _receive(ours, RUN_TIMEOUT + 30)
        cpu = time.process_time() - cpu
        await _until(lambda: server.active_sessions == 0, 10.0)
        after = memory_kb()
        stats = server.stats
    finally:
        await server.stop()
        asterisk.join(30)
        if asterisk.is_alive():
            asterisk.kill()
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
    wrong_queues = sum(((expected - service.queued) + (service.queued - expected)).values())
    wrong_queues += sum(service.other_outcomes.values())
    durations = clients["durations_ms"]
    peak = (after["VmHWM"] if hwm_reset else max(after["VmHWM"], after["VmRSS"])) - before["VmRSS"]
    # The same failure can show on both sides: count the larger tally.
    failed = max(sessions - clients["completed"], sum(errors.values()), wrong_queues)
    return {
        "sessions": sessions,
        "started": clients["started"],
        "completed": clients["completed"],
        "failed": failed,
        "client_failures": clients["failures"],
        "server_errors": errors,
        "wrong_outcomes": wrong_queues,
        "served": stats.sessions_served,
        "queued": dict(service.queued),
        "commands": clients["commands"],
        "connect_s": connect_s,
        "total_s": clients["total_s"],
        "sessions_per_s": sessions / clients["total_s"],
        "session_median_ms": statistics.median(durations) if durations else 0.0,
        "session_p99_ms": _p(durations, 0.99) if durations else 0.0,
        "session_max_ms": max(durations, default=0.0),
        "cpu_us_per_session": cpu / sessions * 1e6,
        # Server CPU over the run's wall time: near 1 means the server's core was the limit.
        "server_busy": cpu / clients["total_s"],
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


def server_main(sessions: int, conn: Connection) -> None:
    """Entry point of one run's server process: serve the run, send back its figures."""
    raise_fd_limit(sessions)
    flow = load_flows(ROOT / "ivr_flows")[FLOW]
    conn.send(asyncio.run(one_run(flow, sessions)))


def benchmark(sessions: int, runs: int) -> dict[str, Any]:
    """`runs` runs of `sessions` concurrent sessions, each run's server in a fresh
    process; the per-run figures and their medians."""
    ctx = mp.get_context("spawn")
    per_run: list[dict[str, Any]] = []
    for _ in range(runs):
        ours, theirs = ctx.Pipe()
        server = ctx.Process(target=server_main, args=(sessions, theirs))
        server.start()
        theirs.close()
        try:
            per_run.append(ours.recv())
        except EOFError:
            sys.exit(f"the server process of run {len(per_run) + 1} died")
        finally:
            server.join(60)
    medians = {
        key: statistics.median(run[key] for run in per_run)
        for key in (
            "connect_s",
            "total_s",
            "sessions_per_s",
            "session_median_ms",
            "session_p99_ms",
            "cpu_us_per_session",
            "server_busy",
            "asterisk_cpu_us_per_session",
            "peak_rss_growth_kb",
            "peak_kb_per_session",
            "idle_connected_kb_per_session",
            "retained_kb",
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SESSIONS} sessions")
    parser.add_argument("--sessions", type=int, help=f"concurrent sessions ({FULL_SESSIONS})")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs, medians shown ({RUNS})")
    args = parser.parse_args()
    sessions = args.sessions or (QUICK_SESSIONS if args.quick else FULL_SESSIONS)
    if sessions < 1 or args.runs < 1:
        parser.error("--sessions and --runs must be positive")

    figures = benchmark(sessions, args.runs)
    print(
        f"FastAGI: {sessions:,} concurrent IVR sessions (flow {FLOW},"
        f" {figures['commands_per_session']:.1f} commands each on average), Asterisk side in"
        f" a second process; {args.runs} run(s), medians last"
    )
    head = (
        f"{'run':<7} {'total s':>8} {'sess/s':>8} {'med ms':>8} {'p99 ms':>8} {'failed':>6}"
        f" {'CPU us':>7} {'busy':>5} {'ast us':>7}"
        f" {'peak +MB':>9} {'KB/sess':>8} {'idle KB':>8} {'kept MB':>8}"
    )
    print(head)

    def row(name: str, r: dict[str, Any], failed: str) -> str:
        return (
            f"{name:<7} {r['total_s']:>8.3f} {r['sessions_per_s']:>8,.0f}"
            f" {r['session_median_ms']:>8.1f} {r['session_p99_ms']:>8.1f} {failed:>6}"
            f" {r['cpu_us_per_session']:>7.0f} {r['server_busy']:>5.0%}"
            f" {r['asterisk_cpu_us_per_session']:>7.0f} {r['peak_rss_growth_kb'] / 1024:>9.1f}"
            f" {r['peak_kb_per_session']:>8.1f} {r['idle_connected_kb_per_session']:>8.1f}"
            f" {r['retained_kb'] / 1024:>8.1f}"
        )

    for n, run in enumerate(figures["per_run"], 1):
        print(row(str(n), run, str(run["failed"])))
    print(row("median", figures, f"{figures['failed']}"))
    problems = [
        (n, run["client_failures"], run["server_errors"], run["wrong_outcomes"])
        for n, run in enumerate(figures["per_run"], 1)
        if run["failed"]
    ]
    for n, client, server, wrong in problems:
        print(f"run {n}: client saw {client}; server errors {server}; wrong outcomes {wrong}")
    first = figures["per_run"][0]
    print(
        f"queues chosen per run: {first['queued']};"
        f" connecting every socket took {figures['connect_s']:.2f} s (median);"
        f" server RSS before each run {first['rss_before_kb'] / 1024:.1f} MB"
        + ("" if first["hwm_reset"] else "; VmHWM could not be reset, peak is since start")
    )
    print(
        "total s: first environment sent to last socket closed; med/p99 ms: one session,"
        " environment sent to socket closed; failed: median row = all runs; CPU us: server"
        " CPU per session; busy: server CPU / total time; ast us: the Asterisk side's CPU"
        " per session; peak +MB: server VmHWM over its RSS before the run; KB/sess: that"
        " per session; idle KB: RSS per accepted connection before its environment; kept"
        " MB: RSS still held after the run"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
