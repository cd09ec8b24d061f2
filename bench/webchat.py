"""Web chat: 1,000 concurrent chats, messages both ways through the daemon, timed.

Run from the repository root:

    .venv/bin/python bench/webchat.py [--quick] [--chats N] [--agents N]
        [--messages-per-chat N] [--runs N] [--database-url URL] [--profile PATH]

Each run starts a fresh daemon (contact_center.app.make_app on the shipped config.yaml,
with `pbx.mode: off`, logging at WARNING, and its store a SQLite file in a temporary
directory, or with `--database-url postgresql+asyncpg://127.0.0.1:5432/test` a scratch
PostgreSQL database cc_bench_<random> dropped at the end) in a process of its own, with
its agents created in the store, synced into routing and given login sessions. A second
process is the load: every agent's desktop socket (/ws/agent, set ready over it, each
taking up to `routing.capacity.chat` chats), their HTTP clients, and one widget socket
(/ws/chat) per visitor, each from its own loopback address (127.1.x.y) so the shipped
per-address limits (3 open chats) hold as they are. So the daemon's loop is measured
alone; both processes read the same system-wide monotonic clock.

Phases: (1) open every chat (`start`, a first message; the agent accepts the offer; the
visitor sees `agent_joined`), (2) steady: each visitor sends --messages-per-chat messages
at random intervals of 3.5 to 6 s (the shipped limit is 20 a minute per chat), and the
agent on the chat answers each one after 0.5 to 1.5 s of "typing" with
`POST /api/v1/interactions/{id}/messages`. Timed: visitor -> agent from the visitor's
`message` frame sent to the agent socket's `message` push holding it; agent -> visitor
from the POST to the visitor socket's `message` frame holding the answer; a message not
arrived 120 s after the last one was sent counts as lost. Also: the
daemon's RSS (/proc/<pid>/status VmRSS) before and after the chats opened (per chat =
difference / chats), its CPU seconds (user + system, every thread) per message in the
steady phase (and how busy its event loop's thread was), and the loop lag of both
processes (a late 10 ms timer: a figure measured while the load's own loop lagged means
less).

Where the time goes: each steady-phase message is also stamped inside the daemon, at
the steps a delivery passes (the intake's store transaction, the bus's dispatch to the
conversation feed, the push to the agent's socket; the reply stored by the POST handler,
the chat sender called by the delivery loop), by wrapping them from outside as
bench/pop_latency.py wraps the bus; every bus handler is timed, and the store's
connection pool sampled. The median and p99 of each step are printed.

With --runs N (3 by default) each run is a fresh daemon, load and store; each run's line
is printed, then the medians across the runs. --profile PATH runs cProfile in the daemon
process during the steady phase of the (single) run and writes its stats there (it slows
the daemon: its latencies are not the figure). The last line is a JSON object of the
figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import itertools
import json
import multiprocessing as mp
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds routing.py, which must not shadow the routing package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yaml  # noqa: E402
from aiohttp import web  # noqa: E402
from argon2 import PasswordHasher  # noqa: E402

from adapters.messaging.events import MessageReceived  # noqa: E402
from adapters.messaging.model import InboundMessage, OutboundMessage, Received, SendResult  # noqa: E402
from bench.scratch_db import backend_name, describe_load, load_average, scratch_database  # noqa: E402
from contact_center.app import make_app  # noqa: E402
from contact_center.config import parse_config  # noqa: E402
from contact_center.keys import DAEMON  # noqa: E402
from contact_center.web import api_interactions  # noqa: E402
from crm_store import users  # noqa: E402

FULL = {"chats": 1000, "agents": 400, "messages": 5}
QUICK = {"chats": 200, "agents": 80, "messages": 3}
INTERVAL_S = (3.5, 6.0)  # between a visitor's messages (shipped limit: 20 a minute)
RESEND_SECONDS, RESEND_TRIES = 2.0, 5  # what the widget does on chat.unavailable
THINK_S = (0.5, 1.5)  # an agent's "typing" before each answer
OPEN_CONCURRENCY = 25  # chats being opened at once (the server's listen backlog is finite)
TARGET_P99_MS = 50.0
PHASE_TIMEOUT_S = 180.0
# After the last visitor message, how long the rest may take to arrive; what has not
# arrived by then counts as lost.
DRAIN_S = 120.0
FILLER = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor"
TOPIC = "support"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile by nearest rank (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """Median, p95, p99 and max of latencies in seconds, as milliseconds."""
    ms = [v * 1000 for v in values]
    return {
        "median_ms": round(statistics.median(ms), 2) if ms else 0.0,
        "p95_ms": round(percentile(ms, 0.95), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(max(ms, default=0.0), 2),
    }


def visitor_address(index: int) -> str:
    """A loopback source address of the visitor's own (Linux routes all of 127/8 to lo)."""
    return f"127.1.{index // 250}.{index % 250 + 1}"


