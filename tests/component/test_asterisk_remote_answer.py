"""The Asterisk adapter's remote answer (`pbx.remote_answer: pjsip-talk`) in order with
the ring it answers: the PJSIPNotify goes out only once the ring's Setvars and Redirect
have been answered, not at all when the ring could not be sent, and never to a device
that is not a PJSIP endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.asterisk.pbx import AsteriskPbx
from adapters.asterisk.settings import PbxConfig
from contact_center.bus import EventBus
from routing.telephony import TelephonyError


async def _no_wait() -> None:
    return None


def _pbx(sent: list[str], *, redirect: Any) -> AsteriskPbx:
    pbx = AsteriskPbx(
        PbxConfig(remote_answer="pjsip-talk"),
        bus=EventBus(),
        sessionmaker=None,  # type: ignore[arg-type]  # neither ring nor answer reads it
        flows={},
        default_flow="main",
        region="GB",
    )

    async def action(message: dict[str, Any]) -> dict[str, Any]:
        sent.append(message["Action"])
        if message["Action"] == "Redirect":
            await redirect()
        return {"Response": "Success"}

    pbx._action = action  # type: ignore[method-assign]
    pbx._link(7, "PJSIP/trunk-00000001", "1700000000.1")
    return pbx


async def test_an_accept_during_the_ring_is_sent_after_the_redirect() -> None:
    sent: list[str] = []
    release = asyncio.Event()
    pbx = _pbx(sent, redirect=release.wait)
    ring = asyncio.create_task(pbx.ring_agent(7, 1, "PJSIP/1001", 20))
    await asyncio.sleep(0.01)
    assert sent == ["Setvar", "Setvar", "Redirect"]  # the Redirect not yet answered
    answer = asyncio.create_task(pbx.answer_for_agent(7, "PJSIP/1001"))
    await asyncio.sleep(0.05)
    assert not answer.done() and sent[-1] == "Redirect"
    release.set()
    await ring
    assert await answer is True
    assert sent == ["Setvar", "Setvar", "Redirect", "PJSIPNotify"]


async def test_no_notify_when_the_ring_could_not_be_sent() -> None:
    sent: list[str] = []
    release = asyncio.Event()

    async def refused() -> None:
        await release.wait()
        raise TelephonyError("Channel does not exist", "telephony.failed")

    pbx = _pbx(sent, redirect=refused)
    ring = asyncio.create_task(pbx.ring_agent(7, 1, "PJSIP/1001", 20))
    await asyncio.sleep(0.01)
    answer = asyncio.create_task(pbx.answer_for_agent(7, "PJSIP/1001"))
    await asyncio.sleep(0.01)
    release.set()
    assert await answer is False
    with pytest.raises(TelephonyError):  # the ring's failure is ring_agent's to raise
        await ring
    assert "PJSIPNotify" not in sent


async def test_remote_answer_is_never_tried_on_a_local_device() -> None:
    sent: list[str] = []
    pbx = _pbx(sent, redirect=_no_wait)
    await pbx.ring_agent(7, 1, "Local/1001@phones", 20)
    assert await pbx.answer_for_agent(7, "Local/1001@phones") is False
    assert "PJSIPNotify" not in sent
