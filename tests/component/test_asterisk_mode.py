"""The daemon with `pbx.mode: asterisk`: a caller goes through the IVR over FastAGI and
is rung to a ready agent through AMI (Setvar of the device, Redirect to the agent context);
AMI runs against a loopback server speaking recorded Asterisk 22 bytes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from contact_center.app import make_app
from contact_center.keys import DAEMON
from crm_store import users
from tests.component.api_fixtures import FLOW, asterisk_config_for
from tests.fakes.ami_replay import ReplayServer, Scenario

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-traces"


def environment() -> bytes:
    """The agi_* block Asterisk really sent in the h2 trace."""
    raw = (TRACES / "h2_fastagi_ivr_to_queue.agi-from-asterisk.txt").read_bytes()
    return raw.split(b"\n\n", 1)[0] + b"\n\n"


async def fake_asterisk_agi(port: int, replies: list[bytes]) -> list[str]:
    """Connect like Asterisk's AGI(), answer each command, return the commands seen."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(environment())
    commands: list[str] = []
    for reply in replies:
        line = await asyncio.wait_for(reader.readline(), 5)
        commands.append(line.decode().strip())
        writer.write(reply)
        await writer.drain()
    writer.close()
    return commands


async def test_ivr_over_fastagi_then_ring_through_ami(tmp_path: Path, fast_hasher: None) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(FLOW)
    ami = await ReplayServer(
        Scenario.load("e1_hold_redirect_to_agent"), answer_unknown=True
    ).start()
    config = asterisk_config_for(
        tmp_path,
        ami.port,
        ivr={"flows_dir": str(flows), "default_flow": "main"},
    )
    app = make_app(config)
    server = TestServer(app)
    await server.start_server()
    try:
        daemon = app[DAEMON]
        asterisk: Any = daemon.telephony
        await asterisk.ami.wait_connected(5)
        statuses = {c.name: c.state for c in daemon.health.all()}
        assert statuses["pbx.ami"] == "up"
        assert statuses["pbx.agi"] == "up"
        assert daemon.sessionmaker is not None and daemon.routing is not None
        async with daemon.sessionmaker.begin() as db:
            agent = await users.create_user(
                db,
                username="bob",
                role="agent",
                password="agent-pass-1",
                skills={"billing": 7},
                device="PJSIP/1002",
            )
        await daemon.routing.sync_user(agent.id)
        await daemon.routing.set_status(agent.id, "ready", None, actor=_actor(agent.id))

        commands = await fake_asterisk_agi(
            asterisk.agi.port,
            [
                b"200 result=1\n",  # SET VARIABLE CC_INTERACTION_ID (the channel's tag first)
                b"200 result=0 endpos=1000\n",  # STREAM FILE welcome
                b"200 result=1\n",  # GET DATA menu -> "1"
                b"200 result=0\n",  # SET CONTEXT
                b"200 result=0\n",  # SET EXTENSION
                b"200 result=0\n",  # SET PRIORITY
            ],
        )
        assert commands[0].startswith("SET VARIABLE CC_INTERACTION_ID")
        assert commands[1] == 'STREAM FILE welcome ""'
        assert commands[2].startswith("GET DATA menu")
        assert commands[3:] == ["SET CONTEXT cc-holding", "SET EXTENSION s", "SET PRIORITY 1"]

        for _ in range(100):
            if "redirect" in ami.received_actions:
                break
            await asyncio.sleep(0.05)
        redirect = next(b for b in ami.received_blocks if b.startswith("Action: Redirect"))
        assert "Channel: Local/5551009@simcaller-0000000e;1" in redirect
        assert "Context: cc-agents" in redirect
        setvars = [b for b in ami.received_blocks if b.startswith("Action: Setvar")]
        assert any("Value: PJSIP/1002" in b for b in setvars)
        await daemon.routing.writer.flush()
        offered = [c for c in daemon.routing.contacts.values() if c.state == "offered"]
        assert [(c.queue, c.agent_id, c.address) for c in offered] == [
            ("billing", agent.id, "5551009")
        ]
        assert offered[0].ivr_inputs["menu"] == "1"
    finally:
        await server.close()
        await ami.stop()


def _actor(user_id: int) -> Any:
    from crm_store.actors import Actor

    return Actor(user_id, "bob", "agent")