def text_key(text: str) -> str:
    """The message's key, its first word (`v<chat>.<n>` or `a<chat>.<n>`)."""
    return text.split(" ", 1)[0]


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size of a process, from /proc/<pid>/status VmRSS (kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc status")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    times = os.times()
    return times.user + times.system


class LagWatch:
    """How late a 10 ms timer wakes: the loop was busy (or the process not scheduled)."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
        lags = self.lags_ms or [0.0]
        return {
            "p50_ms": round(percentile(lags, 0.5), 2),
            "p99_ms": round(percentile(lags, 0.99), 2),
            "max_ms": round(max(lags), 2),
            "over_10ms": sum(1 for v in lags if v > 10),
        }

    async def _sample(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.period)
            self.lags_ms.append(max(0.0, (time.monotonic() - before - self.period) * 1000))


# --- the load (second process): visitors and agents -------------------------------------


@dataclass
class Agent:
    """One agent's desktop socket and credentials."""

    user_id: int
    token: str
    csrf: str
    ws: aiohttp.ClientWebSocketResponse | None = None


@dataclass
class Visitor:
    """One visitor's widget socket and what it saw."""

    index: int
    session: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    unconfirmed: dict[str, str] = field(default_factory=dict)  # widget id -> text
    tries: dict[str, int] = field(default_factory=dict)
    resends: set[asyncio.Task[None]] = field(default_factory=set)

    async def send_message(self, message_id: str, text: str) -> None:
        """A `message` frame, kept until the daemon echoes it (as the widget does)."""
        assert self.ws is not None
        self.unconfirmed[message_id] = text
        await self.ws.send_json({"type": "message", "id": message_id, "text": text})

    def resend_later(self, message_id: str) -> bool:
        """The widget's answer to `chat.unavailable`: the same frame again after 2 s x
        the try, at most 5 times; False when it gives up (or the id is not pending)."""
        tries = self.tries.get(message_id, 0) + 1
        if message_id not in self.unconfirmed or tries > RESEND_TRIES:
            return False
        self.tries[message_id] = tries

        async def again() -> None:
            await asyncio.sleep(RESEND_SECONDS * tries)
            if message_id in self.unconfirmed:
                await self.send_message(message_id, self.unconfirmed[message_id])

        task = asyncio.create_task(again())
        self.resends.add(task)
        task.add_done_callback(self.resends.discard)
        return True


@dataclass
class Ledger:
    """Send and arrival times (monotonic) by message key, and what went wrong."""

    v2a_sent: dict[str, float] = field(default_factory=dict)
    v2a_got: dict[str, float] = field(default_factory=dict)
    a2v_sent: dict[str, float] = field(default_factory=dict)
    a2v_got: dict[str, float] = field(default_factory=dict)
    a2v_accepted: dict[str, float] = field(default_factory=dict)  # the POST's 202 read
    first_sent: dict[int, float] = field(default_factory=dict)
    offered: dict[int, float] = field(default_factory=dict)
    joined: dict[int, float] = field(default_factory=dict)
    interaction_of: dict[int, int] = field(default_factory=dict)  # chat -> interaction
    problems: list[str] = field(default_factory=list)
    replies_pending: set[asyncio.Task[None]] = field(default_factory=set)
    resent: int = 0  # visitor messages the daemon refused for a while (chat.unavailable)
    agents: int = 0
    ready_agents: int = 0
    all_ready: asyncio.Event = field(default_factory=asyncio.Event)
    sending_done: bool = False
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self, *_: Any) -> None:
        """Set `settled` once the visitors are done and every message has arrived."""
        if (
            self.sending_done
            and not self.replies_pending
            and len(self.v2a_got) >= len(self.v2a_sent)
            and len(self.a2v_got) >= len(self.a2v_sent)
        ):
            self.settled.set()

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)


def load_main(conn: Connection, port: int, agents: list[tuple[int, str, str]], plan: Any) -> None:
    """The load process: runs the phases the daemon process asks for over `conn`."""
    asyncio.run(_load(conn, port, agents, plan))


async def _recv(conn: Connection) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, conn.recv)


