"""Real Asterisk: calls per second through Asterisk 22 and the daemon, none lost; CPU per call.

Run from the repository root:

    .venv/bin/python bench/live_asterisk.py [--quick] [--rates 2,5,10,20] [--seconds S]
        [--agents N] [--rounds N] [--database-url URL]

Asterisk is the real build of ../shared/asterisk (CC_ASTERISK_DIR), started on the test
bed of contrib/asterisk/testbed with the shipped contrib dialplan (the harness of
tests/integration/live_asterisk.py: a work folder, a free AMI port). The daemon is started
as users run it, `contact-center run -c FILE`, in a process of its own with `pbx.mode:
asterisk`, its store a SQLite file in a temporary directory (or a scratch PostgreSQL
database with `--database-url`, see bench/scratch_db.py). --agents ready agents (stored
"ready" before the daemon starts, restore grace 0, so no desktop is needed) have phones
Local/<n>@tb-answer: they answer at once, talk TB_TALK_SECONDS (2 s) and hang up.

For each rate of --rates, callers are placed at that many calls a second for --seconds
(Local channels Originated into [cc-inbound]); each goes through the IVR over FastAGI (a
prompt, a menu: the caller keys 2 when GET DATA starts, an AMI PlayDTMF sent on one of
KEY_SESSIONS sessions of the bench's own, whose main session takes only AGIExecStart
events), is queued on `support`, offered, answered, talks and is hung up by the agent.
Then the bench waits for every call of the rate to close in the store (at most --drain
seconds) and for Asterisk to have no channel left before the next rate. Per rate: placed
(Originate accepted), routed (offered_at set), answered, closed (ended_at set), lost
(placed but never closed in the store), unanswered, the placement rate achieved, arrival
to answer (median), the daemon's and Asterisk's CPU (user + system, /proc/<pid>/stat) per
call over the rate's window and its drain, and the 1-minute load average at its end. A
rate is sustained when nothing was lost, every call was answered, no Originate was refused
and no channel was left; the highest such rate is printed. With --rounds N the ramp is run
N times on the same daemon and Asterisk and each rate's figures are the medians of its
rounds (the counts of its worst round). The last line is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ itself is first on sys.path: drop it for the repository root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from argon2 import PasswordHasher  # noqa: E402
from sqlalchemy import select  # noqa: E402

from adapters.ami.client import AmiClient  # noqa: E402
from adapters.ami.framing import AmiMessage  # noqa: E402
from bench.scratch_db import backend_name, describe_load, load_average, scratch_database  # noqa: E402
from crm_store.models import Interaction, utcnow  # noqa: E402
from tests.component.api_fixtures import FLOW  # noqa: E402  (the tests' flow: any hour)
from tests.conftest import port_open  # noqa: E402
from tests.integration.live_asterisk import (  # noqa: E402
    DAEMON_SECRET,
    DAEMON_USER,
    DRIVER_SECRET,
    DRIVER_USER,
    LiveAsterisk,
    asterisk_dir,
    free_port,
)

FULL_RATES, QUICK_RATES = (2.0, 5.0, 10.0, 20.0), (2.0,)
FULL_SECONDS, QUICK_SECONDS = 20.0, 4.0
KEY_SESSIONS = 4  # AMI sessions that key the callers' digits (see open_keyers)
TALK_SECONDS = 2.0  # TB_TALK_SECONDS of contrib/asterisk/testbed/extensions.conf
BANNER = re.compile(r"Contact center is up: open (http://\S+)/login")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


class BenchAsterisk(LiveAsterisk):
    """The test bed's Asterisk; callers key 2 as soon as the menu's GET DATA starts. Its
    events are not kept once it has booted (a ramp sends hundreds of thousands)."""

    def __init__(self, root: Path, *, agi_port: int) -> None:
        super().__init__(root, agi_port=agi_port)
        self.keep_events = True
        self.key_tasks: set[asyncio.Task[None]] = set()
        self.key_errors = 0
        self.keyers: list[AmiClient] = []
        self._next_keyer = 0

    async def open_keyers(self) -> None:
        """AMI sessions of their own for the keys: Asterisk runs a session's actions one
        at a time and PlayDTMF holds it for the digit's duration (~100 ms), so one
        session keys at most ~10 callers a second (KEY_SESSIONS of them ~40); past that
        the bench, not the daemon, would be the limit."""
        for _ in range(KEY_SESSIONS):
            client = AmiClient(
                host="127.0.0.1",
                port=self.ami_port,
                username=DRIVER_USER,
                secret=DRIVER_SECRET,
                on_event=lambda _message: None,
                reconnect_max=1,
            )
            self.keyers.append(client)
            await client.start()
            await client.wait_connected(10)
            # No events at all (a filter instead would cost Asterisk a regex per event).
            await client.send({"Action": "Events", "EventMask": "off"}, reply_within=10)

    async def close_keyers(self) -> None:
        for client in self.keyers:
            with contextlib.suppress(Exception):
                await client.stop()
        self.keyers = []

    def _event(self, message: AmiMessage) -> None:
        if self.keep_events:
            super()._event(message)
        if message.get("Event") != "AGIExecStart":
            return
        channel = message.get("Channel")
        if message.get("Command").startswith("GET DATA") and channel.endswith(";1"):
            # The ;1 half runs the IVR; the caller's phone is the ;2 half of the same pair.
            task = asyncio.get_running_loop().create_task(self._key(channel[:-1] + "2"))
            self.key_tasks.add(task)
            task.add_done_callback(self.key_tasks.discard)

    async def _key(self, phone: str) -> None:
        client = self.keyers[self._next_keyer % len(self.keyers)]
        self._next_keyer += 1
        try:
            await client.send(
                {"Action": "PlayDTMF", "Channel": phone, "Digit": "2"}, reply_within=10
            )
        except Exception:  # counted: a caller gone before the key
            self.key_errors += 1


def write_config(tmp: Path, asterisk: LiveAsterisk, database_url: str) -> Path:
    """The shipped config on the test bed's ports, the bench's flow and store."""
    raw: dict[str, Any] = yaml.safe_load((ROOT / "config.yaml").read_text())
    flows = tmp / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "main.yaml").write_text(FLOW)
    raw["database"] = {**raw.get("database", {}), "url": database_url}
    raw["web"] = {**raw.get("web", {}), "host": "127.0.0.1", "port": free_port()}
    raw["logging"] = {"level": "WARNING", "format": "text"}
    raw["pbx"] = {
        "mode": "asterisk",
        "ami": {
            "host": "127.0.0.1",
            "port": asterisk.ami_port,
            "username": DAEMON_USER,
            "secret": DAEMON_SECRET,
        },
        "agi": {"host": "127.0.0.1", "port": asterisk.agi_port},
    }
    raw["ivr"] = {"flows_dir": str(flows), "default_flow": "main"}
    # Agents are free again as soon as a call ends, never set not ready by a missed
    # offer, and their stored "ready" counts without a desktop confirming it.
    raw["routing"] = {
        **raw.get("routing", {}),
        "wrap_up_seconds": 0,
        "not_ready_after_missed": 0,
        "restore_grace_seconds": 0,
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def create_agents(url: str, agents: int) -> None:
    """The schema and `agents` agents stored ready, phones Local/<2000+n>@tb-answer."""
    from crm_store import agent_states, migrate, users
    from crm_store.database import make_engine, make_sessionmaker

    users.password_hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    await migrate.upgrade(url)
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine).begin() as db:
            for n in range(agents):
                user = await users.create_user(
                    db,
                    username=f"agent{n}",
                    role="agent",
                    password="agent-pass-1",
                    skills={"support": 5},
                    device=f"Local/{2000 + n}@tb-answer",
                )
                await agent_states.save_agent_state(db, user.id, "ready", None, utcnow())
    finally:
        await engine.dispose()


@dataclass
class Daemon:
    """`contact-center run -c FILE` in its own process, its output in a log file."""

    process: asyncio.subprocess.Process
    log: Path

    @classmethod
    async def start(cls, config: Path, log: Path) -> Daemon:
        script = Path(sys.executable).with_name("contact-center")
        command = (
            [str(script)] if script.is_file() else [sys.executable, "-m", "contact_center.cli"]
        )
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                *command,
                "run",
                "-c",
                str(config),
                cwd=ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        daemon = cls(process, log)
        deadline = time.monotonic() + 60
        while not BANNER.search(await asyncio.to_thread(log.read_text, errors="replace")):
            if process.returncode is not None or time.monotonic() > deadline:
                await daemon.stop()
                raise RuntimeError(f"the daemon did not start:\n{daemon.tail()}")
            await asyncio.sleep(0.1)
        return daemon

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    async def stop(self) -> int:
        """SIGTERM, as a service manager stops it (SIGKILL after 30 s); its exit code."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return int(self.process.returncode or 0)


