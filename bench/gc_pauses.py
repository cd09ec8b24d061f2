"""Garbage-collection pauses of the running daemon with 2,000 agent WebSockets open.

Run from the repository root:

    .venv/bin/python bench/gc_pauses.py [--quick] [--agents N] [--seconds S]
        [--set KEY=VALUE ...]

The daemon is started as a user starts it, `contact-center run -c FILE`, in a process
of its own: the shipped config.yaml on a SQLite file in a temporary directory, the web
server on a free loopback port, `pbx.mode: simulated` (or `--pbx off`). One change: the
daemon process's argon2 cost is lowered (time 1, 8 KiB) before the CLI runs, and the
users are created with it. At the shipped cost each login takes ~120 ms of CPU on this
machine's two hash threads, so 2,000 logins would take four minutes; a login leaves
nothing behind in the daemon's heap but its session, so the figures do not depend on it.
`--set KEY=VALUE` changes a config key (dotted path, YAML value), e.g.
`--set gc.freeze_survivors=false` (only the start-up objects frozen: the old behaviour).

This process plays the browsers: N agents (skill support 5, a phone PJSIP/<n>) and one
wallboard log in through `POST /api/v1/auth/login` and open `/ws/agent` (`/ws/supervisor`)
with their session cookie; the agents set themselves ready. Then, for --seconds, the
traffic of a busy floor: agents go on a break and come back (`set_status` over the
socket, --status-per-s a second in all; each sends an agent_state to the desktop and
makes the wallboard's next push), and the wallboard's supervisor places --calls-per-s
simulated calls into `support` (`POST /api/v1/simulator/calls`): the offered agent
accepts (`accept_offer`), talks --talk seconds and hangs up (`call_action`), then wraps
up; --reloads-per-s desktops reload their page (the socket closes and a new one opens
with the same cookie). Every second this process scrapes `/metrics`, as Prometheus would.

Measured inside the daemon, from its `/metrics` (contact_center/gc_pauses.py: gc.callbacks
at the start and end of each collection): collections per generation during the traffic,
the median and p99 pause (from the cc_gc_pause_seconds histogram, interpolated in its
buckets), the longest; each full (generation 2) collection's own pause
(cc_gc_pause_last_seconds, caught by the once-a-second scrape: the full-collection figures
are exact when every one was caught); the same while the sockets open; the objects a full
collection walks (cc_gc_tracked_objects) and those frozen out of its way; the daemon's
RSS; this machine's load average (the machine may be shared). The last line is a JSON
object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds routing.py, which must not shadow the routing package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yaml  # noqa: E402
from argon2 import PasswordHasher  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

FULL_AGENTS, QUICK_AGENTS = 2000, 20
FULL_SECONDS, QUICK_SECONDS = 60.0, 4.0
PASSWORD = "agent-pass-1"
# The cost the daemon process and the users' hashes share (see the module docstring).
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
# The daemon admits 16 logins at once and answers 503 past that.
LOGINS_AT_ONCE = 8
SOCKETS_AT_ONCE = 50
BANNER = re.compile(r"Contact center is up: open (http://\S+)/login")
GENERATIONS = ("0", "1", "2")
WRAP_UP_SECONDS = 2


# --- the daemon process -------------------------------------------------------------


def serve(config: str) -> int:
    """`contact-center run -c CONFIG` with the cheap password hash (bench only)."""
    from contact_center.cli.entry import main as cli_main
    from crm_store import users

    users.password_hasher = FAST_HASHER
    return cli_main(["run", "-c", config])


def _set(raw: dict[str, Any], assignment: str) -> None:
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set {assignment!r}: expected KEY=VALUE")
    node = raw
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(value)


def write_config(tmp: Path, port: int, pbx: str, settings: list[str]) -> Path:
    """The shipped config on a temporary SQLite file and a free port, with `settings`."""
    raw: dict[str, Any] = yaml.safe_load((ROOT / "config.yaml").read_text())
    raw["database"] = {**raw.get("database", {}), "url": f"sqlite+aiosqlite:///{tmp}/cc.db"}
    raw["web"] = {**raw.get("web", {}), "host": "127.0.0.1", "port": port}
    raw["pbx"] = {**raw.get("pbx", {}), "mode": pbx}
    raw["ivr"] = {**raw.get("ivr", {}), "flows_dir": str(ROOT / "ivr_flows")}
    raw["logging"] = {"level": "WARNING", "format": "text"}
    # Agents come back by themselves after a call; restored statuses are not waited for.
    raw["routing"] = {
        **raw.get("routing", {}),
        "wrap_up_seconds": WRAP_UP_SECONDS,
        "not_ready_after_missed": 0,
    }
    for assignment in settings:
        _set(raw, assignment)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def create_users(url: str, agents: int) -> None:
    """The schema, `agents` agents (agent0..) and one supervisor (wallboard)."""
    from crm_store import migrate, users
    from crm_store.database import make_engine, make_sessionmaker

    users.password_hasher = FAST_HASHER
    await migrate.upgrade(url)
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine).begin() as db:
            for n in range(agents):
                await users.create_user(
                    db,
                    username=f"agent{n}",
                    role="agent",
                    password=PASSWORD,
                    skills={"support": 5},
                    device=f"PJSIP/{3000 + n}",
                )
            await users.create_user(db, username="wallboard", role="supervisor", password=PASSWORD)
    finally:
        await engine.dispose()


def start_daemon(config: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    """The daemon process and its base URL, once it prints its banner; its log to `log`
    (a pipe nobody reads would fill up and stop it)."""
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(config)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert proc.stdout is not None
    for line in proc.stdout:
        match = BANNER.search(line)
        if match:
            return proc, match.group(1)
    proc.wait(10)
    raise RuntimeError(f"the daemon did not start:\n{log.read_text()[-3000:]}")


def stop_daemon(proc: subprocess.Popen[str], log: Path) -> str:
    """SIGTERM, as a service manager stops it; its log."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    return log.read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- /metrics -----------------------------------------------------------------------


