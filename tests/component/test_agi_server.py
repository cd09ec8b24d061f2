"""The FastAGI server on loopback, driven by a fake Asterisk replaying recorded sessions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from adapters.agi import (
    AgiChannel,
    AgiChannelClosed,
    AgiCommandError,
    AgiEnvironment,
    AgiHandler,
    CallerHungUp,
    FastAgiServer,
)
from adapters.agi.server import resolve_route

TRACES = Path(__file__).parent.parent / "fixtures" / "asterisk-traces"
H = "h_fastagi_ivr"
H2 = "h2_fastagi_ivr_to_queue"

Responder = Callable[[str], bytes]
StartServer = Callable[..., Awaitable[FastAgiServer]]


def from_asterisk(name: str) -> tuple[bytes, list[str]]:
    """The environment block (with its blank line) and the reply lines of a trace."""
    data = (TRACES / f"{name}.agi-from-asterisk.txt").read_bytes()
    env, _, rest = data.partition(b"\n\n")
    return env + b"\n\n", rest.decode().split("\n")[:-1]


def to_asterisk(name: str) -> list[str]:
    """The command lines the recording FastAGI server sent."""
    return (TRACES / f"{name}.agi-to-asterisk.txt").read_text().split("\n")[:-1]


def env_with_script(script: str) -> bytes:
    """The h2 environment with another agi_network_script."""
    env, _ = from_asterisk(H2)
    return env.replace(b"agi_network_script: ivr\n", f"agi_network_script: {script}\n".encode())


def trace_responder(name: str) -> Responder:
    """Answers each command with the trace's next reply; a HANGUP notice follows its reply."""
    _, pending = from_asterisk(name)

    def respond(command: str) -> bytes:
        out = pending.pop(0) + "\n"
        while pending and pending[0] == "HANGUP":
            out += pending.pop(0) + "\n"
        return out.encode()

    return respond


def table_responder(table: Mapping[str, str]) -> Responder:
    """Answers by the command's first word(s); unknown commands get 510."""

    def respond(command: str) -> bytes:
        for prefix, reply in table.items():
            if command.startswith(prefix):
                return reply.encode()
        return b"510 Invalid or unknown command\n"

    return respond


