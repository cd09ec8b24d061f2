"""FastAGI codec against the lines a real Asterisk 22 sent (h_fastagi_ivr, h2_...)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.agi import codec
from adapters.agi.codec import (
    HANGUP_NOTICE,
    AgiArgumentError,
    AgiProtocolError,
    AgiResponse,
    ResponseReader,
)

TRACES = Path(__file__).parent.parent / "fixtures" / "asterisk-traces"


def trace(name: str, direction: str) -> str:
    """One AGI byte stream of a trace, as text."""
    return (TRACES / f"{name}.agi-{direction}.txt").read_bytes().decode()


def replies(name: str) -> list[str]:
    """The lines Asterisk sent after the environment's blank line."""
    after = trace(name, "from-asterisk").split("\n\n", 1)[1]
    return after.split("\n")[:-1]


# --- environment ----------------------------------------------------------------------


def test_environment_of_h2_trace() -> None:
    env = codec.parse_environment(trace("h2_fastagi_ivr_to_queue", "from-asterisk"))
    assert env.network_script == "ivr"
    assert env.script == "ivr"
    assert env.request == "agi://127.0.0.1:4573/ivr"
    assert env.channel == "Local/5551009@simcaller-0000000e;1"
    assert env.uniqueid == "1795327500.30"
    assert env.callerid == "5551009"
    assert env.calleridname == "Quinn Queue"
    assert (env.context, env.extension, env.priority) == ("inbound", "5000", "4")
    assert env.language == "en"
    assert env.version == "22.10.1"
    assert env.args == ("5000",)
    assert env.get("accountcode") == ""  # "agi_accountcode: " with a trailing blank
    assert env.get("agi_enhanced") == "0.0"
    assert env.get("missing", "x") == "x"
    assert len(env.variables) == 23


def test_environment_of_h_trace() -> None:
    env = codec.parse_environment(trace("h_fastagi_ivr", "from-asterisk"))
    assert env.calleridname == "Ivy Ivr"
    assert env.get("threadid") == "140190359914176"


def test_environment_is_read_only() -> None:
    env = codec.parse_environment("agi_network_script: ivr\n\n")
    with pytest.raises(TypeError):
        env.variables["network_script"] = "x"  # type: ignore[index]


def test_script_paths_and_subpath() -> None:
    env = codec.parse_environment("agi_network_script: ivr/main?lang=fr\n\n")
    assert env.script == "ivr/main"
    assert env.query == "lang=fr"
    assert env.subpath == "ivr/main"
    from dataclasses import replace

    routed = replace(env, route="ivr")
    assert routed.subpath == "main"
    assert codec.parse_environment("agi_network_script: /ivr/\n\n").script == "ivr"


def test_arguments_in_numeric_order() -> None:
    block = "".join(f"agi_arg_{n}: a{n}\n" for n in (2, 10, 1, 3, 4, 5, 6, 7, 8, 9)) + "\n"
    env = codec.parse_environment(block)
    assert env.args == tuple(f"a{n}" for n in range(1, 11))


def test_values_keep_colons_and_inner_blanks() -> None:
    key, value = codec.parse_env_line("agi_request: agi://127.0.0.1:4573/ivr")
    assert (key, value) == ("request", "agi://127.0.0.1:4573/ivr")
    assert codec.parse_env_line("agi_calleridname: Quinn  Queue ") == (
        "calleridname",
        "Quinn  Queue ",
    )
    assert codec.parse_env_line("agi_accountcode:") == ("accountcode", "")
    assert codec.parse_env_line("agi_callerid: 5551009\r") == ("callerid", "5551009")


@pytest.mark.parametrize(
    "line",
    ["GET / HTTP/1.1", "agi_: x", "network_script: ivr", "agi_network script: ivr", "200 result=0"],
)
def test_garbage_environment_lines_are_refused(line: str) -> None:
    with pytest.raises(AgiProtocolError):
        codec.parse_env_line(line)


def test_environment_without_blank_line_is_refused() -> None:
    with pytest.raises(AgiProtocolError):
        codec.parse_environment("agi_network: yes\nagi_network_script: ivr\n")


def test_a_caller_id_carrying_a_second_agi_channel_line_is_refused() -> None:
    # Asterisk writes `agi_callerid: %s` unescaped: a line feed in the caller ID would
    # otherwise replace the channel the daemon later redirects ("last one wins").
    block = (
        "agi_network: yes\nagi_channel: PJSIP/trunk-00000001\n"
        "agi_callerid: 5551234\nagi_channel: PJSIP/victim-00000002\n\n"
    )
    with pytest.raises(AgiProtocolError, match="agi_channel given twice"):
        codec.parse_environment(block)


# --- replies --------------------------------------------------------------------------