@dataclass
class Scrape:
    """The cc_gc_* and process figures of one /metrics answer."""

    buckets: dict[str, list[tuple[float, float]]]  # generation -> (le, cumulative)
    sums: dict[str, float]
    maxima: dict[str, float]
    last: dict[str, float]
    gauges: dict[str, float]

    def count(self, generation: str) -> float:
        return self.buckets[generation][-1][1]


def parse_metrics(text: str) -> Scrape:
    buckets: dict[str, list[tuple[float, float]]] = {g: [] for g in GENERATIONS}
    sums: dict[str, float] = {}
    maxima: dict[str, float] = {}
    last: dict[str, float] = {}
    gauges: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            gen = sample.labels.get("generation")
            if sample.name == "cc_gc_pause_seconds_bucket" and gen is not None:
                buckets[gen].append((float(sample.labels["le"]), sample.value))
            elif sample.name == "cc_gc_pause_seconds_sum" and gen is not None:
                sums[gen] = sample.value
            elif sample.name == "cc_gc_pause_max_seconds" and gen is not None:
                maxima[gen] = sample.value
            elif sample.name == "cc_gc_pause_last_seconds" and gen is not None:
                last[gen] = sample.value
            elif sample.name == "cc_gc_threshold" and gen is not None:
                gauges[f"threshold{gen}"] = sample.value
            elif sample.name in (
                "cc_gc_frozen_objects",
                "cc_gc_tracked_objects",
                "process_resident_memory_bytes",
            ):
                gauges[sample.name] = sample.value
    for rows in buckets.values():
        rows.sort()
    return Scrape(buckets, sums, maxima, last, gauges)


def quantile(rows: list[tuple[float, float]], q: float, worst: float) -> float:
    """histogram_quantile over (le, count) rows of a window; `worst` caps +Inf."""
    total = rows[-1][1] if rows else 0.0
    if total <= 0:
        return 0.0
    rank = q * total
    lower, below = 0.0, 0.0
    for le, cumulative in rows:
        if cumulative >= rank:
            upper = worst if le == float("inf") else min(le, max(worst, lower))
            inside = cumulative - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, cumulative
    return worst