async def _load(conn: Connection, port: int, creds: list[tuple[int, str, str]], plan: Any) -> None:
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(plan["seed"])
    ledger = Ledger()
    agents = [Agent(*c) for c in creds]
    ledger.agents = len(agents)
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    visitors: list[Visitor] = []
    readers: list[asyncio.Task[None]] = []
    try:
        for agent in agents:
            agent.ws = await http.ws_connect(
                f"{base}/ws/agent", headers={"Cookie": f"cc_session={agent.token}"}
            )
            readers.append(asyncio.create_task(_agent_reader(agent, http, base, ledger, rng)))
        await asyncio.gather(*(_set_ready(a) for a in agents))
        await asyncio.wait_for(ledger.all_ready.wait(), 60)
        conn.send(("agents_ready", ledger.ready_agents))

        assert await _recv(conn) == "open"
        opened_at = time.monotonic()
        slots = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def open_one(index: int) -> None:
            async with slots:
                session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(local_addr=(visitor_address(index), 0))
                )
                visitor = Visitor(index, session)
                visitors.append(visitor)
                visitor.ws = await session.ws_connect(f"{base}/ws/chat")
                readers.append(asyncio.create_task(_visitor_reader(visitor, ledger)))
                await visitor.ws.send_json(
                    {"type": "start", "name": f"Visitor {index}", "topic": TOPIC, "lang": "en"}
                )
                await asyncio.wait_for(visitor.started.wait(), 30)
                ledger.first_sent[index] = time.monotonic()
                await visitor.send_message("w-0", f"v{index}.0 hello, {FILLER}")

        await asyncio.gather(*(open_one(i) for i in range(plan["chats"])))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PHASE_TIMEOUT_S):
                for visitor in visitors:
                    await visitor.joined.wait()
        open_s = time.monotonic() - opened_at
        # The load's heap is built: no full collection over its sockets during the timing
        # (one stopped it for ~120 ms in bench/pop_latency.py, measuring the load instead).
        gc.collect()
        gc.freeze()
        gc.disable()
        conn.send(("opened", {"open_s": open_s, "joined": len(ledger.joined)}))

        assert await _recv(conn) == "steady"
        watch = LagWatch()
        watch.start()
        steady_at = time.monotonic()
        await asyncio.gather(*(_chatter(v, plan["messages"], ledger, rng) for v in visitors))
        # Every answer is due within the think time and delivery: wait for them, bounded.
        ledger.sending_done = True
        ledger.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ledger.settled.wait(), DRAIN_S)
        steady_s = time.monotonic() - steady_at
        lag = watch.stop()
        gc.enable()
        conn.send(("steady_done", _results(ledger, plan, open_s, steady_s, lag)))
        assert await _recv(conn) == "close"
    finally:
        for task in readers:
            task.cancel()
        for visitor in visitors:
            await visitor.session.close()
        await http.close()


async def _set_ready(agent: Agent) -> None:
    assert agent.ws is not None
    await agent.ws.send_json({"type": "set_status", "id": "ready", "status": "ready"})


async def _chatter(visitor: Visitor, count: int, ledger: Ledger, rng: random.Random) -> None:
    """The steady phase of one visitor: `count` messages at random intervals."""
    assert visitor.ws is not None
    await asyncio.sleep(rng.uniform(0, INTERVAL_S[1]))  # spread the first ones
    for n in range(1, count + 1):
        key = f"v{visitor.index}.{n}"
        ledger.v2a_sent[key] = time.monotonic()
        await visitor.send_message(f"w-{n}", f"{key} {FILLER}")
        if n < count:
            await asyncio.sleep(rng.uniform(*INTERVAL_S))


async def _agent_reader(
    agent: Agent, http: aiohttp.ClientSession, base: str, ledger: Ledger, rng: random.Random
) -> None:
    assert agent.ws is not None
    async for message in agent.ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        now = time.monotonic()
        frame = json.loads(message.data)
        kind = frame.get("type")
        if kind == "message":
            body = frame["message"]
            if body.get("direction") != "inbound":
                continue
            key = text_key(body["body"])
            if key in ledger.v2a_got:
                ledger.problem(f"{key} pushed to the agent twice")
            ledger.v2a_got[key] = now
            task = asyncio.create_task(_answer(agent, http, base, frame, key, ledger, rng))
            ledger.replies_pending.add(task)
            task.add_done_callback(ledger.replies_pending.discard)
            task.add_done_callback(ledger.check)
        elif kind == "offer":
            chat = int(str(frame["address_name"]).rsplit(" ", 1)[1])
            ledger.offered[chat] = now
            ledger.interaction_of[chat] = frame["interaction_id"]
            await agent.ws.send_json(
                {"type": "accept_offer", "id": f"accept-{chat}", "offer_id": frame["offer_id"]}
            )
        elif kind == "reply" and not frame.get("ok"):
            ledger.problem(f"agent {agent.user_id}: {frame.get('ref')} refused: {frame['error']}")
        elif kind == "reply" and frame.get("ref") == "ready":
            ledger.ready_agents += 1
            if ledger.ready_agents == ledger.agents:
                ledger.all_ready.set()


async def _answer(
    agent: Agent,
    http: aiohttp.ClientSession,
    base: str,
    frame: dict[str, Any],
    key: str,
    ledger: Ledger,
    rng: random.Random,
) -> None:
    await asyncio.sleep(rng.uniform(*THINK_S))
    answer = "a" + key[1:]
    ledger.a2v_sent[answer] = time.monotonic()
    try:
        response = await http.post(
            f"{base}/api/v1/interactions/{frame['interaction_id']}/messages",
            json={"body": f"{answer} thanks, {FILLER}"},
            headers={"Cookie": f"cc_session={agent.token}", "X-CSRF-Token": agent.csrf},
        )
        async with response:
            if response.status == 202:
                ledger.a2v_accepted[answer] = time.monotonic()
            else:
                text = (await response.text())[:200]
                ledger.problem(f"{answer}: POST {response.status} {text}")
    except aiohttp.ClientError as exc:
        ledger.problem(f"{answer}: POST failed: {type(exc).__name__}: {exc}")