async def fake_asterisk(
    port: int, env: bytes, respond: Responder, *, within: float = 5.0
) -> list[str]:
    """Connect, send env, answer every command, and return the commands seen until EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    commands: list[str] = []
    try:
        writer.write(env)
        async with asyncio.timeout(within):
            while line := await reader.readline():
                command = line.decode().removesuffix("\n")
                commands.append(command)
                reply = respond(command)
                if reply:
                    writer.write(reply)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return commands


async def until(predicate: Callable[[], bool], within: float = 3.0) -> None:
    """Wait until predicate() holds (polling: the server has no event for every counter)."""
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)


async def read_to_eof(reader: asyncio.StreamReader, within: float = 3.0) -> bytes:
    """Everything the server sends until it closes."""
    async with asyncio.timeout(within):
        try:
            return await reader.read()
        except ConnectionResetError:
            return b""


@pytest.fixture
async def start() -> AsyncIterator[StartServer]:
    """Starts servers on a free loopback port and stops them after the test."""
    servers: list[FastAgiServer] = []

    async def _start(handler: AgiHandler | Mapping[str, AgiHandler], **kw: Any) -> FastAgiServer:
        kw.setdefault("read_timeout", 2.0)
        server = FastAgiServer("127.0.0.1", 0, handler, **kw)
        await server.start()
        servers.append(server)
        return server

    yield _start
    for server in servers:
        await server.stop()


# --- handlers -----------------------------------------------------------------------


async def h2_flow(env: AgiEnvironment, ch: AgiChannel) -> None:
    """What the recording server did in h2: choose a queue from one digit."""
    await ch.answer()
    digits, timed_out = await ch.get_data("beep", 3000, 4)
    assert (digits, timed_out) == ("2", False)
    await ch.set_variable("IVR_CHOICE", digits)
    assert await ch.get_variable("IVR_CHOICE") == "2"
    await ch.set_variable("IVR_QUEUE", "support")
    await ch.verbose("IVR routed to support", 1)


# --- replaying the recorded sessions --------------------------------------------------


async def test_replays_h2_session(start: StartServer) -> None:
    seen: list[AgiEnvironment] = []

    async def handler(env: AgiEnvironment, ch: AgiChannel) -> None:
        seen.append(env)
        await h2_flow(env, ch)

    server = await start({"ivr": handler})
    env, _ = from_asterisk(H2)
    commands = await fake_asterisk(server.port, env, trace_responder(H2))
    assert commands == to_asterisk(H2)
    assert seen[0].channel == "Local/5551009@simcaller-0000000e;1"
    assert seen[0].args == ("5000",)
    assert (seen[0].route, seen[0].subpath) == ("ivr", "")
    await until(lambda: server.active_sessions == 0)
    stats = server.stats
    assert (stats.connections, stats.sessions_served, stats.handler_errors) == (1, 1, 0)


async def test_replays_h_session_with_unknown_command_and_hangup(start: StartServer) -> None:
    outcomes: list[object] = []

    async def handler(env: AgiEnvironment, ch: AgiChannel) -> None:
        await ch.answer()
        outcomes.append(await ch.stream_file("beep"))
        outcomes.append(await ch.get_data("beep", 3000, 4))
        await ch.set_variable("IVR_CHOICE", "1234")
        outcomes.append(await ch.get_variable("IVR_CHOICE"))
        outcomes.append(await ch.get_variable("NO_SUCH_VARIABLE"))
        outcomes.append(await ch.get_full_variable("${CALLERID(num)}-${CTI_CALLID}"))
        outcomes.append(await ch.exec("Playback", "beep"))
        outcomes.append((await ch.command("NO SUCH COMMAND")).code)
        await ch.hangup()
        outcomes.append(ch.closed)
        with pytest.raises(AgiChannelClosed):
            await ch.verbose("after hangup")

    server = await start(handler)
    env, _ = from_asterisk(H)
    started = time.monotonic()
    commands = await fake_asterisk(server.port, env, trace_responder(H))
    # Asterisk keeps the socket open after HANGUP; the server must close it, at once.
    assert time.monotonic() - started < 1.0
    assert commands == to_asterisk(H)
    assert outcomes == [
        None,
        ("1234", False),
        "1234",
        None,
        "5551007-1795327492.28",
        0,
        510,
        True,
    ]
    await until(lambda: server.active_sessions == 0)
    assert server.stats.handler_errors == 0


async def test_many_concurrent_sessions(start: StartServer) -> None:
    server = await start({"ivr": h2_flow})
    env, _ = from_asterisk(H2)
    results = await asyncio.gather(
        *(fake_asterisk(server.port, env, trace_responder(H2), within=20) for _ in range(200))
    )
    assert all(commands == to_asterisk(H2) for commands in results)
    await until(lambda: server.active_sessions == 0)
    stats = server.stats
    assert (stats.connections, stats.sessions_served, stats.handler_errors) == (200, 200, 0)


# --- clients that misbehave -----------------------------------------------------------


async def test_client_closing_before_blank_line_neither_freezes_nor_spins(
    start: StartServer,
) -> None:
    server = await start({"ivr": h2_flow})
    env, _ = from_asterisk(H2)
    partials = [b"", env[:100], env[:-1], b"agi_network: ye"]
    for data in partials:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    await until(lambda: server.stats.early_closes == len(partials))
    await until(lambda: server.active_sessions == 0)
    # A spinning read loop would burn CPU here (panoramisk's did, forever).
    cpu = time.process_time()
    await asyncio.sleep(0.3)
    assert time.process_time() - cpu < 0.15
    # And the next caller is served normally.
    commands = await fake_asterisk(server.port, env, trace_responder(H2))
    assert commands == to_asterisk(H2)
    stats = server.stats
    assert (stats.early_closes, stats.sessions_served, stats.timeouts) == (len(partials), 1, 0)


async def test_half_closed_client_is_an_early_close(start: StartServer) -> None:
    server = await start({"ivr": h2_flow})
    env, _ = from_asterisk(H2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(env[:200])
    writer.write_eof()  # shutdown(SHUT_WR): EOF for the server, our side still reads
    assert await read_to_eof(reader) == b""
    writer.close()
    await until(lambda: server.stats.early_closes == 1)


async def test_stalled_client_is_dropped_after_the_read_timeout(start: StartServer) -> None:
    server = await start({"ivr": h2_flow}, read_timeout=0.3)
    env, _ = from_asterisk(H2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(env[:150])
    started = time.monotonic()
    assert await read_to_eof(reader) == b""
    assert 0.25 < time.monotonic() - started < 2.0
    writer.close()
    await until(lambda: server.active_sessions == 0)
    assert server.stats.timeouts == 1
    commands = await fake_asterisk(server.port, env, trace_responder(H2))
    assert commands == to_asterisk(H2)


async def test_silent_asterisk_mid_session_times_out(start: StartServer) -> None:
    caught: list[BaseException] = []

    async def handler(env: AgiEnvironment, ch: AgiChannel) -> None:
        await ch.answer()
        try:
            await ch.get_variable("IVR_CHOICE")
        except BaseException as exc:
            caught.append(exc)
            raise

    server = await start(handler, read_timeout=0.3)
    env, _ = from_asterisk(H2)
    commands = await fake_asterisk(
        server.port, env, table_responder({"ANSWER": "200 result=0\n", "GET VARIABLE": ""})
    )
    assert commands == ["ANSWER", "GET VARIABLE IVR_CHOICE"]
    assert [type(e).__name__ for e in caught] == ["AgiTimeout"]
    await until(lambda: server.active_sessions == 0)
    assert server.stats.timeouts == 1


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n",
        b"agi_network: yes\n" + b"agi_x: " + b"a" * 20000 + b"\n\n",
        b"".join(b"agi_v%d: x\n" % n for n in range(300)) + b"\n",
    ],
    ids=["http", "tls", "long-line", "endless-env"],
)
async def test_garbage_is_refused_and_closed(start: StartServer, data: bytes) -> None:
    called: list[str] = []

    async def handler(env: AgiEnvironment, ch: AgiChannel) -> None:
        called.append(env.script)

    server = await start(handler)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    with contextlib.suppress(ConnectionError):
        writer.write(data)
        await writer.drain()
    assert await read_to_eof(reader) == b""
    writer.close()
    await until(lambda: server.active_sessions == 0)
    assert called == []
    assert server.stats.protocol_errors == 1
    env, _ = from_asterisk(H2)
    assert await fake_asterisk(server.port, env, lambda c: b"200 result=1\n") == []
    assert called == ["ivr"]


# --- the caller hanging up ------------------------------------------------------------


@pytest.mark.parametrize(
    ("get_data_reply", "name"),
    [
        ("HANGUP\n", "HANGUP line"),
        ("200 result=-1\nHANGUP\n", "result=-1"),
        ("511 Command Not Permitted on a dead channel or intercepted\n", "dead channel"),
    ],
)
async def test_caller_hangs_up_during_get_data(
    start: StartServer, get_data_reply: str, name: str
) -> None:
    caught: list[BaseException] = []

    async def handler(env: AgiEnvironment, ch: AgiChannel) -> None:
        await ch.answer()
        try:
            await ch.get_data("beep", 3000, 4)
        except CallerHungUp as exc:
            caught.append(exc)
            assert ch.caller_hung_up
            # Nothing more is sent on a hung-up channel; hangup() is a quiet no-op.
            with pytest.raises(CallerHungUp):
                await ch.set_variable("X", "1")
            await ch.hangup()
            raise

    server = await start({"ivr": handler})
    env, _ = from_asterisk(H2)
    commands = await fake_asterisk(
        server.port,
        env,
        table_responder({"ANSWER": "200 result=0\n", "GET DATA": get_data_reply}),
    )
    assert commands == ["ANSWER", "GET DATA beep 3000 4"], name
    assert len(caught) == 1
    await until(lambda: server.active_sessions == 0)
    assert server.stats.caller_hangups == 1
    assert server.stats.handler_errors == 0


async def test_hangup_notice_between_commands(start: StartServer) -> None:
    caught: list[BaseException] = []

    async def handler(env: AgiEnvironment, ch: AgiChannel) -> None:
        await ch.answer()
        await asyncio.sleep(0.05)  # the caller hangs up while we think
        try:
            await ch.set_variable("IVR_CHOICE", "2")
        except CallerHungUp as exc:
            caught.append(exc)

    server = await start(handler)
    env, _ = from_asterisk(H2)
    commands = await fake_asterisk(
        server.port,
        env,
        table_responder({"ANSWER": "200 result=0\nHANGUP\n", "SET VARIABLE": "200 result=1\n"}),
    )
    assert commands == ["ANSWER", 'SET VARIABLE IVR_CHOICE "2"']
    assert len(caught) == 1


async def test_asterisk_closing_mid_command_is_a_hang_up(start: StartServer) -> None:
    caught: list[BaseException] = []
    done = asyncio.Event()

    async def handler(env: AgiEnvironment, ch: AgiChannel) -> None:
        try:
            await ch.stream_file("beep")
        except CallerHungUp as exc:
            caught.append(exc)
        finally:
            done.set()

    server = await start(handler)
    env, _ = from_asterisk(H2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(env)
    assert await reader.readline() == b'STREAM FILE beep ""\n'
    writer.close()
    await asyncio.wait_for(done.wait(), 3)
    assert len(caught) == 1


# --- errors, routing and stopping -----------------------------------------------------


async def test_refused_commands_raise_command_errors(start: StartServer) -> None:
    errors: list[AgiCommandError] = []

    async def handler(env: AgiEnvironment, ch: AgiChannel) -> None:
        for call in (lambda: ch.set_context("x"), lambda: ch.exec("NoSuchApp")):
            try:
                await call()
            except AgiCommandError as exc:
                errors.append(exc)
        await ch.verbose("still usable")

    usage = (
        "520-Invalid command syntax.  Proper usage follows:\n"
        " Usage: SET CONTEXT <desired context>\n"
        "520 End of proper usage.\n"
    )
    server = await start(handler)
    env, _ = from_asterisk(H2)
    commands = await fake_asterisk(
        server.port,
        env,
        table_responder(
            {"SET CONTEXT": usage, "EXEC": "200 result=-2\n", "VERBOSE": "200 result=1\n"}
        ),
    )
    assert commands == ["SET CONTEXT x", "EXEC NoSuchApp", 'VERBOSE "still usable" 1']
    assert [e.response.code for e in errors] == [520, 200]
    assert errors[0].response.usage == (" Usage: SET CONTEXT <desired context>",)


async def test_handler_exception_is_logged_and_the_server_carries_on(
    start: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(env: AgiEnvironment, ch: AgiChannel) -> None:
        await ch.answer()
        raise RuntimeError("bug in a flow")

    server = await start({"ivr/broken": broken, "ivr": h2_flow})
    with caplog.at_level(logging.ERROR, logger="adapters.agi.server"):
        commands = await fake_asterisk(
            server.port,
            env_with_script("ivr/broken"),
            table_responder({"ANSWER": "200 result=0\n"}),
        )
    assert commands == ["ANSWER"]
    assert "bug in a flow" in caplog.text
    await until(lambda: server.stats.handler_errors == 1)
    env, _ = from_asterisk(H2)
    assert await fake_asterisk(server.port, env, trace_responder(H2)) == to_asterisk(H2)


async def test_unknown_script_gets_verbose_and_hangup(start: StartServer) -> None:
    server = await start({"ivr": h2_flow})
    commands = await fake_asterisk(
        server.port,
        env_with_script("ivrx/main"),
        table_responder({"VERBOSE": "200 result=1\n", "HANGUP": "200 result=1\nHANGUP\n"}),
    )
    assert commands == ['VERBOSE "FastAGI: no handler for script ivrx/main" 1', "HANGUP"]
    await until(lambda: server.active_sessions == 0)
    assert server.stats.unknown_scripts == 1


async def test_flow_name_from_the_script_path(start: StartServer) -> None:
    seen: list[tuple[str, str, str]] = []

    def recorder(tag: str) -> AgiHandler:
        async def handler(env: AgiEnvironment, ch: AgiChannel) -> None:
            seen.append((tag, env.route, env.subpath))

        return handler

    server = await start({"ivr": recorder("ivr"), "ivr/sales/": recorder("sales")})
    for script in ("ivr/main", "ivr/sales", "ivr/sales/after-hours", "ivr/main?lang=fr", "ivr"):
        await fake_asterisk(server.port, env_with_script(script), lambda c: b"")
    assert seen == [
        ("ivr", "ivr", "main"),
        ("sales", "ivr/sales", ""),
        ("sales", "ivr/sales", "after-hours"),
        ("ivr", "ivr", "main"),
        ("ivr", "ivr", ""),
    ]


def test_resolve_route() -> None:
    async def a(env: AgiEnvironment, ch: AgiChannel) -> None:
        """Route a."""

    async def b(env: AgiEnvironment, ch: AgiChannel) -> None:
        """Route b."""

    routes: dict[str, AgiHandler] = {"ivr": a, "/ivr/vip/": b}
    assert resolve_route(routes, "ivr") == ("ivr", a)
    assert resolve_route(routes, "ivr/vip/gold") == ("ivr/vip", b)
    assert resolve_route(routes, "ivr/vipx") == ("ivr", a)
    assert resolve_route(routes, "ivrx") is None
    assert resolve_route(routes, "") is None
    assert resolve_route({"": a, "ivr": b}, "other") == ("", a)


async def test_stop_closes_listener_and_active_sessions(start: StartServer) -> None:
    entered = asyncio.Event()
    cancelled: list[bool] = []

    async def waiting(env: AgiEnvironment, ch: AgiChannel) -> None:
        entered.set()
        try:
            await ch.get_data("beep", 3000, 4)  # the fake never answers
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    server = await start(waiting, read_timeout=30.0)
    env, _ = from_asterisk(H2)
    clients = [
        asyncio.create_task(fake_asterisk(server.port, env, lambda c: b"")) for _ in range(5)
    ]
    await until(lambda: server.active_sessions == 5)
    await asyncio.wait_for(entered.wait(), 3)
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 2.0
    results = await asyncio.wait_for(asyncio.gather(*clients), 3)
    assert results == [["GET DATA beep 3000 4"]] * 5
    assert cancelled == [True] * 5
    assert not server.serving
    assert server.active_sessions == 0
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)


async def test_stop_with_grace_lets_sessions_finish(start: StartServer) -> None:
    release = asyncio.Event()
    finished: list[bool] = []

    async def slow(env: AgiEnvironment, ch: AgiChannel) -> None:
        await release.wait()
        await ch.verbose("done")
        finished.append(True)

    server = await start(slow)
    env, _ = from_asterisk(H2)
    client = asyncio.create_task(fake_asterisk(server.port, env, lambda c: b"200 result=1\n"))
    await until(lambda: server.active_sessions == 1)
    asyncio.get_running_loop().call_later(0.1, release.set)
    await server.stop(grace=2.0)
    assert await client == ['VERBOSE "done" 1']
    assert finished == [True]


async def test_context_manager_and_restart_safety() -> None:
    async with FastAgiServer("127.0.0.1", 0, h2_flow, read_timeout=2.0) as server:
        assert server.serving
        await server.start()  # a second start is a no-op
        env, _ = from_asterisk(H2)
        assert await fake_asterisk(server.port, env, trace_responder(H2)) == to_asterisk(H2)
    assert not server.serving
    await server.stop()  # stopping twice is harmless
