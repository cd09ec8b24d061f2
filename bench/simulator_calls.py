"""Simulated Asterisk: 500 simultaneous calls through the whole daemon, nothing lost.

Run from the repository root:

    .venv/bin/python bench/simulator_calls.py [--quick] [--calls N] [--talk S] [--runs N]
        [--database-url URL]

The daemon is the real one (contact_center.app.make_app) with `pbx.mode: asterisk`, its
store a SQLite file in a temporary directory (or, with `--database-url
postgresql+asyncpg://127.0.0.1:5432/test`, a scratch PostgreSQL database cc_bench_<random>
created beside the one named and dropped at the end; a SQLite URL names the file), and
its AMI client and FastAGI server pointed at a
SimulatedAsterisk (adapters/simasterisk) in the same process, which runs the shipped
dialplan (contrib/asterisk/extensions_contact_center.conf). There are as many ready
agents as calls, each with a simulated phone (PJSIP/<n>) that answers after 0.2 s; the
callers all arrive at once, go through an IVR flow over FastAGI (a prompt, a menu: they
key 2), are queued on `support`, offered to an agent (Setvar + Redirect into
[cc-agents], which Dials the phone), answered, talk for --talk seconds, and the agent
hangs up. The IVR flow is the bundled main flow without its opening-hours check, so the
run does not depend on the time of day.

Measured: total time from the first call placed to the last call closed in the store,
calls per second, AMI events the simulator sent (and per call), AGI commands, the time
from a call's arrival to the agent's answer (median and p99). Then the check: every
interaction in the store ended and was answered by an agent, the daemon's call tracker
and its AsteriskPbx hold no live call, routing holds no contact waiting, offered or
talking, the simulator has no channel left, and every CallStarted the tracker produced
has its CallEnded. With --runs N each run is a fresh daemon and store, and the medians of
the runs are printed after them, with the load average as each run started (the machine
is small and shared). The last line is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from argon2 import PasswordHasher
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.ami.events import CallEnded, CallStarted  # noqa: E402
from adapters.simasterisk import PhonePolicy, SimulatedAsterisk  # noqa: E402
from bench.scratch_db import backend_name, describe_load, load_average, scratch_database  # noqa: E402
from contact_center.app import make_app  # noqa: E402
from contact_center.config import parse_config  # noqa: E402
from contact_center.keys import DAEMON  # noqa: E402
from crm_store import users  # noqa: E402
from crm_store.actors import Actor  # noqa: E402
from crm_store.models import Interaction  # noqa: E402

FULL_CALLS, QUICK_CALLS = 500, 50
FLOW = """name: main
start: welcome
steps:
  welcome: {type: play, prompt: welcome.wav, next: menu}
  menu:
    type: menu
    prompt: main-menu.wav
    choices: {"1": billing, "2": support}
    retries: 1
    invalid: support
    timeout: support
  billing: {type: queue, queue: billing}
  support: {type: queue, queue: support}
"""


def _config(tmp: Path, ami_port: int, database_url: str) -> Any:
    raw: dict[str, Any] = yaml.safe_load((ROOT / "config.yaml").read_text())
    flows = tmp / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(FLOW)
    raw["database"] = {"url": database_url}
    raw["web"] = {**raw.get("web", {}), "host": "127.0.0.1", "port": 0}
    raw["pbx"] = {
        "mode": "asterisk",
        "ami": {
            "host": "127.0.0.1",
            "port": ami_port,
            "username": "cti",
            "secret": "cti-secret",
            "action_timeout_seconds": 30,
            "ping_interval_seconds": 30,
        },
        "agi": {"host": "127.0.0.1", "port": 0},
    }
    raw["ivr"] = {"flows_dir": str(flows), "default_flow": "main"}
    raw["routing"] = {**raw.get("routing", {}), "wrap_up_seconds": 0}
    return parse_config(raw, {})


def _busy(telephony: Any, routing: Any) -> bool:
    """Is the daemon still holding a call or a live contact?"""
    live = ("waiting", "offered", "talking", "held")
    return bool(telephony.calls) or any(c.state in live for c in routing.contacts.values())


async def run_bench(
    calls: int, tmp: Path, *, talk: float = 0.5, database_url: str | None = None
) -> dict[str, Any]:
    """Place `calls` simultaneous calls on a fresh store (see scratch_database); the
    figures and the checks' results."""
    async with scratch_database(database_url, tmp) as url:
        figures = await _run(calls, tmp, url, talk)
    return {**figures, "backend": backend_name(url)}


