"""Caller names as a real Asterisk 22 sends them (tests/fixtures/asterisk-caller-names).

Issue 11, 12: channel events carry CallerIDName through ast_escape_c (`\\"`, `\\\\`, `\\'`,
`\\?`), UTF-8 letters raw, and `<unknown>` for an empty name. Issue 11, 4: a click-to-dial
from a `Local/` device is tracked on the `;1` half Originate named (ChannelId).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.ami.calls import CallTracker, ami_text
from adapters.ami.events import CallEnded, CallStarted
from adapters.simasterisk.model import Model
from tests.unit.test_ami_support import frame, replay

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-caller-names"


def recorded(name: str) -> tuple[list, CallTracker]:  # type: ignore[type-arg]
    events, tracker = replay(frame((FIXTURES / name).read_bytes()))
    assert tracker.report["internal_error"] == 0
    return events, tracker


def test_the_recording_has_the_escaped_forms() -> None:
    """The fixture holds what the tests below rely on, byte for byte."""
    data = (FIXTURES / "caller-names.ami").read_bytes()
    assert b'CallerIDName: Zhang \\"Wei\\" \\\\ Jr\r\n' in data
    assert b"CallerIDName: O\\'Brien\\? x, y\r\n" in data
    assert "CallerIDName: 张伟\r\n".encode() in data
    assert "CallerIDName: Zoë Ñandú\r\n".encode() in data


def test_hangup_events_give_the_names_as_text() -> None:
    """Each caller's name, read from the channel events (the last one, Hangup)."""
    names = {}
    for message in frame((FIXTURES / "caller-names.ami").read_bytes()):
        if message.event == "Hangup" and str(message.get("Channel", "")).endswith(";1"):
            names[message.get("CallerIDNum")] = ami_text(message.get("CallerIDName"))
    assert names == {
        "5551000": 'Zhang "Wei" \\ Jr',
        "5551001": "张伟",
        "5551002": "Zoë Ñandú",
        "5551003": None,
        "5551004": None,
        "5551005": "O'Brien? x, y",
    }


def test_calls_start_with_the_unescaped_name() -> None:
    """The tracker's CallStarted carries the name as text, None for empty/<unknown>."""
    events, _tracker = recorded("caller-names.ami")
    started = {e.caller_number: e.caller_name for e in events if isinstance(e, CallStarted)}
    assert started == {
        "5551000": 'Zhang "Wei" \\ Jr',
        "5551001": "张伟",
        "5551002": "Zoë Ñandú",
        "5551003": None,
        "5551004": None,
        "5551005": "O'Brien? x, y",
    }
    assert sum(isinstance(e, CallEnded) for e in events) == 6


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("", None),
        ("<unknown>", None),
        ("   ", None),
        ("a\\tb", "a b"),  # an escaped control character is cleaned like a raw one
        ("back\\\\slash", "back\\slash"),
        ("odd\\q", "odd\\q"),  # not an escape Asterisk writes: kept
        (None, None),
    ],
)
def test_ami_text(raw: str | None, text: str | None) -> None:
    assert ami_text(raw) == text


def test_click_to_dial_from_a_local_device_is_the_named_half() -> None:
    """Issue 11, 4: the `;2` half shows the tag first; the call is still the `;1` half
    Originate named (`ChannelId`), so the daemon finds it by that Uniqueid."""
    events, tracker = recorded("local-click-to-dial.ami")
    started = [e for e in events if isinstance(e, CallStarted)]
    assert [(e.call_id, e.uniqueid, e.channel) for e in started] == [
        ("cc-dial-7", "cc-dial-7", "Local/2007@tb-answer-stay-00000006;1")
    ]
    assert [type(e).__name__ for e in events][-1] == "CallEnded"
    assert tracker.calls() == {}


REAL_NAMES = ['Zhang "Wei" \\ Jr', "张伟", "Zoë Ñandú", "O'Brien? x, y", ""]


def test_the_simulated_asterisk_escapes_names_like_the_real_one() -> None:
    """Its Newchannel carries the name the way the recording does (ast_escape_c,
    `<unknown>` for none), so the tracker reads the same text from both."""
    # What the real one wrote in channel events (OriginateResponse's copy is raw).
    real = {
        str(m.get("CallerIDName"))
        for m in frame((FIXTURES / "caller-names.ami").read_bytes())
        if m.event == "Hangup"
    }
    for index, name in enumerate(REAL_NAMES):
        model = Model()
        _caller, out = model.inbound(f"555200{index}", name, "5000", 0.0)
        sent = next(e for e in out.events if e["Event"] == "Newchannel")
        assert sent["CallerIDName"] in real, sent["CallerIDName"]
        tracker = CallTracker()
        events = [ev for e in out.events for ev in tracker.feed(e, 0.0)]  # type: ignore[arg-type]
        names = [e.caller_name for e in events if isinstance(e, CallStarted)]
        assert names == [name or None]