async def wait_daemon_connected(asterisk: LiveAsterisk, daemon: Daemon) -> None:
    """Until the daemon's AMI user is logged in to Asterisk and its FastAGI listens."""
    deadline = time.monotonic() + 30
    while True:
        connected = await asterisk.cli("manager show connected")
        if DAEMON_USER in connected and port_open("127.0.0.1", asterisk.agi_port, 0.2):
            # Its resync (the channels Asterisk has now) follows the login: let it land.
            await asyncio.sleep(1.0)
            return
        if daemon.process.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the daemon never connected to Asterisk:\n{daemon.tail()}")
        await asyncio.sleep(0.2)


@dataclass
class Store:
    """The bench's own read-only view of the daemon's store."""

    url: str
    engine: Any = None
    sessionmaker: Any = None
    calls: list[Interaction] = field(default_factory=list)

    def open(self) -> None:
        from crm_store.database import make_engine, make_sessionmaker

        self.engine = make_engine(self.url)
        self.sessionmaker = make_sessionmaker(self.engine)

    async def voice_after(self, last_id: int) -> list[Interaction]:
        async with self.sessionmaker() as db:
            rows = await db.scalars(
                select(Interaction)
                .where(Interaction.channel == "voice", Interaction.id > last_id)
                .order_by(Interaction.id)
            )
            return list(rows.all())

    async def last_id(self) -> int:
        rows = await self.voice_after(0)
        return rows[-1].id if rows else 0


