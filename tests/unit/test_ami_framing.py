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
    # Channel events carry Linkedid; OriginateResponse does not, and spells its
    # variables `ChanVariable(<channel>): NAME=value`.
    assert all(m.headers.get("Linkedid") or m.event == "OriginateResponse" for m in tagged)
    originate = next(m for m in messages if m.event == "OriginateResponse")
    assert originate.chan_vars == {"CTI_CALLID": "1795327436.0", "CTI_QUEUE": ""}


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
    # OriginateResponse carries the ActionID of the Originate: a reply, never filtered.
    assert events == {"QueueCallerJoin", "Hangup", "OriginateResponse"}
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


def test_repeated_keys_are_kept_in_order() -> None:
    block = (
        b"Event: Newchannel\r\nChannel: PJSIP/1-00000001\r\n"
        b"ChanVariable: A=1\r\nChanVariable: B=x=y\r\nDestChanVariable: A=2\r\n\r\n"
    )
    (message,) = AmiParser().feed(block)
    assert message.pairs == [
        ("Event", "Newchannel"),
        ("Channel", "PJSIP/1-00000001"),
        ("ChanVariable", "A=1"),
        ("ChanVariable", "B=x=y"),
        ("DestChanVariable", "A=2"),
    ]
    assert message.chan_vars == {"A": "1", "B": "x=y"}
    assert message.dest_chan_vars == {"A": "2"}
    assert message.get("Channel") == "PJSIP/1-00000001"
    assert message.get("Missing") == ""


def test_zoe_survives_every_split_point() -> None:
    stream = b"Asterisk Call Manager/11.0.0\r\n" + (
        "Event: Newchannel\r\nCallerIDName: Zoë\r\nUniqueid: 1.1\r\n\r\n".encode()
    )
    for cut in range(len(stream) + 1):
        parser = AmiParser()
        messages = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [m.headers["CallerIDName"] for m in messages] == ["Zoë"], cut
        assert parser.banner == "Asterisk Call Manager/11.0.0", cut


def test_byte_by_byte_feeding_of_a_call() -> None:
    data = (TRACES / "g_userevent_chanvars.ami.txt").read_bytes()
    whole = parse_all(data)
    assert parse_all(data, [1] * len(data)) == whole


def test_filtering_gives_the_same_wanted_messages() -> None:
    wanted = frozenset({"Newchannel", "Hangup", "AgentConnect"})
    everything = [m for m in parse_all(QUEUE) if m[0].get("Event") in wanted]  # type: ignore[index]
    filtered = [m for m in parse_all(QUEUE, wanted_events=wanted) if m[0].get("Event")]  # type: ignore[index]
    assert [m for m in filtered if m[0]["Event"] in wanted] == everything  # type: ignore[index]


def test_list_items_pass_the_filter() -> None:
    data = (TRACES / "e1_hold_redirect_to_agent.ami.txt").read_bytes()
    messages = AmiParser(wanted_events=frozenset({"Hangup"})).feed(data)
    items = [m for m in messages if m.event == "CoreShowChannel"]
    assert len(items) == 2
    assert items[0].chan_vars["CTI_CALLID"] == "1795327460.14"


def test_command_output_lines() -> None:
    parser = AmiParser()
    (message,) = parser.feed(
        b"Response: Success\r\nActionID: 7\r\nMessage: Command output follows\r\n"
        b"Output: line one\r\nOutput: line two\r\n\r\n"
    )
    assert message.output == ["line one", "line two"]


def test_an_endless_message_is_dropped_not_buffered() -> None:
    parser = AmiParser()
    parser.feed(b"Asterisk Call Manager/11.0.0\r\n")
    for _ in range(40):
        assert parser.feed(b"X: " + b"y" * 50_000 + b"\r\n") == []
    assert parser.oversized >= 1
    (message,) = parser.feed(b"\r\n\r\nEvent: Ok\r\n\r\n")
    assert message.event == "Ok"


@given(st.binary(max_size=600), st.integers(1, 64))
def test_garbage_never_raises(data: bytes, chunk: int) -> None:
    parser = AmiParser(wanted_events=frozenset({"Hangup"}))
    for start in range(0, len(data), chunk):
        for message in parser.feed(data[start : start + chunk]):
            assert message.event is not None or message.response is not None


def test_filtered_parsing_at_every_split_point() -> None:
    data = (TRACES / "f_errors.ami.txt").read_bytes()
    wanted = frozenset({"Newchannel", "Hangup"})
    whole = parse_all(data, wanted_events=wanted)
    assert len(whole) >= 20
    for cut in range(1, len(data), 3):
        assert parse_all(data, [cut], wanted_events=wanted) == whole, cut


def test_filtered_zoe_split_inside_a_skipped_and_a_kept_event() -> None:
    skipped = "Event: VarSet\r\nValue: Zoë\r\n\r\n".encode()
    kept = "Event: Newchannel\r\nCallerIDName: Zoë\r\n\r\n".encode()
    stream = skipped + kept
    for cut in range(len(stream) + 1):
        parser = AmiParser(wanted_events=frozenset({"Newchannel"}))
        messages = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [m.headers["CallerIDName"] for m in messages] == ["Zoë"], cut
        assert parser.skipped == 1
