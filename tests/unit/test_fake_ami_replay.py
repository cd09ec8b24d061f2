"""The replay AMI server answers like the recording, with the client's ActionIDs."""

from __future__ import annotations

import asyncio

from tests.fakes.ami_replay import ReplayServer, Scenario


def test_scenario_splits_banner_and_steps() -> None:
    scenario = Scenario.load("a_login_core")
    assert scenario.banner == b"Asterisk Call Manager/11.0.0\r\n"
    assert [s.action for s in scenario.steps] == [
        "login",
        "coresettings",
        "corestatus",
        "ping",
        "command",
        "logoff",
    ]
    assert b"Event: FullyBooted" in scenario.steps[0].reply
    assert scenario.steps[-1].ends_with_eof


async def test_replay_rewrites_action_ids() -> None:
    server = await ReplayServer(Scenario.load("a_login_core")).start()
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        assert await reader.readline() == b"Asterisk Call Manager/11.0.0\r\n"
        writer.write(b"Action: Login\r\nActionID: mine-1\r\nUsername: cti\r\nSecret: x\r\n\r\n")
        reply = await reader.readuntil(b"\r\n\r\n")
        assert reply.startswith(b"Response: Success\r\nActionID: mine-1\r\n")
        writer.write(b"Action: Ping\r\nActionID: mine-2\r\n\r\n")
        data = b""
        while b"mine-2" not in data:
            data += await reader.readuntil(b"\r\n\r\n")
        assert b"Ping: Pong" in data
        writer.close()
    finally:
        await server.stop()