def window(first: Scrape, end: Scrape, full_pauses: list[float]) -> dict[str, Any]:
    """Per generation: collections, median, p99 and longest pause between two scrapes."""
    out: dict[str, Any] = {}
    for gen in GENERATIONS:
        rows = [
            (le, count - before)
            for (le, count), (_, before) in zip(end.buckets[gen], first.buckets[gen], strict=True)
        ]
        count = int(rows[-1][1]) if rows else 0
        if end.maxima[gen] > first.maxima[gen]:
            worst = end.maxima[gen]  # a new record: this window's longest exactly
        else:
            # The record is older: this window's longest lies in its highest bucket used.
            used = [le for (le, n), (_, m) in zip(rows, [(0.0, 0.0), *rows], strict=False) if n > m]
            worst = min(used[-1], end.maxima[gen]) if used else 0.0
        median, p99 = quantile(rows, 0.5, worst), quantile(rows, 0.99, worst)
        if gen == "2" and full_pauses and len(full_pauses) == count:
            # Every full collection was seen on its own: exact figures, not buckets.
            ordered = sorted(full_pauses)
            median = ordered[len(ordered) // 2]
            p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
            worst = ordered[-1]
        out[f"gen{gen}"] = {
            "collections": count,
            "median_ms": round(median * 1000, 3),
            "p99_ms": round(p99 * 1000, 3),
            "max_ms": round(worst * 1000, 3),
            "sum_ms": round((end.sums[gen] - first.sums[gen]) * 1000, 1),
        }
    return out


# --- the browsers -------------------------------------------------------------------


@dataclass
class Floor:
    """What the simulated browsers do and saw."""

    base: str
    http: aiohttp.ClientSession
    agents: dict[int, aiohttp.ClientWebSocketResponse] = field(default_factory=dict)
    cookies: dict[int, str] = field(default_factory=dict)
    on_call: set[int] = field(default_factory=set)
    away: set[int] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    talk: float = 3.0
    next_id: int = 0
    reconnects: int = 0

    def seen(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    async def send(self, ws: aiohttp.ClientWebSocketResponse, **message: Any) -> None:
        self.next_id += 1
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps({"id": self.next_id, **message}))

    def later(self, delay: float, ws: aiohttp.ClientWebSocketResponse, **message: Any) -> None:
        async def go() -> None:
            await asyncio.sleep(delay)
            await self.send(ws, **message)

        task = asyncio.create_task(go())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def login(http: aiohttp.ClientSession, base: str, username: str) -> tuple[str, str]:
    """The session cookie and CSRF token; retried while the daemon says it is busy."""
    for _ in range(600):
        async with http.post(
            f"{base}/api/v1/auth/login", json={"username": username, "password": PASSWORD}
        ) as response:
            if response.status in (429, 503):
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")) / 4)
                continue
            response.raise_for_status()
            body = await response.json()
            return response.cookies["cc_session"].value, body["csrf_token"]
    raise RuntimeError(f"could not log {username} in")


async def agent_reader(floor: Floor, user_id: int, ws: aiohttp.ClientWebSocketResponse) -> None:
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        kind = message.data[9:30].split('"', 1)[0]  # {"type":"<kind>",...
        floor.seen(kind)
        if kind == "offer":
            offer = json.loads(message.data)
            floor.on_call.add(user_id)
            await floor.send(ws, type="accept_offer", offer_id=offer["offer_id"])
            floor.later(
                floor.talk,
                ws,
                type="call_action",
                interaction_id=offer["interaction_id"],
                action="hangup",
            )
            # Free for a break again once the call and its wrap-up are over.
            asyncio.get_running_loop().call_later(
                floor.talk + WRAP_UP_SECONDS + 1, floor.on_call.discard, user_id
            )


async def supervisor_reader(floor: Floor, ws: aiohttp.ClientWebSocketResponse) -> None:
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        floor.seen("wallboard:" + message.data[9:30].split('"', 1)[0])


async def open_desktop(floor: Floor, cookie: str) -> int:
    """An agent's socket, its hello read and its reader started; the agent's id."""
    ws = await floor.http.ws_connect(
        f"{floor.base}/ws/agent", headers={"Cookie": f"cc_session={cookie}"}
    )
    hello = json.loads((await ws.receive()).data)
    user_id = int(hello["user"]["id"])
    floor.agents[user_id] = ws
    task = asyncio.create_task(agent_reader(floor, user_id, ws))
    floor.tasks.add(task)
    task.add_done_callback(floor.tasks.discard)
    return user_id


async def reload_desktop(floor: Floor, user_id: int) -> None:
    """A page reload: the socket closes, a new one opens with the same cookie."""
    await floor.agents[user_id].close()
    await open_desktop(floor, floor.cookies[user_id])
    floor.reconnects += 1


async def connect(floor: Floor, agents: int) -> tuple[str, str]:
    """Log everyone in, open every socket, set the agents ready; the wallboard's cookie."""
    logins = asyncio.Semaphore(LOGINS_AT_ONCE)
    sockets = asyncio.Semaphore(SOCKETS_AT_ONCE)

    async def one(n: int) -> None:
        async with logins:
            cookie, _csrf = await login(floor.http, floor.base, f"agent{n}")
        async with sockets:
            user_id = await open_desktop(floor, cookie)
        floor.cookies[user_id] = cookie

    await asyncio.gather(*(one(n) for n in range(agents)))
    cookie, csrf = await login(floor.http, floor.base, "wallboard")
    board = await floor.http.ws_connect(
        f"{floor.base}/ws/supervisor", headers={"Cookie": f"cc_session={cookie}"}
    )
    floor.tasks.add(asyncio.create_task(supervisor_reader(floor, board)))
    for ws in floor.agents.values():
        await floor.send(ws, type="set_status", status="ready")
    return cookie, csrf


async def traffic(
    floor: Floor,
    cookie: str,
    csrf: str,
    seconds: float,
    status_per_s: float,
    calls_per_s: float,
    reloads_per_s: float,
) -> None:
    """Breaks, calls and page reloads for `seconds`, open loop."""
    rng = random.Random(15)
    ids = sorted(floor.agents)
    headers = {"Cookie": f"cc_session={cookie}", "X-CSRF-Token": csrf}
    started = time.monotonic()
    next_status = next_call = next_reload = started
    calls: set[asyncio.Task[None]] = set()

    async def place(n: int) -> None:
        body = {"caller": f"0700{n:06d}", "queue": "support"}
        async with floor.http.post(
            f"{floor.base}/api/v1/simulator/calls", json=body, headers=headers
        ) as response:
            floor.seen(f"call:{response.status}")

    n = 0
    while (now := time.monotonic()) < started + seconds:
        if status_per_s > 0 and now >= next_status:
            next_status += 1 / status_per_s
            agent = rng.choice(ids)
            if agent not in floor.on_call and agent not in floor.away:
                ws = floor.agents[agent]
                floor.away.add(agent)
                await floor.send(ws, type="set_status", status="not_ready", reason="break")

                def back(agent: int = agent) -> None:
                    floor.away.discard(agent)

                floor.later(rng.uniform(2, 8), ws, type="set_status", status="ready")
                asyncio.get_running_loop().call_later(8.5, back)
        if calls_per_s > 0 and now >= next_call:
            next_call += 1 / calls_per_s
            n += 1
            task = asyncio.create_task(place(n))
            calls.add(task)
            task.add_done_callback(calls.discard)
        if reloads_per_s > 0 and now >= next_reload:
            next_reload += 1 / reloads_per_s
            agent = rng.choice(ids)
            if agent not in floor.on_call and agent not in floor.away:
                task = asyncio.create_task(reload_desktop(floor, agent))
                calls.add(task)
                task.add_done_callback(calls.discard)
        await asyncio.sleep(0.005)
    if calls:
        await asyncio.wait(calls, timeout=10)


async def scrape(http: aiohttp.ClientSession, base: str) -> Scrape:
    async with http.get(f"{base}/metrics") as response:
        return parse_metrics(await response.text())


async def run_bench(
    base: str,
    agents: int,
    seconds: float,
    *,
    status_per_s: float,
    calls_per_s: float,
    talk: float,
    reloads_per_s: float,
) -> dict[str, Any]:
    """Connect, settle, then measure the GC over `seconds` of traffic."""
    connector = aiohttp.TCPConnector(limit=0)
    jar = aiohttp.DummyCookieJar()  # each socket names its own session
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
        floor = Floor(base, http, talk=talk)
        before = await scrape(http, base)
        phase = "connect"
        full_pauses: dict[str, list[float]] = {"connect": [], "traffic": []}
        missed_full = 0
        scrapes = 0
        stop = asyncio.Event()

        async def watch() -> None:
            # Once a second, as Prometheus would; each full collection seen on its own.
            nonlocal missed_full, scrapes
            previous = before
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                current = await scrape(http, base)
                scrapes += 1
                new = int(current.count("2") - previous.count("2"))
                if new >= 1:
                    full_pauses[phase].append(current.last["2"])
                    missed_full += new - 1
                previous = current

        watcher = asyncio.create_task(watch())
        connect_started = time.monotonic()
        cookie, csrf = await connect(floor, agents)
        connect_s = time.monotonic() - connect_started
        await asyncio.sleep(1.0)
        # This process's own collections must not slow the browsers down: its heap is
        # built, so move it out of the way (it measures the daemon, not itself).
        import gc

        gc.collect()
        gc.freeze()
        connected = await scrape(http, base)
        phase = "traffic"
        load_before = os.getloadavg()
        await traffic(floor, cookie, csrf, seconds, status_per_s, calls_per_s, reloads_per_s)
        stop.set()
        await watcher
        end = await scrape(http, base)
        load_after = os.getloadavg()
        for task in list(floor.tasks):
            task.cancel()
        for ws in floor.agents.values():
            await ws.close()
        gc.unfreeze()
    return {
        "bench": "gc_pauses",
        "agents": agents,
        "sockets": len(floor.agents) + 1,
        "seconds": seconds,
        "connect_s": round(connect_s, 1),
        "gc": window(connected, end, full_pauses["traffic"]),
        "gc_connecting": window(before, connected, full_pauses["connect"]),
        "full_pauses_ms": [round(p * 1000, 2) for p in full_pauses["traffic"]],
        "full_pauses_connecting_ms": [round(p * 1000, 2) for p in full_pauses["connect"]],
        "full_pauses_uncaught": missed_full,
        "tracked_objects": int(end.gauges.get("cc_gc_tracked_objects", 0)),
        "tracked_objects_idle": int(before.gauges.get("cc_gc_tracked_objects", 0)),
        "frozen_objects_idle": int(before.gauges.get("cc_gc_frozen_objects", 0)),
        "frozen_objects": int(end.gauges.get("cc_gc_frozen_objects", 0)),
        "thresholds": [int(end.gauges.get(f"threshold{g}", 0)) for g in GENERATIONS],
        "rss_mb": round(end.gauges.get("process_resident_memory_bytes", 0) / 2**20, 1),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in load_after],
        "scrapes": scrapes + 2,
        "reloads": floor.reconnects,
        "messages": dict(sorted(floor.counts.items())),
    }