async def _run(calls: int, tmp: Path, url: str, talk: float) -> dict[str, Any]:
    users.password_hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    sim = SimulatedAsterisk(ami_port=0)
    await sim.start()
    app = make_app(_config(tmp, sim.ami_port, url))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        daemon = app[DAEMON]
        telephony: Any = daemon.telephony
        routing = daemon.routing
        assert routing is not None and daemon.sessionmaker is not None
        sim.set_agi_address("127.0.0.1", telephony.agi.port)
        await telephony.ami.wait_connected(10)
        domain: Counter[str] = Counter()
        feed = telephony.tracker.feed_message

        def counting(message: Any, now: float) -> Any:
            out = feed(message, now)
            for event in out:
                if isinstance(event, CallStarted | CallEnded):
                    domain[type(event).__name__] += 1
            return out

        telephony.tracker.feed_message = counting
        async with daemon.sessionmaker.begin() as db:
            agent_ids = []
            for n in range(calls):
                agent = await users.create_user(
                    db,
                    username=f"agent{n}",
                    role="agent",
                    password="agent-pass-1",
                    skills={"support": 5},
                    device=f"PJSIP/{2000 + n}",
                )
                agent_ids.append(agent.id)
        for n, agent_id in enumerate(agent_ids):
            sim.set_phone(f"PJSIP/{2000 + n}", PhonePolicy(answer_after=0.2, talk_seconds=talk))
            await routing.sync_user(agent_id)
            await routing.set_status(
                agent_id, "ready", None, actor=Actor(agent_id, f"agent{n}", "agent")
            )

        events_before = sim.ami.events_sent
        started = time.perf_counter()
        placed = [sim.place_call(f"0700{n:06d}", "5000", digits=["2"]) for n in range(calls)]
        async with asyncio.timeout(60 + calls * 0.2):
            for call in placed:
                await call.ended.wait()
            # The daemon has no "all quiet" event to await: poll (the timeout bounds it).
            while True:
                if not _busy(telephony, routing):
                    break
                await asyncio.sleep(0.02)
            await routing.writer.flush()
        elapsed = time.perf_counter() - started
        events = sim.ami.events_sent - events_before

        async with daemon.sessionmaker() as db:
            stored = (
                await db.scalars(select(Interaction).where(Interaction.channel == "voice"))
            ).all()
            open_count = await db.scalar(
                select(func.count()).select_from(Interaction).where(Interaction.ended_at.is_(None))
            )
        answered = [ix for ix in stored if ix.answered_at is not None and ix.agent_id]
        waits = sorted(c.connected_at - c.placed_at for c in placed if c.connected_at)
        problems: list[str] = []
        if len(stored) != calls:
            problems.append(f"{len(stored)} interactions stored for {calls} calls")
        if open_count:
            problems.append(f"{open_count} interactions left open")
        if len(answered) != calls:
            problems.append(f"{calls - len(answered)} calls not answered by an agent")
        if any(ix.queue != "support" or not ix.ivr_path for ix in stored):
            problems.append("an interaction without its queue or IVR path")
        if telephony.tracker.calls():
            problems.append(f"{len(telephony.tracker.calls())} calls still in the tracker")
        if telephony.calls:
            problems.append(f"{len(telephony.calls)} calls still in AsteriskPbx")
        if sim.model.channels:
            problems.append(f"{len(sim.model.channels)} channels left in the simulator")
        if domain["CallStarted"] != calls or domain["CallEnded"] != calls:
            problems.append(f"tracker: {dict(domain)} for {calls} calls")
        if telephony.tracker.report["internal_error"]:
            problems.append("tracker internal errors")
        if any(c.abandoned or c.connected_at is None for c in placed):
            problems.append("a caller never reached an agent")
        return {
            "bench": "simulator_calls",
            "calls": calls,
            "talk_s": talk,
            "total_s": round(elapsed, 3),
            "calls_per_s": round(calls / elapsed, 1),
            "ami_events": events,
            "ami_events_per_call": round(events / calls, 1),
            "ami_events_per_s": round(events / elapsed),
            "ami_actions": len(sim.ami.actions),
            "agi_commands": sum(len(c.agi_commands) for c in placed),
            "answer_median_s": round(statistics.median(waits), 3) if waits else None,
            "answer_p99_s": round(waits[int(len(waits) * 0.99) - 1], 3) if waits else None,
            "tracker_started": domain["CallStarted"],
            "tracker_ended": domain["CallEnded"],
            "interactions": len(stored),
            "answered": len(answered),
            "problems": problems,
            "ok": not problems,
        }
    finally:
        await runner.cleanup()
        await sim.stop()


