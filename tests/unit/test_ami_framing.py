"""AMI framing on real Asterisk 22 bytes: any split, UTF-8 across reads, filtering."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.ami.framing import AmiParser, encode_action

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-traces"
LOGIN = (TRACES / "a_login_core.ami.txt").read_bytes()
QUEUE = (TRACES / "b_queue_answered.ami.txt").read_bytes()


def parse_all(data: bytes, chunks: list[int] | None = None, **kw: object) -> list[object]:
    parser = AmiParser(**kw)  # type: ignore[arg-type]
    out: list[object] = []
    if chunks is None:
        out += parser.feed(data)
    else:
        start = 0
        for size in chunks:
            out += parser.feed(data[start : start + size])
            start += size
        out += parser.feed(data[start:])
    return [(m.headers, m.chan_vars, m.dest_chan_vars, m.output) for m in out]  # type: ignore[attr-defined]


def test_login_trace_banner_and_messages() -> None:
    parser = AmiParser()
    messages = parser.feed(LOGIN)
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert messages[0].response == "Success"
    assert messages[0].action_id == "a_login_core-001"
    assert messages[1].event == "FullyBooted"
    command = next(m for m in messages if m.action_id == "a_login_core-005")
    assert command.output and "Asterisk 22.10.1" in command.output[0]
    assert messages[-1].response == "Goodbye"


def test_channel_variables_are_collected() -> None:
    messages = AmiParser().feed(QUEUE)
    tagged = [m for m in messages if "CTI_CALLID" in m.chan_vars]
    assert tagged
    assert all(m.headers.get("Linkedid") for m in tagged)


def test_every_split_point_gives_the_same_messages() -> None:
    whole = parse_all(LOGIN)
    for cut in range(1, len(LOGIN)):
        assert parse_all(LOGIN, [cut]) == whole, cut


@given(st.lists(st.integers(1, 400), max_size=200))
def test_random_chunking_gives_the_same_messages(chunks: list[int]) -> None:
    assert parse_all(QUEUE, chunks) == parse_all(QUEUE)


def test_utf8_name_split_across_reads_is_kept() -> None:
    message = "Event: Newchannel\r\nCallerIDName: Zoë\r\nUniqueid: 1.1\r\n\r\n".encode()
    cut = message.index("ë".encode()) + 1  # between the two bytes of ë
    parser = AmiParser()
    parser.feed(b"Asterisk Call Manager/11.0.0\r\n")
    first = parser.feed(message[:cut])
    second = parser.feed(message[cut:])
    assert first == []
    assert second[0].headers["CallerIDName"] == "Zoë"


def test_unwanted_events_are_skipped_undecoded() -> None:
    parser = AmiParser(wanted_events=frozenset({"QueueCallerJoin", "Hangup"}))
    messages = parser.feed(QUEUE)
    events = {m.event for m in messages if m.event}
    assert events == {"QueueCallerJoin", "Hangup"}
    assert parser.skipped > 100  # VarSet, CEL, Newexten ...
    assert any(m.response for m in messages)  # responses always pass


def test_garbage_is_counted_not_raised() -> None:
    parser = AmiParser()
    out = parser.feed(b"hello\r\n\r\nno colon here\r\n\r\nEvent: Ok\r\n\r\n\xff\xfe: \xff\r\n\r\n")
    assert [m.event for m in out] == ["Ok"]
    assert parser.malformed == 3


def test_encode_action_refuses_header_injection() -> None:
    assert encode_action({"Action": "Ping", "ActionID": "x1"}) == (
        b"Action: Ping\r\nActionID: x1\r\n\r\n"
    )
    assert (
        encode_action({"Action": "Originate", "Variable": ["A=1", "B=2"]}).count(b"Variable: ") == 2
    )
    with pytest.raises(ValueError, match="line break"):
        encode_action({"Action": "Redirect", "Channel": "PJSIP/1\r\nAction: Hangup"})
