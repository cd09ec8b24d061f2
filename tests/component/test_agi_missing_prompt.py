"""A missing prompt is not a hang-up (issue 11, 1), on a loopback FastAGI session.

Asterisk answers STREAM FILE / GET DATA of a missing file with `200 result=-1 endpos=0`
like a hang-up, but the channel is up: CHANNEL STATUS then answers 200. A real hang-up
is followed by a HANGUP line (no probe needed) or gets 511 for the probe.
"""

from __future__ import annotations

import pytest

from adapters.agi.channel import AgiChannel, CallerHungUp, PromptMissing
from adapters.agi.codec import AgiEnvironment
from adapters.asterisk.ivr import AgiCaller
from tests.component.test_agi_server import (
    H2,
    StartServer,
    fake_asterisk,
    from_asterisk,
    start,
    table_responder,
)

__all__ = ["start"]  # the fixture, used by name


@pytest.mark.parametrize(
    ("status_reply", "outcome"),
    [
        ("200 result=6\n", "missing"),
        ("511 Command Not Permitted on a dead channel or intercepted\n", "hung up"),
        ("HANGUP\n", "hung up"),
    ],
)
async def test_stream_file_result_minus_one_is_probed(
    start: StartServer, status_reply: str, outcome: str
) -> None:
    seen: list[str] = []

    async def handler(env: AgiEnvironment, ch: AgiChannel) -> None:
        try:
            await ch.stream_file("welcome")
        except PromptMissing:
            seen.append("missing")
            await ch.hangup()
        except CallerHungUp:
            seen.append("hung up")
            await ch.hangup()

    server = await start({"ivr": handler})
    env, _ = from_asterisk(H2)
    commands = await fake_asterisk(
        server.port,
        env,
        table_responder(
            {
                "STREAM FILE": "200 result=-1 endpos=0\n",
                "CHANNEL STATUS": status_reply,
                "HANGUP": "200 result=1\nHANGUP\n",
            }
        ),
    )
    assert seen == [outcome]
    assert commands[:2] == ['STREAM FILE welcome ""', "CHANNEL STATUS"]


async def test_menu_without_its_prompt_still_reads_keys(start: StartServer) -> None:
    keys: list[str | None] = []

    async def handler(env: AgiEnvironment, ch: AgiChannel) -> None:
        await AgiCaller(ch).play("welcome.wav")  # missing: skipped
        keys.append(await AgiCaller(ch).collect("menu.wav", 2, 5, None))
        await ch.hangup()

    server = await start({"ivr": handler})
    env, _ = from_asterisk(H2)
    commands = await fake_asterisk(
        server.port,
        env,
        table_responder(
            {
                "STREAM FILE": "200 result=-1 endpos=0\n",
                "GET DATA": "200 result=-1\n",
                "CHANNEL STATUS": "200 result=6\n",
                "WAIT FOR DIGIT": "200 result=49\n",  # "1", twice: max_digits reached
                "HANGUP": "200 result=1\nHANGUP\n",
            }
        ),
    )
    assert keys == ["11"]
    assert [c.split()[0] + " " + c.split()[1] for c in commands[:6]] == [
        "STREAM FILE",
        "CHANNEL STATUS",
        "GET DATA",
        "CHANNEL STATUS",
        "WAIT FOR",
        "WAIT FOR",
    ]