MEDIAN_KEYS = ("total_s", "calls_per_s", "ami_events_per_s", "answer_median_s", "answer_p99_s")


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs' figures: medians of the timings; the counts of the worst run (the first
    with a problem, else the last); ok only if every run was."""
    worst = next((r for r in runs if not r["ok"]), runs[-1])
    medians = {
        key: statistics.median(r[key] for r in runs if r[key] is not None)
        if any(r[key] is not None for r in runs)
        else None
        for key in (*MEDIAN_KEYS, "load_1m")
    }
    problems = [f"run {n}: {p}" for n, r in enumerate(runs, 1) for p in r["problems"]]
    return {
        **worst,
        **medians,
        "runs": len(runs),
        "problems": problems if len(runs) > 1 else worst["problems"],
        "ok": all(r["ok"] for r in runs),
        "load_average": [round(x, 2) for x in load_average()],
        "per_run": runs,
    }


def main() -> int:
    """Run, print the table and the JSON line; exit 1 if anything was lost."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CALLS} calls")
    parser.add_argument("--calls", type=int, default=0, help="number of simultaneous calls")
    parser.add_argument("--talk", type=float, default=0.5, help="talk seconds per call")
    parser.add_argument("--runs", type=int, default=1, help="runs, medians shown (1)")
    parser.add_argument(
        "--database-url",
        help="the store: a SQLite URL (that file; a temporary one by default) or a PostgreSQL"
        " URL (a scratch database beside the one named, dropped at the end)",
    )
    args = parser.parse_args()
    calls = args.calls or (QUICK_CALLS if args.quick else FULL_CALLS)
    if calls < 1 or args.runs < 1:
        parser.error("--calls and --runs must be positive")
    import logging

    logging.basicConfig(level=logging.WARNING)
    runs = []
    for _ in range(args.runs):
        load = load_average()[0]
        with tempfile.TemporaryDirectory() as tmp:
            figures = asyncio.run(
                run_bench(calls, Path(tmp), talk=args.talk, database_url=args.database_url)
            )
        runs.append({**figures, "load_1m": round(load, 2)})
    figures = combine(runs)
    print(
        f"Simulated Asterisk: {calls} simultaneous calls through the daemon,"
        f" {figures['backend']} store; {args.runs} run(s), medians; {describe_load()}"
    )
    if args.runs > 1:
        print(f"  {'run':<5}{'total s':>9}{'calls/s':>9}{'answer med s':>14}{'p99 s':>8}  load  ok")
        for n, r in enumerate(runs, 1):
            print(
                f"  {n:<5}{r['total_s']:>9.2f}{r['calls_per_s']:>9}{r['answer_median_s']!s:>14}"
                f"{r['answer_p99_s']!s:>8}  {r['load_1m']:.2f}  {r['ok']}"
            )
    rows = [
        ("total time", f"{figures['total_s']:.2f} s"),
        ("calls per second", f"{figures['calls_per_s']}"),
        ("AMI events sent", f"{figures['ami_events']} ({figures['ami_events_per_call']}/call)"),
        ("AMI events per second", f"{figures['ami_events_per_s']}"),
        ("AMI actions received", f"{figures['ami_actions']}"),
        ("AGI commands", f"{figures['agi_commands']}"),
        ("arrival to answer, median", f"{figures['answer_median_s']} s"),
        ("arrival to answer, p99", f"{figures['answer_p99_s']} s"),
        ("CallStarted / CallEnded", f"{figures['tracker_started']} / {figures['tracker_ended']}"),
        ("interactions stored / answered", f"{figures['interactions']} / {figures['answered']}"),
    ]
    for label, value in rows:
        print(f"  {label:<32} {value}")
    if figures["ok"]:
        print("no event lost and no call left open")
    else:
        for problem in figures["problems"]:
            print(f"PROBLEM: {problem}")
    print(json.dumps(figures))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
