"""AMI action injection: nothing an agent types reaches Asterisk as a header of its own.

Found by attacking the running daemon: a desktop `call_action` transfer whose target held
`\\r\\n\\r\\nAction: Hangup\\r\\nChannel: ...` hung up another customer's call. Every action
now goes through one encoder that refuses CR/LF/NUL, and transfer targets, dialled
numbers and devices are checked before anything is sent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from adapters.ami.client import AmiActionRefused
from crm_store import users
from routing.router import RoutingError
from routing.telephony import TelephonyError
from tests.component.test_ami_client import client_for
from tests.component.test_asterisk_delivery import Delivery, delivery, wait_for
from tests.fakes.ami_replay import ReplayServer, Scenario

OTHER_CALL = "Local/5551009@simcaller-00000042;1"
INJECTED = f"100\r\n\r\nAction: Hangup\r\nChannel: {OTHER_CALL}"


async def _reply(ws: aiohttp.ClientWebSocketResponse, request_id: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=5)
        if message.get("type") == "reply" and message.get("ref") == request_id:
            return message


async def _agent_socket(d: Delivery) -> tuple[TestClient[Any, Any], str]:
    server = d.daemon_server
    assert server is not None
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    response = await client.post(
        "/api/v1/auth/login", json={"username": "bob", "password": "agent-pass-1"}
    )
    assert response.status == 200, await response.text()
    return client, (await response.json())["csrf_token"]


def _no_injected_action(d: Delivery) -> None:
    for block in d.ami.received_blocks:
        assert OTHER_CALL not in block, block
    assert not d.actions("Hangup")


async def test_a_transfer_target_with_line_breaks_is_refused_and_sends_nothing(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with delivery(tmp_path, b"Event: SoftHangupRequest") as d:
        routing = d.daemon.routing
        await wait_for(lambda: routing.contacts[d.interaction_id].state == "talking", "answer")
        sent_before = len(d.ami.received_blocks)
        client, _ = await _agent_socket(d)
        try:
            async with client.ws_connect("/ws/agent") as ws:
                await ws.send_json(
                    {
                        "type": "call_action",
                        "id": "t1",
                        "interaction_id": d.interaction_id,
                        "action": "transfer",
                        "target": INJECTED,
                    }
                )
                reply = await _reply(ws, "t1")
                assert reply["ok"] is False
                assert reply["error"]["id"] == "routing.bad_dial_string"
                await asyncio.sleep(0.1)
                sent = d.ami.received_blocks[sent_before:]
                assert sent == [], sent
                _no_injected_action(d)
                # Nothing changed: the call is still the agent's.
                assert routing.contacts[d.interaction_id].state == "talking"
                assert d.interaction_id in d.daemon.telephony.calls
        finally:
            await client.close()  # closes the daemon's server too


@pytest.mark.parametrize(
    "target",
    [
        "100&PJSIP/premium@trunk",
        "100,tT",
        "${SHELL(id)}",
        "",
        "1" * 33,
        "\uff11\uff10\uff10",
        "100\x00",
    ],
)
async def test_transfer_targets_that_are_neither_a_queue_nor_phone_keys_are_refused(
    tmp_path: Path, fast_hasher: None, target: str
) -> None:
    async with delivery(tmp_path, b"Event: SoftHangupRequest") as d:
        routing = d.daemon.routing
        await wait_for(lambda: routing.contacts[d.interaction_id].state == "talking", "answer")
        redirects = len(d.actions("Redirect"))
        with pytest.raises(RoutingError) as caught:
            await routing.call_action(d.agent_id, d.interaction_id, "transfer", target)
        assert caught.value.error_id in ("routing.bad_dial_string", "routing.no_target")
        assert len(d.actions("Redirect")) == redirects
        assert routing.contacts[d.interaction_id].state == "talking"


async def test_a_transfer_to_phone_keys_with_separators_sends_the_clean_extension(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with delivery(tmp_path, b"Event: SoftHangupRequest") as d:
        routing = d.daemon.routing
        await wait_for(lambda: routing.contacts[d.interaction_id].state == "talking", "answer")
        await routing.call_action(d.agent_id, d.interaction_id, "transfer", " 30-00 ")
        transfer = d.actions("Redirect")[-1]
        assert "Context: cc-transfer" in transfer and "Exten: 3000\r\n" in transfer + "\r\n"


async def test_click_to_dial_refuses_an_injected_number_before_opening_anything(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with delivery(tmp_path, b"Event: SoftHangupRequest") as d:
        routing = d.daemon.routing
        async with d.daemon.sessionmaker.begin() as db:
            agent = await users.create_user(
                db,
                username="carol",
                role="agent",
                password="agent-pass-2",
                skills={},
                device="PJSIP/1003",
            )
        await routing.sync_user(agent.id)
        contacts_before = set(routing.contacts)
        for number in (INJECTED, "+1 555 0100&PJSIP/x", "5551234,tT"):
            with pytest.raises(RoutingError) as caught:
                await routing.dial(agent.id, number)
            assert caught.value.error_id == "routing.bad_dial_string"
        assert set(routing.contacts) == contacts_before
        assert not d.actions("Originate")
        _no_injected_action(d)


async def test_spy_refuses_a_device_that_would_add_chanspy_options(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with delivery(tmp_path, b"Event: SoftHangupRequest") as d:
        telephony = d.daemon.telephony
        for bad in ("PJSIP/1001,B", "PJSIP/1001&PJSIP/1002", "PJSIP/1001\r\nAction: Hangup"):
            with pytest.raises(TelephonyError) as caught:
                await telephony.spy("PJSIP/2000", bad, "listen")
            assert caught.value.error_id == "routing.bad_device"
        assert not d.actions("Originate")


async def test_the_ami_client_refuses_line_breaks_in_any_header_and_sends_nothing() -> None:
    server = await ReplayServer(
        Scenario.load("e1_hold_redirect_to_agent"), answer_unknown=True
    ).start()
    client, _, _ = client_for(server)
    await client.start()
    try:
        await client.wait_connected(5)
        before = len(server.received_blocks)
        for action in (
            {
                "Action": "Redirect",
                "Channel": f"PJSIP/1\r\nAction: Hangup\r\nChannel: {OTHER_CALL}",
            },
            {"Action": "Redirect", "Channel": "PJSIP/1\nAction: Hangup"},
            {"Action": "Setvar", "Variable": "A", "Value": "x\rEvents: on"},
            {"Action": "Originate", "Variable": ["A=1", "B=2\r\nAction: Hangup"]},
            {"Action": "Ping", "Bad\r\nKey": "x"},
            {"Action": "Ping", "Key: with colon": "x"},
            {"Action": "Setvar", "Value": "nul\x00tail"},
        ):
            with pytest.raises(AmiActionRefused):
                await client.send(action)
        await asyncio.sleep(0.05)
        assert len(server.received_blocks) == before
        # The connection is still good for honest actions.
        await client.send({"Action": "Ping"})
    finally:
        await client.stop()
        await server.stop()
