"""The simulated Asterisk's `Local/` channels against a real Asterisk 22's recordings.

A click-to-dial from a Local device (tests/fixtures/asterisk-caller-names/
local-click-to-dial.ami: Originate with ChannelId `cc-dial-7` of
`Local/2007@tb-answer-stay`, on the test bed, which has no SIP) must come out of the
simulator as the same `;1`/`;2` pair, the same events in the same order with the fields
the daemon's call tracker reads, so the tracker makes the same calls of both. Timestamps,
channel sequence numbers and Uniqueids the client did not choose are left out; VarSet is
too (the simulator sends none, and the tracker reads none). A Dial of a Local device
(tests/fixtures/asterisk-traces/e1), a Local device whose context is missing (f_errors)
and one that rings without answering (c_queue_abandon) follow the same rules.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from adapters.ami.calls import TRACKED_EVENTS, CallTracker
from adapters.ami.framing import AmiMessage
from adapters.simasterisk import dialplan
from adapters.simasterisk.ami_server import encode
from adapters.simasterisk.model import Event, Model, Outcome, Ring, Timer
from tests.unit.test_ami_support import frame, replay, summary

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CLICK_TO_DIAL = FIXTURES / "asterisk-caller-names" / "local-click-to-dial.ami"
TESTBED = Path(__file__).resolve().parents[2] / "contrib" / "asterisk" / "testbed"
T0 = 1796170000.0

# What is compared: the events the tracker reads, and the channel-state ones around them.
COMPARED = TRACKED_EVENTS | {"Newstate", "LocalBridge", "HangupRequest", "SoftHangupRequest"}
FIELDS = (
    "Channel",
    "ChannelState",
    "Uniqueid",
    "Linkedid",
    "Context",
    "Exten",
    "Application",
    "AppData",
    "DestChannel",
    "DestChannelState",
    "DestUniqueid",
    "DestLinkedid",
    "DialString",
    "DialStatus",
    "LocalOneChannel",
    "LocalTwoChannel",
    "LocalOneUniqueid",
    "LocalTwoUniqueid",
    "Response",
    "Reason",
    "ActionID",
)
_SEQUENCE = re.compile(r"-[0-9a-f]{8}(;[12])$")


def _channel(name: str) -> str:
    """`Local/2007@tb-answer-stay-00000006;1` -> `Local/2007@tb-answer-stay-N;1`."""
    return _SEQUENCE.sub(r"-N\1", name)


def _shape(message: AmiMessage) -> tuple[object, ...]:
    """An event as the tracker sees it, without what differs between runs."""
    row: list[object] = [message.event]
    for key in FIELDS:
        value = message.get(key)
        if isinstance(value, str) and ("Channel" in key):
            value = _channel(value)
        row.append((key, value))
    if message.event == "Hangup":
        row.append(("Cause", message.get("Cause")))
    if message.event != "OriginateResponse":
        row.append(("CTI_CALLID", message.chan_vars.get("CTI_CALLID")))
    return tuple(row)


def _named(rows: list[tuple[str, dict[str, object]]]) -> list[tuple[str, dict[str, object]]]:
    """Domain events with the channel sequence numbers left out."""
    return [
        (
            kind,
            {k: _channel(v) if isinstance(v, str) and "channel" in k else v for k, v in f.items()},
        )
        for kind, f in rows
    ]


def _compared(messages: list[AmiMessage]) -> list[tuple[object, ...]]:
    return [_shape(m) for m in messages if m.event in COMPARED]


def _wire(events: list[Event]) -> bytes:
    return b"Asterisk Call Manager/11.0.0\r\n" + b"".join(encode(e) for e in events)


def _testbed_model() -> Model:
    """The simulator configured as the test bed the recording was made on: its dialplan
    (contrib/asterisk/testbed, which includes the shipped one), and no SIP at all."""
    plan = dialplan.load(TESTBED / "extensions.conf")
    return Model(plan, phone_technologies=(), first_sequence=40)


def _click_to_dial(model: Model) -> Outcome:
    """adapters/asterisk/pbx.py `dial`, as capture.py sent it."""
    _channel_made, out = model.originate(
        "Local/2007@tb-answer-stay",
        T0,
        action_id="cc-dial-7",
        context="cc-outbound",
        exten="+442071838750",
        priority=1,
        variables={"CC_INTERACTION_ID": "7", "CTI_CALLID": "cc-dial-7"},
        channel_id="cc-dial-7",
    )
    return out


def test_a_local_click_to_dial_sends_what_the_real_asterisk_sent() -> None:
    recorded = frame(CLICK_TO_DIAL.read_bytes(), filtered=False)
    simulated = frame(_wire(_click_to_dial(_testbed_model()).events), filtered=False)
    assert _compared(simulated) == _compared(recorded)


def test_the_tracker_makes_the_same_call_of_the_simulated_click_to_dial() -> None:
    recorded_events, recorded_tracker = replay(frame(CLICK_TO_DIAL.read_bytes()))
    model = _testbed_model()
    simulated_events, simulated_tracker = replay(frame(_wire(_click_to_dial(model).events)))
    assert _named(summary(simulated_events)) == _named(summary(recorded_events))
    assert [e.call_id for e in simulated_events] == [e.call_id for e in recorded_events]
    assert simulated_tracker.report == recorded_tracker.report
    assert simulated_tracker.calls() == {} and model.channels == {}


def test_the_pair_is_named_and_numbered_like_the_real_one() -> None:
    model = _testbed_model()
    out = _click_to_dial(model)
    made = [e for e in out.events if e["Event"] == "Newchannel"]
    assert [(e["Channel"], e["Uniqueid"], e["Linkedid"]) for e in made] == [
        ("Local/2007@tb-answer-stay-00000000;1", "cc-dial-7", "cc-dial-7"),
        ("Local/2007@tb-answer-stay-00000000;2", "cc-dial-7;2", "cc-dial-7"),
    ]
    response = next(e for e in out.events if e["Event"] == "OriginateResponse")
    assert response["Uniqueid"] == "cc-dial-7"
    assert response["Channel"] == "Local/2007@tb-answer-stay-00000000;1"
    # No phone rings: the `;2` half's dialplan (Answer, Wait) is the phone.
    assert not [e for e in out.effects if isinstance(e, Ring)]


def test_without_channel_id_the_halves_take_the_next_two_uniqueids() -> None:
    model = _testbed_model()
    _ch, out = model.originate(
        "Local/2008@tb-answer-stay", T0, action_id="x-1", context="cc-holding", exten="s"
    )
    made = [e for e in out.events if e["Event"] == "Newchannel"]
    first, second = (str(e["Uniqueid"]) for e in made)
    assert first == f"{int(T0)}.40" and second == f"{int(T0)}.41"
    assert {e["Linkedid"] for e in made} == {first}
    # The `;1` half waits in [cc-holding] on music; the `;2` half on its Wait(600).
    assert sorted(c.name for c in model.channels.values()) == [
        "Local/2008@tb-answer-stay-00000000;1",
        "Local/2008@tb-answer-stay-00000000;2",
    ]
    assert any(isinstance(e, Timer) and e.uniqueid == second for e in out.effects)


def _recorded_events(name: str) -> list[AmiMessage]:
    path = FIXTURES / "asterisk-traces" / f"{name}.ami.txt"
    return frame(path.read_bytes(), filtered=False)


def _section(messages: list[AmiMessage], device: str) -> list[tuple[object, ...]]:
    """The events of one Local device's pair (as channel or as Dest), in order."""
    rows = []
    for m in messages:
        names = " ".join(str(m.get(k) or "") for k in ("Channel", "DestChannel", "LocalOneChannel"))
        if device in names and m.event in COMPARED:
            rows.append(_event_kind(m))
    return rows