async def _visitor_reader(visitor: Visitor, ledger: Ledger) -> None:
    assert visitor.ws is not None
    async for message in visitor.ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        now = time.monotonic()
        frame = json.loads(message.data)
        kind = frame.get("type")
        if kind == "message" and frame.get("from") == "agent":
            key = text_key(frame["text"])
            if key in ledger.a2v_got:
                ledger.problem(f"{key} reached the visitor twice")
            ledger.a2v_got[key] = now
            ledger.check()
        elif kind == "message" and frame.get("from") == "visitor":
            visitor.unconfirmed.pop(frame["id"], None)
        elif (
            kind == "error"
            and frame.get("code") == "chat.unavailable"
            and visitor.resend_later(str(frame.get("id")))
        ):
            ledger.resent += 1
        elif kind == "started":
            visitor.started.set()
        elif kind == "agent_joined":
            ledger.joined[visitor.index] = now
            visitor.joined.set()
        elif kind == "error":
            ledger.problem(f"visitor {visitor.index}: {frame.get('code')} {frame.get('message')}")
        elif kind == "ended":
            ledger.problem(f"visitor {visitor.index}: chat ended by the {frame.get('by')}")


def _results(
    ledger: Ledger, plan: Any, open_s: float, steady_s: float, lag: dict[str, float]
) -> dict[str, Any]:
    v2a = [ledger.v2a_got[k] - t for k, t in ledger.v2a_sent.items() if k in ledger.v2a_got]
    a2v = [ledger.a2v_got[k] - t for k, t in ledger.a2v_sent.items() if k in ledger.a2v_got]
    offer = [ledger.offered[c] - t for c, t in ledger.first_sent.items() if c in ledger.offered]
    joined = [ledger.joined[c] - t for c, t in ledger.first_sent.items() if c in ledger.joined]
    expected = plan["chats"] * plan["messages"]
    return {
        "chats_opened": len(ledger.joined),
        "open_s": round(open_s, 3),
        "steady_s": round(steady_s, 3),
        "v2a_sent": len(ledger.v2a_sent),
        "v2a_received": len(v2a),
        "a2v_sent": len(ledger.a2v_sent),
        "a2v_received": len(a2v),
        "resent_v2a": ledger.resent,
        "lost_v2a": expected - len(v2a),
        "lost_a2v": expected - len(a2v),
        "v2a": summary_ms(v2a),
        "a2v": summary_ms(a2v),
        "first_to_offer": summary_ms(offer),
        "first_to_joined": summary_ms(joined),
        "load_lag": lag,
        "problems": ledger.problems,
        # For the daemon's stage timestamps (see Stages); taken out of the figures.
        "raw": {
            "sent": {**ledger.v2a_sent, **ledger.a2v_sent},
            "got": {**ledger.v2a_got, **ledger.a2v_got},
            "accepted": ledger.a2v_accepted,
        },
    }


# --- the daemon (its own process) --------------------------------------------------------


def daemon_config(database_url: str) -> Any:
    """The shipped config.yaml, on this store, with no PBX and quiet logs."""
    raw: dict[str, Any] = yaml.safe_load((ROOT / "config.yaml").read_text())
    raw["database"] = {**raw.get("database", {}), "url": database_url}
    raw["web"] = {**raw.get("web", {}), "host": "127.0.0.1", "port": 0}
    raw["pbx"] = {"mode": "off"}
    # INFO logs a line per chat started; a log pipe is not what is measured.
    raw["logging"] = {"level": "WARNING", "format": "text"}
    return parse_config(raw, {})


# The reply handler calls `queue_reply` by the name its module imported: wrapped there.
_REPLY_MODULE: Any = api_interactions


