"""Fuzz: AMI framing and encoding, the call tracker, the AGI environment, replies, commands.

What each must hold for any input: the parser neither raises nor depends on how the
bytes were cut into reads; the tracker never hits an internal error; the encoders either
refuse a value or produce exactly one well-formed line (AGI) or action (AMI).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.agi import codec
from adapters.agi.codec import AgiArgumentError, AgiProtocolError, ResponseReader
from adapters.ami.calls import TRACKED_EVENTS, CallTracker
from adapters.ami.framing import AmiParser, UnsafeAmiAction, encode_action
from tests.fuzz.support import FUZZ, keep_on_failure, kept, mutated, seeds

AMI_SEEDS = seeds("*.ami.txt")
AGI_SEEDS = seeds("*.agi-to-asterisk.txt") + seeds("*.agi-from-asterisk.txt")


def _frame(data: bytes, cuts: list[int], wanted: frozenset[str] | None) -> list[str]:
    parser = AmiParser(wanted)
    out: list[str] = []
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        out += [m.raw for m in parser.feed(data[start:cut])]
        start = max(start, cut)
    out += [m.raw for m in parser.feed(data[start:])]
    return out


def check_ami_framing(data: bytes, cuts: list[int]) -> None:
    try:
        for wanted in (None, TRACKED_EVENTS):
            whole = _frame(data, [], wanted)
            assert _frame(data, cuts, wanted) == whole, "framing depends on how reads were cut"
            for raw in whole:
                assert "\r\n\r\n" not in raw
    except BaseException:
        keep_on_failure("ami_framing", data)
        raise


def check_call_tracker(data: bytes) -> None:
    tracker = CallTracker()
    try:
        for index, message in enumerate(AmiParser(None).feed(data)):
            tracker.feed_message(message, float(index))
        assert tracker.report["internal_error"] == 0
    except BaseException:
        keep_on_failure("call_tracker", data)
        raise


def check_agi_environment(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        env = codec.parse_environment(text)
    except AgiProtocolError:
        return
    except BaseException:
        keep_on_failure("agi_environment", data)
        raise
    for key, value in env.variables.items():
        assert "\n" not in value and not any(c.isspace() for c in key)


def check_agi_replies(data: bytes) -> None:
    reader = ResponseReader()
    try:
        for line in data.decode("utf-8", "replace").split("\n"):
            try:
                reader.feed(line)
            except AgiProtocolError:
                reader = ResponseReader()
    except BaseException:
        keep_on_failure("agi_replies", data)
        raise


@given(data=mutated(AMI_SEEDS), cuts=st.lists(st.integers(0, 10_000), max_size=8))
@FUZZ
def test_ami_framing_never_raises_and_ignores_read_boundaries(data: bytes, cuts: list[int]) -> None:
    check_ami_framing(data, cuts)


@given(data=mutated(AMI_SEEDS))
@FUZZ
def test_the_call_tracker_never_hits_an_internal_error(data: bytes) -> None:
    check_call_tracker(data)


@given(data=mutated(AGI_SEEDS))
@FUZZ
def test_the_agi_environment_parser_refuses_or_parses_cleanly(data: bytes) -> None:
    check_agi_environment(data)


@given(data=mutated(AGI_SEEDS))
@FUZZ
def test_the_agi_reply_reader_only_raises_protocol_errors(data: bytes) -> None:
    check_agi_replies(data)


@given(value=st.text())
@FUZZ
def test_agi_arguments_are_refused_or_stay_on_one_line(value: str) -> None:
    for build in (
        lambda: codec.stream_file("hello", "12"),
        lambda: codec.set_variable("CC_X", value),
        lambda: codec.verbose(value),
        lambda: codec.exec_("NoOp", value),
        lambda: codec.get_variable(value),
    ):
        try:
            line = codec.encode_command(build())
        except AgiArgumentError:
            continue
        assert line.endswith(b"\n") and line.count(b"\n") == 1 and b"\r" not in line
        assert b"\x00" not in line


@given(
    action=st.dictionaries(
        st.text(max_size=12),
        st.one_of(st.text(max_size=40), st.lists(st.text(max_size=20), max_size=3)),
        max_size=6,
    )
)
@FUZZ
def test_ami_actions_are_refused_or_one_action_of_the_same_headers(
    action: dict[str, str | list[str]],
) -> None:
    try:
        wire = encode_action(action)
    except UnsafeAmiAction:
        return
    assert (wire.endswith(b"\r\n\r\n") and wire.count(b"\r\n\r\n") == 1) or wire == b"\r\n\r\n"
    lines = wire.decode("utf-8")[:-4].split("\r\n") if action else []
    expected = sum(len(v) if isinstance(v, list) else 1 for v in action.values())
    assert len([line for line in lines if line]) == expected or expected == 0


@pytest.mark.parametrize(
    ("target", "check"),
    [
        ("ami_framing", lambda data: check_ami_framing(data, [1, 7, 100])),
        ("call_tracker", check_call_tracker),
        ("agi_environment", check_agi_environment),
        ("agi_replies", check_agi_replies),
    ],
)
def test_the_kept_corpus_still_passes(target: str, check: object) -> None:
    assert callable(check)
    for data in kept(target):
        check(data)