def _event_kind(m: AmiMessage) -> tuple[object, ...]:
    """(event, which half, DialStatus, Application): what the pair did, run-independent."""
    who = str(m.get("DestChannel") or m.get("Channel") or m.get("LocalOneChannel"))
    return (m.event, who.rpartition(";")[2], m.get("DialStatus"), m.get("Application"))


def _waiting_caller(model: Model) -> str:
    """A caller the daemon's IVR sent to [cc-holding] (as its FastAGI leaves it)."""
    caller, _out = model.inbound("5551004", "Redirect Me", "5000", T0)
    uid = caller.uniqueid
    model.agi_set_variable(uid, "CC_INTERACTION_ID", "9")
    assert model.agi_set_location(uid, context="cc-holding")
    assert model.agi_set_location(uid, exten="s")
    assert model.agi_set_location(uid, priority="1")
    model.agi_done(uid, T0 + 1)
    return caller.name


def _deliver(model: Model, caller: str, device: str, ring: int = 15) -> Outcome:
    """The daemon's delivery: Setvar of the device and ring time, Redirect to cc-agents."""
    model.setvar(caller, "CC_AGENT_DEVICE", device)
    model.setvar(caller, "CC_RING_SECONDS", str(ring))
    return model.redirect([(caller, "cc-agents", "s", "1")], T0 + 2)