class Stages:
    """When each steady-phase message passed each step of the daemon, by its key: where
    the time of a delivery goes. The steps are wrapped from outside, the way
    bench/pop_latency.py times the bus; the daemon's code is not changed."""

    V2A = ("sent", "intake_in", "intake_out", "bus_dispatch", "hub_push", "got")
    A2V = ("sent", "reply_stored", "accepted", "sender_send", "got")

    def __init__(self) -> None:
        self.at: dict[str, dict[str, float]] = {name: {} for name in (*self.V2A, *self.A2V)}
        self.key_of_id: dict[int, str] = {}
        self._store_reply: Any = None
        self.bus_handlers: dict[str, dict[str, float]] = {}
        self.bus_depth_max = 0
        self.pool_size = 0
        self.pool_out_max = 0

    def note(self, stage: str, key: str) -> None:
        self.at[stage].setdefault(key, time.monotonic())

    def instrument(self, daemon: Any) -> None:
        """Wrap the intake, the conversation feed's bus handlers, the hub's pushes to
        agents, the storing of a reply and the chat sender."""
        intake = daemon.messages
        receive = intake.receive

        async def timed_receive(message: InboundMessage) -> Received:
            key = text_key(message.body)
            self.note("intake_in", key)
            received: Received = await receive(message)
            self.note("intake_out", key)
            self.key_of_id[received.message_id] = key
            return received

        intake.receive = timed_receive
        handlers = daemon.bus._handlers[MessageReceived]

        def timed_handler(handler: Any) -> Any:
            async def timed(event: MessageReceived) -> None:
                key = self.key_of_id.get(event.message_id)
                if key is not None:
                    self.note("bus_dispatch", key)
                await handler(event)

            return timed

        handlers[:] = [timed_handler(h) for h in handlers]
        # Every bus handler timed: the bus runs them one after another, so a handler's
        # time is every later event's wait.
        bus = daemon.bus
        for handler_list in bus._handlers.values():
            handler_list[:] = [self._timed_on_bus(bus, h) for h in handler_list]
        to_agent = daemon.hub.to_agent

        def timed_to_agent(user_id: int, message: dict[str, Any]) -> int:
            if message.get("type") == "message":
                self.note("hub_push", text_key(str(message["message"].get("body", ""))))
            return int(to_agent(user_id, message))

        daemon.hub.to_agent = timed_to_agent
        # The handler calls the name its module imported: wrap it there.
        store_reply = self._store_reply = _REPLY_MODULE.queue_reply

        async def timed_queue_reply(*args: Any, **kwargs: Any) -> Any:
            row = await store_reply(*args, **kwargs)
            self.note("reply_stored", text_key(row.body))
            return row

        _REPLY_MODULE.queue_reply = timed_queue_reply
        sender = daemon.delivery.senders["chat"]
        send = sender.send

        async def timed_send(out: OutboundMessage) -> SendResult:
            self.note("sender_send", text_key(out.body))
            result: SendResult = await send(out)
            return result

        sender.send = timed_send

    def _timed_on_bus(self, bus: Any, handler: Any) -> Any:
        name = getattr(handler, "__qualname__", repr(handler))
        if name.endswith("timed_handler.<locals>.timed"):
            name = "ConversationFeed.on_received (timed)"
        row = self.bus_handlers.setdefault(name, {"calls": 0, "total_ms": 0.0, "max_ms": 0.0})

        async def timed(event: Any) -> None:
            self.bus_depth_max = max(self.bus_depth_max, bus._queue.qsize())
            started = time.perf_counter()
            result = handler(event)
            if result is not None:
                await result
            spent = (time.perf_counter() - started) * 1000
            row["calls"] += 1
            row["total_ms"] += spent
            row["max_ms"] = max(row["max_ms"], spent)

        return timed

    def restore(self) -> None:
        """Put the reply handler's `queue_reply` back."""
        if self._store_reply is not None:
            _REPLY_MODULE.queue_reply = self._store_reply

    def summary(self, raw: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        """Median and p99 of each step, per direction (keys `v…` and `a…`)."""
        self.at["sent"], self.at["got"] = raw["sent"], raw["got"]
        self.at["accepted"] = raw["accepted"]
        out: dict[str, dict[str, float]] = {}
        for prefix, steps in (("v", self.V2A), ("a", self.A2V)):
            for before, after in itertools.pairwise(steps):
                spans = [
                    t - self.at[before][k]
                    for k, t in self.at[after].items()
                    if k.startswith(prefix) and k in self.at[before]
                ]
                row = summary_ms(spans)
                out[f"{prefix}2{'v' if prefix == 'a' else 'a'}:{before}->{after}"] = {
                    "median_ms": row["median_ms"],
                    "p99_ms": row["p99_ms"],
                }
        return out


async def _watch_pool(daemon: Any, stages: Stages) -> None:
    """The most connections of the store's pool in use at once (sampled every 10 ms)."""
    pool = daemon.sessionmaker.kw["bind"].pool
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", 0)
    stages.pool_size = int(size() + overflow) if callable(size) else 0
    checkedout = getattr(pool, "checkedout", None)
    if not callable(checkedout):
        return
    while True:
        stages.pool_out_max = max(stages.pool_out_max, int(checkedout()))
        await asyncio.sleep(0.01)


def daemon_main(plan: dict[str, Any], results: Any) -> None:
    """One run in a fresh process: its figures (or the error) onto `results`."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results.put(asyncio.run(_daemon_run(plan, Path(tmp))))
    except Exception as exc:
        results.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


async def _daemon_run(plan: dict[str, Any], tmp: Path) -> dict[str, Any]:
    async with scratch_database(plan["database_url"], tmp) as url:
        figures = await _daemon(plan, url)
    return {**figures, "backend": backend_name(url)}


async def _daemon(plan: dict[str, Any], url: str) -> dict[str, Any]:
    users.password_hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    app = make_app(daemon_config(url))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    loop = asyncio.get_running_loop()
    load: Any = None
    try:
        daemon = app[DAEMON]
        routing = daemon.routing
        assert routing is not None and daemon.sessionmaker is not None
        async with daemon.sessionmaker.begin() as db:
            made = [
                await users.create_user(
                    db,
                    username=f"agent{n}",
                    display_name=f"Agent {n}",
                    role="agent",
                    password="agent-pass-1",
                    skills={"support": 5},
                )
                for n in range(plan["agents"])
            ]
            ids = [(user.id, user.username, user.display_name) for user in made]
        creds = []
        for user_id, username, display_name in ids:
            await routing.sync_user(user_id)
            web_session = await daemon.sessions.create(
                user_id=user_id,
                username=username,
                display_name=display_name,
                role="agent",
                now=time.time(),
            )
            creds.append((user_id, web_session.token, web_session.csrf_token))

        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        load = ctx.Process(target=load_main, args=(theirs, port, creds, plan), name="webchat-load")
        load.start()

        async def ask(command: str | None, expect: str) -> Any:
            if command is not None:
                ours.send(command)
            if not await loop.run_in_executor(None, ours.poll, PHASE_TIMEOUT_S + 60):
                raise RuntimeError(f"the load process did not report {expect}")
            kind, value = ours.recv()
            assert kind == expect, (kind, expect)
            return value

        await ask(None, "agents_ready")
        # Every agent ready (their set_status went through the socket), then a breath.
        ready = sum(1 for a in routing.router.agents.values() if a.status == "ready")
        if ready != len(creds):
            raise RuntimeError(f"{ready} of {len(creds)} agents ready")
        await asyncio.sleep(1.0)
        rss_before = rss_kib()
        opened = await ask("open", "opened")
        await asyncio.sleep(1.0)  # the accepts' write-behind settles
        rss_opened = rss_kib()

        stages = Stages()
        stages.instrument(daemon)
        pool_watch = asyncio.create_task(_watch_pool(daemon, stages))
        profiler = cProfile.Profile() if plan["profile"] else None
        watch = LagWatch()
        watch.start()
        cpu_before = cpu_seconds()
        loop_cpu_before = time.thread_time()  # this thread runs the daemon's event loop
        if profiler is not None:
            profiler.enable()
        steady = await ask("steady", "steady_done")
        if profiler is not None:
            profiler.disable()
        cpu_used = cpu_seconds() - cpu_before
        loop_cpu = time.thread_time() - loop_cpu_before
        daemon_lag = watch.stop()
        rss_after = rss_kib()
        ours.send("close")
        await loop.run_in_executor(None, load.join, 30)
        if profiler is not None:
            profiler.dump_stats(plan["profile"])
            pstats.Stats(plan["profile"]).sort_stats("cumulative").print_stats(40)

        stages.restore()
        pool_watch.cancel()
        steady["stages"] = stages.summary(steady.pop("raw"))
        steady["bus_handlers"] = {
            name: {k: round(v, 1) for k, v in row.items()}
            for name, row in sorted(stages.bus_handlers.items(), key=lambda kv: -kv[1]["total_ms"])
            if row["calls"]
        }
        steady["bus_depth_max"] = stages.bus_depth_max
        steady["pool"] = {"size": stages.pool_size, "checked_out_max": stages.pool_out_max}
        messages = steady["v2a_received"] + steady["a2v_received"]
        chats = steady["chats_opened"] or 1
        delivery = daemon.delivery.figures() if daemon.delivery is not None else {}
        return {
            **steady,
            "chats": plan["chats"],
            "agents": plan["agents"],
            "messages_per_chat": plan["messages"],
            "joined_in_open_phase": opened["joined"],
            "rss_before_mb": round(rss_before / 1024, 1),
            "rss_opened_mb": round(rss_opened / 1024, 1),
            "rss_after_mb": round(rss_after / 1024, 1),
            "rss_per_chat_kb": round((rss_opened - rss_before) / chats, 1),
            "cpu_s": round(cpu_used, 3),
            "cpu_ms_per_message": round(cpu_used * 1000 / max(1, messages), 3),
            # The event loop's thread alone (the rest: SQLite's threads) and its share of
            # the steady phase's wall time: near 1.0, the loop is saturated.
            "loop_cpu_s": round(loop_cpu, 3),
            "loop_busy": round(loop_cpu / max(1e-9, steady["steady_s"]), 3),
            "daemon_lag": daemon_lag,
            "delivery": delivery,
            "dropped_visitor_sockets": _dropped(daemon),
        }
    finally:
        if load is not None and load.is_alive():
            load.terminate()
        await runner.cleanup()


def _dropped(daemon: Any) -> int:
    return 0 if daemon.webchat is None else int(daemon.webchat.sender.dropped_sockets)


# --- runs, medians, the table ------------------------------------------------------------

MEDIAN_PATHS = (
    ("v2a", "median_ms"),
    ("v2a", "p95_ms"),
    ("v2a", "p99_ms"),
    ("v2a", "max_ms"),
    ("a2v", "median_ms"),
    ("a2v", "p95_ms"),
    ("a2v", "p99_ms"),
    ("a2v", "max_ms"),
    ("first_to_offer", "median_ms"),
    ("first_to_offer", "p99_ms"),
    ("first_to_joined", "median_ms"),
    ("first_to_joined", "p99_ms"),
    ("rss_per_chat_kb",),
    ("rss_before_mb",),
    ("rss_opened_mb",),
    ("cpu_ms_per_message",),
    ("loop_busy",),
    ("open_s",),
    ("steady_s",),
    ("load_1m",),
    ("daemon_lag", "p99_ms"),
    ("load_lag", "p99_ms"),
)


def _get(run: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = run
    for key in path:
        value = value[key]
    return float(value)


def problems_of(run: dict[str, Any]) -> list[str]:
    """What makes a run not count: lost messages, chats not opened, refusals."""
    found = list(run["problems"])
    if run["chats_opened"] != run["chats"]:
        found.append(f"{run['chats_opened']} of {run['chats']} chats opened")
    if run["lost_v2a"] or run["lost_a2v"]:
        found.append(f"lost: {run['lost_v2a']} visitor->agent, {run['lost_a2v']} agent->visitor")
    if run["dropped_visitor_sockets"]:
        found.append(f"{run['dropped_visitor_sockets']} visitor sockets dropped as too slow")
    return found


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians across runs (nested as in one run), the sums of losses, ok if all were."""
    out: dict[str, Any] = {
        "bench": "webchat",
        "runs": len(runs),
        "backend": runs[0]["backend"],
        "chats": runs[0]["chats"],
        "agents": runs[0]["agents"],
        "messages_per_chat": runs[0]["messages_per_chat"],
        "chats_opened": min(r["chats_opened"] for r in runs),
        "messages_each_way": min(min(r["v2a_sent"], r["a2v_sent"]) for r in runs),
        "resent_v2a": sum(r["resent_v2a"] for r in runs),
        "lost_v2a": sum(r["lost_v2a"] for r in runs),
        "lost_a2v": sum(r["lost_a2v"] for r in runs),
    }
    for path in MEDIAN_PATHS:
        median = round(statistics.median(_get(r, path) for r in runs), 3)
        target = out
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = median
    out["stages"] = {
        step: {
            stat: round(statistics.median(r["stages"][step][stat] for r in runs), 2)
            for stat in ("median_ms", "p99_ms")
        }
        for step in runs[0]["stages"]
    }
    problems = [f"run {n}: {p}" for n, r in enumerate(runs, 1) for p in problems_of(r)]
    p99 = max(out["v2a"]["p99_ms"], out["a2v"]["p99_ms"])
    out.update(
        problems=problems,
        ok=not problems,
        target_p99_ms=TARGET_P99_MS,
        target_met=not problems and p99 < TARGET_P99_MS,
        load_average=[round(x, 2) for x in load_average()],
        per_run=runs,
    )
    return out


def print_table(figures: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    """The readable part: a line per run, then the medians."""
    print(
        f"Web chat through the daemon: {figures['chats']} chats, {figures['agents']} agents,"
        f" {figures['messages_per_chat']} messages each way per chat, {figures['backend']}"
        f" store; {figures['runs']} run(s), medians; {describe_load()}"
    )
    print(
        f"  {'run':<4}{'v>a med':>9}{'p99':>9}{'max':>9}{'a>v med':>9}{'p99':>9}{'max':>9}"
        f"{'kB/chat':>9}{'cpu ms/msg':>11}{'lag d/l':>12}  load  lost"
    )
    for n, r in enumerate(runs, 1):
        print(
            f"  {n:<4}{r['v2a']['median_ms']:>9.1f}{r['v2a']['p99_ms']:>9.1f}"
            f"{r['v2a']['max_ms']:>9.0f}{r['a2v']['median_ms']:>9.1f}{r['a2v']['p99_ms']:>9.1f}"
            f"{r['a2v']['max_ms']:>9.0f}{r['rss_per_chat_kb']:>9.1f}"
            f"{r['cpu_ms_per_message']:>11.2f}"
            f"{r['daemon_lag']['p99_ms']:>6.1f}/{r['load_lag']['p99_ms']:<5.1f}"
            f"  {r['load_1m']:.2f}  {r['lost_v2a'] + r['lost_a2v']}"
        )
    v2a, a2v = figures["v2a"], figures["a2v"]
    rows = [
        ("chats opened", f"{figures['chats_opened']} of {figures['chats']}"),
        ("messages each way", f"{figures['messages_each_way']}"),
        ("lost (visitor->agent, agent->visitor)", f"{figures['lost_v2a']}, {figures['lost_a2v']}"),
        ("refused (chat.unavailable), sent again", f"{figures['resent_v2a']} (all runs)"),
        (
            "visitor -> agent med/p95/p99/max",
            f"{v2a['median_ms']:.1f} / {v2a['p95_ms']:.1f} / {v2a['p99_ms']:.1f}"
            f" / {v2a['max_ms']:.0f} ms",
        ),
        (
            "agent -> visitor med/p95/p99/max",
            f"{a2v['median_ms']:.1f} / {a2v['p95_ms']:.1f} / {a2v['p99_ms']:.1f}"
            f" / {a2v['max_ms']:.0f} ms",
        ),
        (
            "first message -> offer med/p99",
            f"{figures['first_to_offer']['median_ms']:.1f} /"
            f" {figures['first_to_offer']['p99_ms']:.1f} ms",
        ),
        (
            "first message -> agent_joined med/p99",
            f"{figures['first_to_joined']['median_ms']:.1f} /"
            f" {figures['first_to_joined']['p99_ms']:.1f} ms",
        ),
        (
            "daemon RSS before / after opening",
            f"{figures['rss_before_mb']:.1f} / {figures['rss_opened_mb']:.1f} MB"
            f" ({figures['rss_per_chat_kb']:.1f} kB per chat)",
        ),
        (
            "daemon CPU per message; loop thread busy",
            f"{figures['cpu_ms_per_message']:.2f} ms; {figures['loop_busy']:.0%} of the steady"
            " phase",
        ),
        (
            "loop lag p99, daemon / load",
            f"{figures['daemon_lag']['p99_ms']:.1f} / {figures['load_lag']['p99_ms']:.1f} ms",
        ),
        ("open phase / steady phase", f"{figures['open_s']:.1f} s / {figures['steady_s']:.1f} s"),
    ]
    for label, value in rows:
        print(f"  {label:<40} {value}")
    print("  where the time goes (median / p99 ms of each step, medians across runs):")
    for step, row in figures["stages"].items():
        print(f"    {step:<38} {row['median_ms']:>9.1f} / {row['p99_ms']:.1f}")
    last = runs[-1]
    print(
        f"  the bus in run {len(runs)} (one handler at a time; deepest queue"
        f" {last['bus_depth_max']}; store connections in use at most"
        f" {last['pool']['checked_out_max']} of {last['pool']['size']}): calls, total ms, max ms"
    )
    for name, row in list(last["bus_handlers"].items())[:6]:
        print(f"    {name:<50} {row['calls']:>6.0f} {row['total_ms']:>9.0f} {row['max_ms']:>7.1f}")
    if figures["ok"]:
        print("no message lost")
    else:
        for problem in figures["problems"]:
            print(f"PROBLEM: {problem}")
    p99 = max(v2a["p99_ms"], a2v["p99_ms"])
    print(f"target: p99 < {TARGET_P99_MS:g} ms both ways: {figures['target_met']} ({p99:.1f} ms)")


def run_once(plan: dict[str, Any]) -> dict[str, Any]:
    """A fresh daemon process (which starts the load process) for one run."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    process = ctx.Process(target=daemon_main, args=(plan, results), name="webchat-daemon")
    process.start()
    try:
        figures: dict[str, Any] = results.get(timeout=3 * PHASE_TIMEOUT_S + 120)
    finally:
        process.join(60)
        if process.is_alive():
            process.terminate()
    if "error" in figures:
        raise RuntimeError(f"the run failed: {figures['error']}")
    return figures


def main() -> int:
    """Run, print the table and the JSON line; exit 1 if a message was lost."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 chats, 80 agents, 3 messages")
    parser.add_argument("--chats", type=int, help=f"concurrent chats ({FULL['chats']})")
    parser.add_argument("--agents", type=int, help=f"agents ({FULL['agents']})")
    parser.add_argument(
        "--messages-per-chat", type=int, help=f"each way, steady phase ({FULL['messages']})"
    )
    parser.add_argument("--runs", type=int, help="runs, medians shown (3; 1 with --quick)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--database-url",
        help="the store: a SQLite URL (that file; a temporary one by default) or a PostgreSQL"
        " URL (a scratch database beside the one named, dropped at the end)",
    )
    parser.add_argument("--profile", help="cProfile the daemon's steady phase into this file")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    chats = args.chats or size["chats"]
    agents = args.agents or size["agents"]
    messages = args.messages_per_chat or size["messages"]
    runs_wanted = args.runs or (1 if args.quick or args.profile else 3)
    if min(chats, agents, messages, runs_wanted) < 1:
        parser.error("--chats, --agents, --messages-per-chat and --runs must be positive")
    if agents * 3 < chats:
        parser.error(f"{agents} agents take at most {agents * 3} chats (capacity 3 each)")
    if chats > 250 * 250:
        parser.error("at most 62,500 chats (one loopback address each)")
    if args.profile and runs_wanted != 1:
        parser.error("--profile takes a single run")
    runs = []
    for n in range(runs_wanted):
        plan = {
            "chats": chats,
            "agents": agents,
            "messages": messages,
            "seed": args.seed + n,
            "database_url": args.database_url,
            "profile": str(Path(args.profile).resolve()) if args.profile else None,
        }
        load = load_average()[0]
        runs.append({**run_once(plan), "load_1m": round(load, 2)})
    figures = combine(runs)
    print_table(figures, runs)
    print(json.dumps(figures))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