def test_every_reply_of_the_h_trace() -> None:
    reader = ResponseReader()
    parsed = [reader.feed(line) for line in replies("h_fastagi_ivr")]
    assert parsed == [
        AgiResponse(200, "0", text="200 result=0"),
        AgiResponse(200, "0", extras=(("endpos", "3520"),), text="200 result=0 endpos=3520"),
        AgiResponse(200, "1234", text="200 result=1234"),
        AgiResponse(200, "1", text="200 result=1"),
        AgiResponse(200, "1", "1234", text="200 result=1 (1234)"),
        AgiResponse(200, "0", text="200 result=0"),
        AgiResponse(200, "1", "5551007-1795327492.28", text="200 result=1 (5551007-1795327492.28)"),
        AgiResponse(200, "0", text="200 result=0"),
        AgiResponse(510, text="510 Invalid or unknown command"),
        AgiResponse(200, "1", text="200 result=1"),
        HANGUP_NOTICE,
    ]


def test_every_reply_of_the_h2_trace() -> None:
    reader = ResponseReader()
    parsed = [reader.feed(line) for line in replies("h2_fastagi_ivr_to_queue")]
    assert all(isinstance(p, AgiResponse) and p.ok for p in parsed)
    results = [(p.result, p.data) for p in parsed if isinstance(p, AgiResponse)]
    assert results == [("0", None), ("2", None), ("1", None), ("1", "2"), ("1", None), ("1", None)]


@pytest.mark.parametrize(
    ("line", "result", "data", "extras"),
    [
        ("200 result=1 (timeout)", "1", "timeout", ()),
        ("200 result= (timeout)", "", "timeout", ()),
        ("200 result=0", "0", None, ()),
        ("200 result=-1", "-1", None, ()),
        ("200 result=1 (speech) endpos=1234", "1", "speech", (("endpos", "1234"),)),
        (
            "200 result=0 (timeout) endpos=8000 results=2",
            "0",
            "timeout",
            (("endpos", "8000"), ("results", "2")),
        ),
        ("200 result=1 (a (b) c)", "1", "a (b) c", ()),
        ("200 result=1 ()", "1", "", ()),
        ("200 result=1 (x) y) endpos=5", "1", "x) y", (("endpos", "5"),)),
    ],
)
def test_result_lines(
    line: str, result: str, data: str | None, extras: tuple[tuple[str, str], ...]
) -> None:
    response = codec.parse_response_line(line)
    assert response.code == 200
    assert response.ok
    assert (response.result, response.data, response.extras) == (result, data, extras)
    assert response.text == line


def test_result_helpers() -> None:
    response = codec.parse_response_line("200 result=0 endpos=3520")
    assert response.result_int == 0
    assert response.extra("endpos") == "3520"
    assert response.extra("nope") is None
    assert codec.parse_response_line("200 result=-1").result_int == -1
    assert codec.parse_response_line("200 result= (timeout)").result_int is None
    assert codec.parse_response_line("510 Invalid or unknown command").result_int is None


def test_error_codes() -> None:
    unknown = codec.parse_response_line("510 Invalid or unknown command")
    assert (unknown.code, unknown.ok, unknown.result) == (510, False, None)
    dead = codec.parse_response_line("511 Command Not Permitted on a dead channel or intercepted")
    assert dead.code == 511
    odd = codec.parse_response_line("200 something else")
    assert (odd.code, odd.result) == (200, None)


def test_multi_line_usage_block() -> None:
    reader = ResponseReader()
    lines = [
        "520-Invalid command syntax.  Proper usage follows:",
        " Usage: GET DATA <file to be streamed> [timeout] [maxdigits]",
        "200 result=0 looks like a reply but is usage text",
        "520 End of proper usage.",
    ]
    out = [reader.feed(line) for line in lines]
    assert out[:3] == [None, None, None]
    assert reader.in_block is False
    block = out[3]
    assert isinstance(block, AgiResponse)
    assert block.code == 520
    assert not block.ok
    assert block.usage == tuple(lines[1:3])
    assert block.text == "\n".join(lines)
    # The reader is ready for the next reply.
    assert reader.feed("200 result=1") == AgiResponse(200, "1", text="200 result=1")


def test_usage_block_that_never_ends_is_refused() -> None:
    reader = ResponseReader(max_usage_lines=3)
    reader.feed("520-Invalid command syntax.  Proper usage follows:")
    reader.feed("a")
    reader.feed("b")
    with pytest.raises(AgiProtocolError):
        reader.feed("c")


def test_hangup_line_and_blank_lines() -> None:
    reader = ResponseReader()
    assert reader.feed("HANGUP") is HANGUP_NOTICE
    assert reader.feed("HANGUP\r") is HANGUP_NOTICE
    assert reader.feed("") is None


@pytest.mark.parametrize(
    "line", ["hello", "20 result=1", "2000 result=1", "abc result=1", "HANGUPS"]
)
def test_garbage_replies_are_refused(line: str) -> None:
    with pytest.raises(AgiProtocolError):
        ResponseReader().feed(line)


# --- commands -------------------------------------------------------------------------