def report(figures: dict[str, Any]) -> None:
    print(
        f"GC pauses in the daemon: {figures['sockets']} sockets open "
        f"({figures['agents']} agents and a wallboard), {figures['seconds']:g} s of traffic"
    )
    print(f"  {'generation':<12}{'count':>7}{'median ms':>11}{'p99 ms':>9}{'max ms':>9}")
    for gen, row in figures["gc"].items():
        print(
            f"  {gen:<12}{row['collections']:>7}{row['median_ms']:>11.3f}"
            f"{row['p99_ms']:>9.2f}{row['max_ms']:>9.2f}"
        )
    print(f"  full collections one by one (ms): {figures['full_pauses_ms']}")
    connecting = figures["gc_connecting"]["gen2"]
    print(
        f"  while the sockets opened: {connecting['collections']} full collections, max "
        f"{connecting['max_ms']:.2f} ms: {figures['full_pauses_connecting_ms']}"
    )
    print(
        f"  objects a full collection walks: {figures['tracked_objects']:,}; frozen: "
        f"{figures['frozen_objects']:,} (before the sockets: {figures['tracked_objects_idle']:,}"
        f" and {figures['frozen_objects_idle']:,}); thresholds {figures['thresholds']}"
    )
    print(f"  daemon RSS: {figures['rss_mb']} MB; logins and sockets took {figures['connect_s']} s")
    print(f"  load average before / after: {figures['load_before']} / {figures['load_after']}")
    print(f"  messages received: {figures['messages']}; page reloads: {figures['reloads']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_AGENTS} agents, seconds")
    parser.add_argument("--agents", type=int, default=0, help=f"default {FULL_AGENTS}")
    parser.add_argument("--seconds", type=float, default=0.0, help=f"default {FULL_SECONDS:g}")
    parser.add_argument("--status-per-s", type=float, default=20.0, help="breaks a second")
    parser.add_argument("--calls-per-s", type=float, default=2.0, help="simulated calls a second")
    parser.add_argument("--talk", type=float, default=3.0, help="talk seconds per call")
    parser.add_argument(
        "--reloads-per-s", type=float, default=1.0, help="desktop page reloads a second"
    )
    parser.add_argument("--pbx", choices=("simulated", "off"), default="simulated")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a config key"
    )
    parser.add_argument("--serve", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    agents = args.agents or (QUICK_AGENTS if args.quick else FULL_AGENTS)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else FULL_SECONDS)
    calls = args.calls_per_s if args.pbx == "simulated" else 0.0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = write_config(tmp, free_port(), args.pbx, args.set)
        asyncio.run(create_users(f"sqlite+aiosqlite:///{tmp}/cc.db", agents))
        log = tmp / "daemon.log"
        proc, base = start_daemon(config, log)
        try:
            figures = asyncio.run(
                run_bench(
                    base,
                    agents,
                    seconds,
                    status_per_s=args.status_per_s,
                    calls_per_s=calls,
                    talk=args.talk,
                    reloads_per_s=args.reloads_per_s,
                )
            )
        finally:
            errors = stop_daemon(proc, log)
    figures["pbx"] = args.pbx
    figures["settings"] = args.set
    figures["daemon_exit"] = proc.returncode
    report(figures)
    if proc.returncode != 0:
        print(f"PROBLEM: the daemon exited {proc.returncode}:\n{errors[-2000:]}")
    print(json.dumps(figures))
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