def _fire(model: Model, out: Outcome, uniqueid: str, now: float) -> Outcome:
    """Fire the timer `out` armed for `uniqueid` (a Wait, a Dial's ring time)."""
    timer = next(e for e in out.effects if isinstance(e, Timer) and e.uniqueid == uniqueid)
    return model.timer(uniqueid, timer.token, now)


def test_a_dial_of_a_local_device_goes_like_e1() -> None:
    """e1: Dial(Local/agent1002@agents) from the caller's dialplan: the pair, answered by
    its `;2` half's Answer(), bridged with the caller; the `;2` half's Hangup() after
    its Wait ends the call."""
    model = _testbed_model()
    caller = _waiting_caller(model)
    out = _deliver(model, caller, "Local/2001@tb-answer")
    two = next(c for c in model.channels.values() if c.name.endswith(";2"))
    out.extend(_fire(model, out, two.uniqueid, T0 + 4))
    simulated = _section(frame(_wire(out.events), filtered=False), "Local/2001@tb-answer")
    recorded = _section(_recorded_events("e1_hold_redirect_to_agent"), "Local/agent1002@agents")
    assert simulated == recorded
    assert model.channels == {}


def test_the_tracker_sees_a_local_agent_leg_ring_and_answer() -> None:
    model = _testbed_model()
    tracker = CallTracker()
    caller, out = model.inbound("5551004", "Redirect Me", "5000", T0)
    events = [ev for e in out.events for ev in tracker.feed(_flat(e), T0)]
    uid = caller.uniqueid
    model.agi_set_variable(uid, "CC_INTERACTION_ID", "9")
    model.agi_set_location(uid, context="cc-holding", exten="s", priority="1")
    out = model.agi_done(uid, T0 + 1)
    out.extend(_deliver(model, caller.name, "Local/2001@tb-answer"))
    events += [ev for e in out.events for ev in tracker.feed(_flat(e), T0 + 2)]
    kinds = [(type(e).__name__, getattr(e, "device", None)) for e in events]
    assert ("AgentRinging", "Local/2001@tb-answer") in kinds
    assert kinds[-1] == ("CallAnswered", "Local/2001@tb-answer")
    assert tracker.report["internal_error"] == 0


def _flat(event: Event) -> dict[str, str]:
    """An event as the tracker's `feed` takes it (the last of a repeated header)."""
    return {k: v if isinstance(v, str) else v[-1] for k, v in event.items()}


def test_a_local_device_that_rings_rings_like_c_queue_abandon() -> None:
    """c_queue_abandon: Ringing() on the `;2` half shows as Newstate Ringing of `;1`;
    the ring time over, the caller's Dial ends NOANSWER and both halves go."""
    model = _testbed_model()
    caller = _waiting_caller(model)
    out = _deliver(model, caller, "Local/2003@tb-noanswer", ring=15)
    dialler = model.by_name(caller)
    assert dialler is not None
    simulated = _section(frame(_wire(out.events), filtered=False), "Local/2003@tb-noanswer")
    recorded = _section(
        _recorded_events("c_queue_abandon"), "Local/agent2001@agents-noanswer-00000003"
    )
    # The pair was made by app_queue there (AppQueue, queue events): compare from its
    # DialBegin on.
    queue_only = {"AgentCalled", "AgentRingNoAnswer"}
    recorded = [row for row in recorded if row[0] not in queue_only]
    simulated = simulated[[row[0] for row in simulated].index("DialBegin") :]
    recorded = recorded[[row[0] for row in recorded].index("DialBegin") :]
    assert simulated == recorded[: len(simulated)]
    assert simulated[-1] == ("Newexten", "2", "", "Wait")
    over = _fire(model, out, dialler.uniqueid, T0 + 20)
    ended = _section(frame(_wire(over.events), filtered=False), "Local/2003@tb-noanswer")
    assert ended[0] == ("DialEnd", "1", "NOANSWER", "")
    assert sorted(row for row in ended if row[0] == "Hangup") == [
        ("Hangup", "1", "", ""),
        ("Hangup", "2", "", ""),
    ]
    # The caller went back to wait (the sample's cc-agents after a failed ring).
    assert dialler.context == "cc-holding"
    assert [c.name for c in model.channels.values()] == [caller]