async def place_calls(
    asterisk: BenchAsterisk, rate: float, seconds: float, prefix: str
) -> tuple[int, int, float]:
    """Callers at `rate` a second for `seconds`: (placed, refused, seconds it took)."""
    total = max(1, round(rate * seconds))
    placed = refused = 0

    async def one(n: int) -> None:
        nonlocal placed, refused
        caller = f"{prefix}{n:05d}"
        try:
            reply = await asterisk.action(
                {
                    "Action": "Originate",
                    "Channel": f"Local/{caller}@tb-caller",
                    "Context": "cc-inbound",
                    "Exten": "5000",
                    "Priority": "1",
                    "CallerID": f'"Bench Caller" <{caller}>',
                    "Async": "true",
                }
            )
        except Exception:  # counted as refused
            refused += 1
            return
        if reply.get("Response") == "Success":
            placed += 1
        else:
            refused += 1

    tasks = []
    started = time.monotonic()
    for n in range(total):
        # On a fixed schedule: a late start does not shift the calls after it.
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    took = time.monotonic() - started
    await asyncio.gather(*tasks)
    return placed, refused, took


async def run_rate(
    asterisk: BenchAsterisk,
    daemon: Daemon,
    store: Store,
    rate: float,
    seconds: float,
    drain: float,
    prefix: str,
) -> dict[str, Any]:
    """One rate of the ramp; its figures."""
    last_id = await store.last_id()
    assert asterisk.process is not None and daemon.process.pid
    daemon_cpu0 = cpu_seconds(daemon.process.pid)
    asterisk_cpu0 = cpu_seconds(asterisk.process.pid)
    key_errors0 = asterisk.key_errors
    bench_cpu0 = time.process_time()
    started = time.monotonic()
    placed, refused, took = await place_calls(asterisk, rate, seconds, prefix)
    deadline = time.monotonic() + drain
    rows: list[Interaction] = []
    channels: list[str] = []
    while time.monotonic() < deadline:
        rows = await store.voice_after(last_id)
        if len(rows) >= placed and all(r.ended_at is not None for r in rows):
            channels = await asterisk.channels()
            if not channels:
                break
        await asyncio.sleep(0.5)
    else:
        rows = await store.voice_after(last_id)
        channels = await asterisk.channels()
    elapsed = time.monotonic() - started
    daemon_cpu = cpu_seconds(daemon.process.pid) - daemon_cpu0
    asterisk_cpu = cpu_seconds(asterisk.process.pid) - asterisk_cpu0
    bench_cpu = time.process_time() - bench_cpu0
    closed = [r for r in rows if r.ended_at is not None]
    answered = [r for r in rows if r.answered_at is not None and r.agent_id is not None]
    waits = sorted(
        (r.answered_at - r.started_at).total_seconds() for r in answered if r.answered_at
    )
    lost = max(0, placed - len(closed))
    figures = {
        "rate": rate,
        "placed": placed,
        "refused": refused,
        # The schedule's last call goes at (total - 1) / rate: one interval more is the window.
        "placed_per_s": round(placed / (took + 1 / rate), 2),
        "recorded": len(rows),
        "routed": sum(1 for r in rows if r.offered_at is not None),
        "answered": len(answered),
        "closed": len(closed),
        "lost": lost,
        "unanswered": max(0, placed - len(answered)),
        "key_errors": asterisk.key_errors - key_errors0,
        "channels_left": len(channels),
        "answer_median_s": round(statistics.median(waits), 3) if waits else None,
        "daemon_cpu_ms_per_call": round(daemon_cpu * 1000 / placed, 1) if placed else None,
        "asterisk_cpu_ms_per_call": round(asterisk_cpu * 1000 / placed, 1) if placed else None,
        "daemon_cpu_share": round(daemon_cpu / elapsed, 3),
        "asterisk_cpu_share": round(asterisk_cpu / elapsed, 3),
        # The callers' side (this process): if it saturates, the rate is the bench's limit.
        "bench_cpu_share": round(bench_cpu / elapsed, 3),
        "window_s": round(elapsed, 2),
        "load_1m": round(load_average()[0], 2),
    }
    figures["ok"] = lost == 0 and figures["unanswered"] == 0 and refused == 0 and not channels
    return figures