def test_commands_of_the_traces_byte_for_byte() -> None:
    h = [
        codec.answer(),
        codec.stream_file("beep"),
        codec.get_data("beep", 3000, 4),
        codec.set_variable("IVR_CHOICE", "1234"),
        codec.get_variable("IVR_CHOICE"),
        codec.get_variable("NO_SUCH_VARIABLE"),
        codec.get_full_variable("${CALLERID(num)}-${CTI_CALLID}"),
        codec.exec_("Playback", "beep"),
    ]
    sent = trace("h_fastagi_ivr", "to-asterisk")
    assert (
        b"".join(codec.encode_command(c) for c in h) == sent.split("NO SUCH COMMAND\n")[0].encode()
    )
    assert codec.encode_command(codec.hangup()) == b"HANGUP\n"
    h2 = [
        codec.answer(),
        codec.get_data("beep", 3000, 4),
        codec.set_variable("IVR_CHOICE", "2"),
        codec.get_variable("IVR_CHOICE"),
        codec.set_variable("IVR_QUEUE", "support"),
        codec.verbose("IVR routed to support", 1),
    ]
    assert "".join(c + "\n" for c in h2) == trace("h2_fastagi_ivr_to_queue", "to-asterisk")


def test_quoting_follows_asterisk_parse_args() -> None:
    assert codec.set_variable("X", 'say "hi" \\ bye') == 'SET VARIABLE X "say \\"hi\\" \\\\ bye"'
    assert codec.set_variable("X", "") == 'SET VARIABLE X ""'
    assert codec.verbose('a "b"', 3) == 'VERBOSE "a \\"b\\"" 3'
    assert codec.stream_file("custom/welcome", "123#*") == 'STREAM FILE custom/welcome "123#*"'
    assert codec.stream_file("beep", "", offset=800) == 'STREAM FILE beep "" 800'
    assert codec.exec_("Dial", "PJSIP/100,20,tT") == "EXEC Dial PJSIP/100,20,tT"
    assert codec.exec_("Playback", "hello world") == 'EXEC Playback "hello world"'
    assert codec.exec_("Answer") == "EXEC Answer"
    assert codec.say_digits("5551009") == 'SAY DIGITS 5551009 ""'
    assert codec.say_digits("123", "#") == 'SAY DIGITS 123 "#"'
    assert codec.get_data("beep") == "GET DATA beep"
    assert codec.get_data("beep", 5000) == "GET DATA beep 5000"
    assert codec.get_data("beep", max_digits=4) == "GET DATA beep 0 4"
    assert codec.wait_for_digit(-1) == "WAIT FOR DIGIT -1"
    assert codec.wait_for_digit(2500) == "WAIT FOR DIGIT 2500"
    assert codec.get_variable("CALLERID(num)") == "GET VARIABLE CALLERID(num)"
    assert codec.get_full_variable("${A} ${B}") == 'GET FULL VARIABLE "${A} ${B}"'
    assert codec.get_full_variable("${A}", "PJSIP/1-0") == "GET FULL VARIABLE ${A} PJSIP/1-0"
    assert codec.set_context("support") == "SET CONTEXT support"
    assert codec.set_extension("s") == "SET EXTENSION s"
    assert codec.set_priority(1) == "SET PRIORITY 1"
    assert codec.set_priority("start") == "SET PRIORITY start"
    assert codec.hangup("Local/1@x-0;1") == "HANGUP Local/1@x-0;1"
    assert codec.quote("") == '""'
    assert codec.word("a b") == '"a b"'
    assert codec.word("ab") == "ab"


@pytest.mark.parametrize(
    "make",
    [
        lambda: codec.set_variable("X", "a\nHANGUP"),
        lambda: codec.set_variable("X", "a\rb"),
        lambda: codec.set_variable("X", "a\0b"),
        lambda: codec.set_variable("X\n", "a"),
        lambda: codec.verbose("line1\nEXEC System rm", 1),
        lambda: codec.exec_("Playback", "beep\nEXEC System x"),
        lambda: codec.stream_file("beep\n"),
        lambda: codec.get_data("beep\r"),
        lambda: codec.get_full_variable("${A}\n"),
        lambda: codec.set_context("a\nb"),
        lambda: codec.encode_command("ANSWER\nHANGUP"),
    ],
)
def test_line_breaks_are_refused(make: object) -> None:
    with pytest.raises(AgiArgumentError):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    "make",
    [
        lambda: codec.set_variable("", "a"),
        lambda: codec.set_variable("A B", "a"),
        lambda: codec.get_variable('A"'),
        lambda: codec.stream_file(""),
        lambda: codec.stream_file("beep", "12x"),
        lambda: codec.stream_file("beep", offset=-1),
        lambda: codec.get_data("beep", -5),
        lambda: codec.get_data("beep", 1000, True),
        lambda: codec.verbose("x", 5),
        lambda: codec.set_priority(0),
        lambda: codec.set_priority("a b"),
        lambda: codec.exec_("Play back"),
        lambda: codec.wait_for_digit(-2),
    ],
)
def test_bad_arguments_are_refused(make: object) -> None:
    with pytest.raises(AgiArgumentError):
        make()  # type: ignore[operator]


def test_argument_error_is_a_value_error() -> None:
    assert issubclass(AgiArgumentError, ValueError)
