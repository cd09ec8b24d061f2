"""The AMI client against a loopback server speaking recorded Asterisk 22 bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.ami.client import AmiClient, AmiError, AmiNotConnected, AmiTimeout
from adapters.ami.framing import AmiMessage
from tests.fakes.ami_replay import ReplayServer, Scenario


@pytest.fixture
async def server() -> AsyncIterator[ReplayServer]:
    replay = await ReplayServer(Scenario.load("e1_hold_redirect_to_agent")).start()
    yield replay
    await replay.stop()


def client_for(
    server: ReplayServer, **kw: object
) -> tuple[AmiClient, list[AmiMessage], list[tuple[str, str | None]]]:
    events: list[AmiMessage] = []
    states: list[tuple[str, str | None]] = []
    options: dict[str, object] = {
        "ping_interval": 30.0,
        "action_timeout": 2.0,
        "reconnect_base": 0.05,
        "reconnect_max": 0.2,
    }
    options.update(kw)
    client = AmiClient(
        host=server.host,
        port=server.port,
        username="cti",
        secret="cti-secret",
        on_event=events.append,
        on_state=lambda state, error: states.append((state, error)),
        **options,  # type: ignore[arg-type]
    )
    return client, events, states


async def test_logs_in_and_delivers_events_in_wire_order(server: ReplayServer) -> None:
    client, events, states = client_for(server)
    await client.start()
    try:
        await client.wait_connected(5)
        assert ("up", None) in states
        reply = await client.send(
            {
                "Action": "Originate",
                "Channel": "Local/5551004@simcaller",
                "Context": "inbound",
                "Exten": "5003",
                "Priority": "1",
                "Async": "true",
            }
        )
        # An async Originate is answered at once; its OriginateResponse comes later as
        # an event (waiting for it would wait for the phone to answer: issue 11, 3).
        assert reply.get("Response") == "Success"
        channels = await client.send({"Action": "CoreShowChannels"}, as_list=True)
        names = [m.get("Channel") for m in channels if m.get("Event") == "CoreShowChannel"]
        assert names == [
            "Local/5551004@simcaller-00000007;1",
            "Local/5551004@simcaller-00000007;2",
        ]
        seen = [m.event for m in events]
        assert seen.index("Newchannel") < seen.index("MusicOnHoldStart")
        assert "FullyBooted" in seen
    finally:
        await client.stop()


async def test_not_connected_sends_nothing(server: ReplayServer) -> None:
    client, _events, _states = client_for(server)
    with pytest.raises(AmiNotConnected):
        await client.send({"Action": "Ping"})


async def test_action_timeout_is_a_clear_error(server: ReplayServer) -> None:
    server.silent_actions.add("redirect")
    client, _events, _states = client_for(server)
    await client.start()
    try:
        await client.wait_connected(5)
        with pytest.raises(AmiTimeout, match=r"Redirect got no reply from Asterisk within 0\.2 s"):
            await client.send(
                {
                    "Action": "Redirect",
                    "Channel": "x",
                    "Context": "deliver",
                    "Exten": "agent1002",
                    "Priority": "1",
                },
                reply_within=0.2,
            )
        assert client.connected  # a slow action does not drop the link
    finally:
        await client.stop()


async def test_unanswered_action_fails_and_is_never_resent_after_reconnect(
    server: ReplayServer,
) -> None:
    server.silent_actions.add("originate")
    client, _events, states = client_for(server)
    await client.start()
    try:
        await client.wait_connected(5)
        pending = asyncio.ensure_future(
            client.send(
                {
                    "Action": "Originate",
                    "Channel": "Local/1@x",
                    "Context": "c",
                    "Exten": "1",
                    "Priority": "1",
                },
                reply_within=5,
            )
        )
        await asyncio.sleep(0.1)
        await server.drop_all()
        with pytest.raises(AmiError, match="not sent again"):
            await pending
        await asyncio.sleep(0.05)
        await client.wait_connected(5)
        await asyncio.sleep(0.3)
        assert server.connections == 2
        assert server.received_actions.count("originate") == 1
        assert [s for s, _ in states].count("up") == 2
        assert any(s == "down" for s, _ in states)
    finally:
        await client.stop()


async def test_half_open_connection_is_noticed_by_ping(server: ReplayServer) -> None:
    server.silent_actions.add("ping")
    client, _events, _states = client_for(server, ping_interval=0.2, action_timeout=0.2)
    await client.start()
    try:
        await client.wait_connected(5)
        for _ in range(50):
            if server.connections >= 2:
                break
            await asyncio.sleep(0.05)
        assert server.connections >= 2
    finally:
        await client.stop()


async def test_refused_login_backs_off_and_reports_why(server: ReplayServer) -> None:
    server.accept_logins = False
    client, _events, states = client_for(server)
    await client.start()
    try:
        await asyncio.sleep(1.0)
        assert not client.connected
        assert server.connections >= 2  # it keeps trying, with back-off
        assert ("down", "authentication failed") in states
    finally:
        await client.stop()


async def test_unreachable_asterisk_reports_and_retries() -> None:
    client = AmiClient(
        host="127.0.0.1",
        port=1,
        username="u",
        secret="s",
        on_event=lambda m: None,
        reconnect_base=0.05,
        reconnect_max=0.1,
        on_state=lambda s, e: None,
    )
    await client.start()
    try:
        await asyncio.sleep(0.3)
        assert not client.connected
        assert client.last_error is not None and "cannot connect" in client.last_error
    finally:
        await client.stop()


def test_the_event_filter_holds_before_panoramisk_attaches_its_factory() -> None:
    # Asterisk sends its banner the moment it accepts; panoramisk attaches the Manager as
    # the protocol's factory in a callback that can run after that first read. The
    # filter must not depend on it (it once did: every event decoded, half the speed).
    client = AmiClient(
        host="127.0.0.1",
        port=5038,
        username="cti",
        secret="x",
        on_event=lambda message: None,
        wanted_events=frozenset({"Newchannel"}),
    )
    protocol = client._manager.config["protocol_factory"]()
    protocol.connection_made(None)  # factory is None, as panoramisk leaves it here
    protocol.data_received(b"Asterisk Call Manager/11.0.0\r\n")
    seen: list[AmiMessage] = []

    class Factory:
        on_ami_event = staticmethod(seen.append)

    protocol.factory = Factory()
    protocol.data_received(
        b"Event: VarSet\r\nChannel: PJSIP/1-1\r\nVariable: X\r\nValue: 1\r\n\r\n"
        b"Event: Newchannel\r\nChannel: PJSIP/1-1\r\nUniqueid: 1.1\r\n\r\n"
    )
    assert [m.event for m in seen] == ["Newchannel"]