MEDIAN_KEYS = (
    "placed_per_s",
    "answer_median_s",
    "daemon_cpu_ms_per_call",
    "asterisk_cpu_ms_per_call",
    "daemon_cpu_share",
    "asterisk_cpu_share",
    "bench_cpu_share",
    "load_1m",
)


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One rate's rounds: the counts of the worst (first not ok, else the last), the
    medians of the timings and CPU; ok only if every round was."""
    worst = next((r for r in rounds if not r["ok"]), rounds[-1])
    medians: dict[str, Any] = {}
    for key in MEDIAN_KEYS:
        values = [r[key] for r in rounds if r[key] is not None]
        medians[key] = round(statistics.median(values), 3) if values else None
    return {**worst, **medians, "rounds": len(rounds), "ok": all(r["ok"] for r in rounds)}


async def run_bench(
    tmp: Path,
    *,
    rates: list[float],
    seconds: float,
    agents: int,
    rounds: int,
    drain: float,
    database_url: str | None,
) -> dict[str, Any]:
    """Asterisk, the daemon and the ramp; the figures."""
    async with scratch_database(database_url, tmp) as url:
        await create_agents(url, agents)
        asterisk = BenchAsterisk(tmp, agi_port=free_port())
        store = Store(url)
        daemon: Daemon | None = None
        try:
            await asterisk.start()
            asterisk.keep_events = False
            # Only the events the callers key on: at 20 calls/s the rest (hundreds a call)
            # would take the bench's own CPU from the two processes it measures.
            await asterisk.action(
                {"Action": "Filter", "Operation": "Add", "Filter": "Event: AGIExecStart"}
            )
            await asterisk.open_keyers()
            daemon = await Daemon.start(write_config(tmp, asterisk, url), tmp / "daemon.log")
            await wait_daemon_connected(asterisk, daemon)
            store.open()
            per_round: list[list[dict[str, Any]]] = []
            for round_number in range(rounds):
                per_round.append(
                    [
                        await run_rate(
                            asterisk,
                            daemon,
                            store,
                            rate,
                            seconds,
                            drain,
                            prefix=f"7{round_number % 10}{index % 10}",
                        )
                        for index, rate in enumerate(rates)
                    ]
                )
        finally:
            exit_code = await daemon.stop() if daemon is not None else None
            daemon_log = daemon.tail() if daemon is not None else ""
            if store.engine is not None:
                await store.engine.dispose()
            for task in list(asterisk.key_tasks):
                task.cancel()
            await asterisk.close_keyers()
            await asterisk.stop()
    results = [combine([r[i] for r in per_round]) for i in range(len(rates))]
    sustained = max((r["rate"] for r in results if r["ok"]), default=None)
    problems = [
        f"{r['rate']:g} calls/s: {r['lost']} lost, {r['unanswered']} unanswered,"
        f" {r['refused']} refused, {r['channels_left']} channels left"
        for r in results
        if not r["ok"]
    ]
    if exit_code != 0:
        problems.append(f"the daemon exited {exit_code}: {daemon_log[-1500:]}")
    return {
        "bench": "live_asterisk",
        "backend": backend_name(url),
        "agents": agents,
        "seconds_per_rate": seconds,
        "talk_s": TALK_SECONDS,
        "rounds": rounds,
        "results": results,
        "per_round": per_round,
        "sustained_calls_per_s": sustained,
        "none_lost": all(r["lost"] == 0 for r in results),
        "daemon_exit": exit_code,
        "load_average": [round(x, 2) for x in load_average()],
        "problems": problems,
    }


def report(figures: dict[str, Any]) -> None:
    print(
        f"Real Asterisk 22 + daemon process: {figures['agents']} agents,"
        f" {figures['seconds_per_rate']:g} s per rate, talk {figures['talk_s']:g} s,"
        f" {figures['backend']} store; {figures['rounds']} round(s), medians; {describe_load()}"
    )
    print(
        f"  {'rate':>5} {'placed/s':>8} {'placed':>6} {'routed':>6} {'answd':>6} {'closed':>6}"
        f" {'lost':>5} {'answer s':>8} {'daemon ms':>9} {'ast ms':>7} {'bench%':>6} {'load':>5}  ok"
    )
    for r in figures["results"]:
        print(
            f"  {r['rate']:>5g} {r['placed_per_s']:>8} {r['placed']:>6} {r['routed']:>6}"
            f" {r['answered']:>6} {r['closed']:>6} {r['lost']:>5} {r['answer_median_s']!s:>8}"
            f" {r['daemon_cpu_ms_per_call']!s:>9} {r['asterisk_cpu_ms_per_call']!s:>7}"
            f" {r['bench_cpu_share'] * 100:>6.1f} {r['load_1m']:>5.2f}  {r['ok']}"
        )
    print(
        "  (daemon ms / ast ms: CPU per call of the daemon's and Asterisk's processes;"
        " bench%: the callers' side, % of one CPU)"
    )
    sustained = figures["sustained_calls_per_s"]
    print(f"sustained: {sustained:g} calls/s with none lost" if sustained else "sustained: none")
    for problem in figures["problems"]:
        print(f"PROBLEM: {problem}")


def parse_rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--rates {text!r}: {exc}") from exc
    if not rates or any(not math.isfinite(r) or r <= 0 for r in rates):
        raise argparse.ArgumentTypeError(f"--rates {text!r}: positive numbers, comma separated")
    return rates


def main() -> int:
    """Run, print the table and the JSON line; exit 1 if any call was lost."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 calls/s for 4 s")
    parser.add_argument("--rates", type=parse_rates, help="calls a second, e.g. 2,5,10,20")
    parser.add_argument("--seconds", type=float, default=0.0, help="seconds per rate")
    parser.add_argument("--agents", type=int, default=0, help="ready agents (6 per call/s)")
    parser.add_argument("--rounds", type=int, default=1, help="ramps, medians shown (1)")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait per rate")
    parser.add_argument("--database-url", help="see bench/scratch_db.py")
    args = parser.parse_args()
    rates = args.rates or list(QUICK_RATES if args.quick else FULL_RATES)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else FULL_SECONDS)
    # An agent is busy about talk + 1 s a call; 6 per call a second leaves room.
    agents = args.agents or max(10, math.ceil(max(rates) * 6))
    if seconds <= 0 or agents < 1 or args.rounds < 1 or args.drain <= 0:
        parser.error("--seconds, --agents, --rounds and --drain must be positive")
    try:
        asterisk_dir()
    except BaseException as exc:  # the harness's skip (or failure)
        # Outside pytest its skip says why as well: no build where CC_ASTERISK_DIR points.
        print(f"cannot run: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(
            run_bench(
                Path(tmp),
                rates=rates,
                seconds=seconds,
                agents=agents,
                rounds=args.rounds,
                drain=args.drain,
                database_url=args.database_url,
            )
        )
    report(figures)
    print(json.dumps(figures))
    return 0 if figures["none_lost"] and figures["daemon_exit"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