def test_a_missing_context_ends_the_pair_at_once_like_f_errors() -> None:
    """f_errors: Originate of Local/123@no-such-context: both halves appear and go."""
    model = _testbed_model()
    # Synchronous, as f_errors sent it: no OriginateResponse.
    _ch, out = model.originate(
        "Local/123@no-such-context",
        T0,
        action_id="f-12",
        context="cc-inbound",
        exten="5000",
        respond=False,
    )
    simulated = frame(_wire(out.events), filtered=False)
    recorded = _recorded_events("f_errors")
    assert _section(simulated, "no-such-context") == _section(recorded, "no-such-context")
    assert model.channels == {}
    # Asynchronous: the failure is told by an OriginateResponse.
    _ch, out = model.originate(
        "Local/124@no-such-context", T0, action_id="f-13", context="cc-inbound", exten="5000"
    )
    response = [e for e in out.events if e["Event"] == "OriginateResponse"]
    assert [e["Response"] for e in response] == ["Failure"]
    assert model.channels == {}


def _keys(block: str) -> tuple[str, ...]:
    # `ChanVariable(<channel>)` names the channel: compare the field, not the name.
    return tuple(re.sub(r"\(.*\)$", "", line.split(":", 1)[0]) for line in block.split("\r\n"))


def test_every_event_of_the_pair_has_the_fields_of_a_recorded_one() -> None:
    """Field names and order of each event the Local paths send, as recorded."""
    recorded: dict[str, set[tuple[str, ...]]] = {}
    paths = [CLICK_TO_DIAL, *sorted((FIXTURES / "asterisk-traces").glob("*.ami.txt"))]
    for path in paths:
        for block in path.read_bytes().decode().split("\r\n\r\n"):
            block = block.removeprefix("Asterisk Call Manager/11.0.0\r\n")
            if block.startswith("Event: "):
                recorded.setdefault(block.split("\r\n", 1)[0][7:], set()).add(_keys(block))
    model = _testbed_model()
    everything = _click_to_dial(model)
    _ch, with_cid = model.originate(
        "Local/2009@tb-answer-stay",
        T0,
        action_id="x-2",
        context="cc-holding",
        exten="s",
        caller_id=("5551005", "Bridge Me"),
    )
    everything.extend(with_cid)
    caller = _waiting_caller(model)
    everything.extend(_deliver(model, caller, "Local/2001@tb-answer"))
    seen = set()
    for event in everything.events:
        kind = str(event["Event"])
        seen.add(kind)
        wire = encode(event).decode().removesuffix("\r\n\r\n")
        assert _keys(wire) in recorded[kind], f"{kind} differs from the recordings"
    assert {"LocalBridge", "NewCallerid", "NewConnectedLine", "OriginateResponse"} <= seen


# What a real Asterisk 22.10.1 sent on the test bed for the daemon's click-to-dial (as
# pbx.py `dial` sends it, ChannelId cc-dial-<n>) from a Local phone that is busy
# (tb-busy: Busy(10)) and from one that rings past the Originate's Timeout (tb-noanswer,
# Timeout 2000), recorded 2026-12-01 by the daemon's AMI user;
# tests/integration/test_live_asterisk_click_to_dial.py checks them live again. The
# failure's OriginateResponse comes before the channel's Hangup (so the daemon learns why
# the click-to-dial failed before the call ends) and names the device as requested, not
# the channel (manager.c fast_originate: no channel is left to name); a ring timeout
# sends no DialEnd. (event, half or Channel, detail) rows, as `_rows` makes them, in the
# order received.
REAL_BUSY = [
    ("Newchannel", "1", ""),
    ("Newchannel", "2", ""),
    ("Newexten", "1", "AppDial2"),
    ("LocalBridge", "1", ""),
    ("DialBegin", "1", ""),
    ("Newexten", "2", "NoOp"),
    ("Newexten", "2", "Busy"),
    ("OriginateResponse", "Local/2004@tb-busy", "Failure 5 cc-dial-busy"),
    ("DialEnd", "1", "BUSY"),
    ("HangupRequest", "2", "0"),
    ("Hangup", "1", "0"),
    ("Newstate", "2", "7"),
    ("SoftHangupRequest", "2", "16"),
    ("Hangup", "2", "17"),
]
REAL_NO_ANSWER = [
    ("Newchannel", "1", ""),
    ("Newchannel", "2", ""),
    ("Newexten", "1", "AppDial2"),
    ("LocalBridge", "1", ""),
    ("DialBegin", "1", ""),
    ("Newexten", "2", "NoOp"),
    ("Newexten", "2", "Ringing"),
    ("Newstate", "1", "5"),
    ("Newexten", "2", "Wait"),
    ("HangupRequest", "2", "19"),
    ("OriginateResponse", "Local/2005@tb-noanswer", "Failure 3 cc-dial-noanswer"),
    ("SoftHangupRequest", "2", "16"),
    ("Hangup", "1", "19"),
    ("Hangup", "2", "19"),
]