async def test_after_a_restart_waiting_calls_are_queued_again_and_gone_ones_closed(
    tmp_path: Path, fast_hasher: None
) -> None:
    from datetime import UTC, datetime

    from crm_store import interactions
    from crm_store.database import make_engine, make_sessionmaker

    ami = await ReplayServer(
        Scenario.load("e1_hold_redirect_to_agent"), answer_unknown=True
    ).start()
    config = asterisk_config_for(
        tmp_path,
        ami.port,
    )
    # What the previous run left: a caller waiting in the holding context (the channel
    # CoreShowChannels lists in e1), and a call that hung up while the daemon was down.
    from crm_store import migrate

    await migrate.upgrade(config.database.url)
    engine = make_engine(config.database.url)
    started = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
    async with make_sessionmaker(engine).begin() as db:
        waiting = await interactions.record_interaction(
            db,
            channel="voice",
            external_id="1795327460.14",
            queue="support",
            address="5551004",
            started_at=started,
        )
        gone = await interactions.record_interaction(
            db, channel="voice", external_id="1795327000.1", queue="support", started_at=started
        )
    await engine.dispose()

    app = make_app(config)
    server = TestServer(app)
    await server.start_server()
    try:
        daemon = app[DAEMON]
        assert daemon.routing is not None and daemon.sessionmaker is not None
        for _ in range(100):
            if waiting.id in daemon.routing.contacts:
                break
            await asyncio.sleep(0.05)
        info = daemon.routing.contacts[waiting.id]
        assert (info.state, info.queue, info.enqueued_at) == (
            "waiting",
            "support",
            started.timestamp(),
        )
        assert daemon.telephony.calls[waiting.id].channel == (  # type: ignore[union-attr]
            "Local/5551004@simcaller-00000007;1"
        )
        async with daemon.sessionmaker() as db:
            closed = await interactions.get_interaction(db, gone.id)
            still = await interactions.get_interaction(db, waiting.id)
        assert closed.end_cause == "ended while the daemon was away"
        assert closed.ended_at is not None
        assert still.ended_at is None
    finally:
        await server.close()
        await ami.stop()


async def test_unanswered_ring_sends_the_caller_back_to_wait(
    tmp_path: Path, fast_hasher: None
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(FLOW)
    ami = await ReplayServer(
        Scenario.load("e1_hold_redirect_to_agent"), answer_unknown=True
    ).start()
    config = asterisk_config_for(
        tmp_path,
        ami.port,
        ivr={"flows_dir": str(flows), "default_flow": "main"},
        queues=[
            {
                "name": "billing",
                "channels": ["voice"],
                "skills": {"billing": 5},
                "offer_timeout_seconds": 1,
            },
            {"name": "support", "channels": ["voice"]},
        ],
    )
    app = make_app(config)
    server = TestServer(app)
    await server.start_server()
    try:
        daemon = app[DAEMON]
        asterisk: Any = daemon.telephony
        await asterisk.ami.wait_connected(5)
        assert daemon.sessionmaker is not None and daemon.routing is not None
        async with daemon.sessionmaker.begin() as db:
            agent = await users.create_user(
                db,
                username="bob",
                role="agent",
                password="agent-pass-1",
                skills={"billing": 7},
                device="PJSIP/1002",
            )
        await daemon.routing.sync_user(agent.id)
        await daemon.routing.set_status(agent.id, "ready", None, actor=_actor(agent.id))
        await fake_asterisk_agi(
            asterisk.agi.port,
            # SET VARIABLE, STREAM FILE, GET DATA "1", SET CONTEXT/EXTENSION/PRIORITY.
            [b"200 result=1\n", b"200 result=0 endpos=1000\n", b"200 result=1\n"]
            + [b"200 result=0\n"] * 3,
        )
        for _ in range(100):
            redirects = [b for b in ami.received_blocks if b.startswith("Action: Redirect")]
            if len(redirects) >= 2:
                break
            await asyncio.sleep(0.05)
        assert "Context: cc-agents" in redirects[0]
        # Nobody answered within the offer timeout: back to music on hold, same channel.
        assert "Context: cc-holding" in redirects[1]
        assert "Channel: Local/5551009@simcaller-0000000e;1" in redirects[1]
        assert daemon.routing.router.agents[agent.id].status == "not_ready"
        waiting = [c for c in daemon.routing.contacts.values() if c.state == "waiting"]
        assert [c.queue for c in waiting] == ["billing"]
    finally:
        await server.close()
        await ami.stop()