def _rows(events: list[Event]) -> list[tuple[str, str, str]]:
    rows = []
    for e in events:
        kind = str(e["Event"])
        if kind not in COMPARED:
            continue
        name = str(e.get("DestChannel") or e.get("Channel") or e.get("LocalOneChannel"))
        if kind == "OriginateResponse":
            detail = f"{e['Response']} {e['Reason']} {e['Uniqueid']}"
            rows.append((kind, name, detail))
            continue
        if kind in ("Hangup", "HangupRequest", "SoftHangupRequest"):
            detail = str(e["Cause"])
        elif kind == "Newstate":
            detail = str(e["ChannelState"])
        else:
            detail = str(e.get("Application") or e.get("DialStatus") or "")
        rows.append((kind, name.rpartition(";")[2], detail))
    return rows


def _same_as(rows: list[tuple[str, str, str]], real: list[tuple[str, str, str]]) -> None:
    """The same rows; in the same order for the events the tracker reads (the order of
    HangupRequest, SoftHangupRequest and Newstate against them races on a real one)."""
    assert Counter(rows) == Counter(real)
    tracked = [row for row in rows if row[0] in TRACKED_EVENTS]
    assert tracked == [row for row in real if row[0] in TRACKED_EVENTS]


def _failing_click_to_dial(device: str, name: str, timeout: float) -> tuple[Model, Outcome]:
    model = _testbed_model()
    _ch, out = model.originate(
        device,
        T0,
        action_id=f"cc-dial-{name}",
        context="cc-outbound",
        exten="+442071838750",
        variables={"CTI_CALLID": f"cc-dial-{name}"},
        timeout=timeout,
        channel_id=f"cc-dial-{name}",
    )
    return model, out


def test_a_click_to_dial_to_a_busy_local_phone_fails_like_the_real_one() -> None:
    model, out = _failing_click_to_dial("Local/2004@tb-busy", "busy", 30.0)
    _same_as(_rows(out.events), REAL_BUSY)
    response = next(e for e in out.events if e["Event"] == "OriginateResponse")
    assert not any(key.startswith("ChanVariable") for key in response)
    assert model.channels == {}


def test_a_click_to_dial_to_a_local_phone_that_never_answers_times_out_like_the_real_one() -> None:
    model, out = _failing_click_to_dial("Local/2005@tb-noanswer", "noanswer", 2.0)
    out.extend(_fire(model, out, "cc-dial-noanswer", T0 + 2))
    _same_as(_rows(out.events), REAL_NO_ANSWER)
    assert model.channels == {}


def test_the_tracker_ends_a_failed_click_to_dial_after_its_originate_response() -> None:
    """The daemon ends a failed click-to-dial on its OriginateResponse (pbx.py
    `_originated`): it must come before the call's CallEnded, as on the real one."""
    for device, name, timeout in (
        ("Local/2004@tb-busy", "busy", 30.0),
        ("Local/2005@tb-noanswer", "noanswer", 2.0),
    ):
        model, out = _failing_click_to_dial(device, name, timeout)
        if name == "noanswer":
            out.extend(_fire(model, out, f"cc-dial-{name}", T0 + 2))
        messages = frame(_wire(out.events))
        order = [m.event for m in messages if m.event in ("OriginateResponse", "Hangup")]
        assert order[0] == "OriginateResponse", name
        events, tracker = replay(messages)
        assert [type(e).__name__ for e in events] == ["CallStarted", "CallEnded"], name
        assert tracker.calls() == {} and tracker.report["internal_error"] == 0
