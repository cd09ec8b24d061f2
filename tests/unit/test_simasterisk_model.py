"""The simulated Asterisk's pure model: its events have the fields, in the order, of the
events a real Asterisk 22 sent in tests/fixtures/asterisk-traces; it runs the shipped
dialplan (IVR, holding, delivery, hold, unhold, hang-up); CoreShowChannels lists what is
alive; and our own call tracker follows a call from its events."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from adapters.ami.calls import CallTracker
from adapters.ami.events import AgentNotAnswered, AgentRinging, CallAnswered, CallEnded
from adapters.ami.framing import AmiParser
from adapters.simasterisk.ami_server import BANNER, encode
from adapters.simasterisk.model import (
    AgiHangup,
    Connected,
    Event,
    Gone,
    Model,
    ModelError,
    Outcome,
    Ring,
    StartAgi,
    Timer,
)

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-traces"
T0 = 1795327500.0
CHECKED = {
    "Newchannel",
    "Newexten",
    "NewCallerid",
    "NewConnectedLine",
    "Newstate",
    "DialBegin",
    "DialEnd",
    "BridgeCreate",
    "BridgeEnter",
    "BridgeLeave",
    "BridgeDestroy",
    "MusicOnHoldStart",
    "MusicOnHoldStop",
    "SoftHangupRequest",
    "HangupRequest",
    "Hangup",
    "CoreShowChannel",
    "CoreShowChannelsComplete",
    "OriginateResponse",
}


def _keys(lines: list[str]) -> tuple[str, ...]:
    # `ChanVariable(<channel>)` names the channel: compare the field, not the name.
    return tuple(re.sub(r"\(.*\)$", "", line.split(":", 1)[0]) for line in lines)


def _recorded() -> dict[str, set[tuple[str, ...]]]:
    shapes: dict[str, set[tuple[str, ...]]] = {}
    for path in TRACES.glob("*.ami.txt"):
        text = path.read_bytes().decode()
        for block in text.split("\r\n\r\n"):
            lines = [line for line in block.split("\r\n") if line]
            if lines and lines[0].startswith("Asterisk Call Manager"):
                lines = lines[1:]
            if lines and lines[0].startswith("Event: "):
                shapes.setdefault(lines[0][7:], set()).add(_keys(lines))
    return shapes


RECORDED = _recorded()


def _wire_keys(event: Event) -> tuple[str, ...]:
    return _keys(encode(event).decode().split("\r\n")[:-2])


def _names(outcome: Outcome) -> list[str]:
    return [str(e["Event"]) for e in outcome.events]


def _one(outcome: Outcome, kind: type) -> object:
    found = [e for e in outcome.effects if isinstance(e, kind)]
    assert len(found) == 1, outcome.effects
    return found[0]


def _queued_call(model: Model) -> tuple[str, str, Outcome]:
    """A caller through the IVR and into [cc-holding], as the daemon's AGI leaves it."""
    caller, out = model.inbound("5551009", "Quinn Queue", "5000", T0)
    uid = caller.uniqueid
    model.agi_set_variable(uid, "CC_INTERACTION_ID", "7")
    assert model.agi_set_location(uid, context="cc-holding")
    assert model.agi_set_location(uid, exten="s")
    assert model.agi_set_location(uid, priority="1")
    out.extend(model.agi_done(uid, T0 + 2))
    return uid, caller.name, out


def _deliver(model: Model, name: str, device: str = "PJSIP/1001", ring: int = 15) -> Outcome:
    model.setvar(name, "CC_AGENT_DEVICE", device)
    model.setvar(name, "CC_RING_SECONDS", str(ring))
    return model.redirect([(name, "cc-agents", "s", "1")], T0 + 3)


def test_every_event_has_the_fields_and_order_of_a_recorded_one() -> None:
    model = Model(agi_address=("127.0.0.1", 4573), first_sequence=30)
    _uid, name, everything = _queued_call(model)
    ring = _deliver(model, name)
    everything.extend(ring)
    leg = _one(ring, Ring)
    assert isinstance(leg, Ring)
    everything.extend(model.ringing(leg.uniqueid, T0 + 3.1))
    everything.extend(model.answer(leg.uniqueid, T0 + 4))
    leg_name = model.channels[leg.uniqueid].name
    everything.extend(
        model.redirect([(name, "cc-hold", "s", "1"), (leg_name, "cc-hold-agent", "s", "1")], T0 + 5)
    )
    model.setvar(name, "CC_UNHELD", "1")  # the daemon's unhold, before its Bridge
    everything.extend(model.bridge(name, leg_name, T0 + 6))
    everything.events.extend(model.core_show_channels("sim-1", T0 + 7))
    everything.extend(model.remote_hangup(leg.uniqueid, T0 + 8))
    _chan, spy = model.originate(
        "PJSIP/2001", T0 + 9, action_id="sim-2", application="ChanSpy", data="PJSIP/1001,q"
    )
    everything.extend(spy)
    spy_ring = _one(spy, Ring)
    assert isinstance(spy_ring, Ring)
    everything.extend(model.answer(spy_ring.uniqueid, T0 + 10))
    _gone, failed = model.originate("Bogus/1", T0 + 11, action_id="sim-3", context="x")
    everything.extend(failed)
    seen: set[str] = set()
    for event in everything.events:
        kind = str(event["Event"])
        if kind not in CHECKED:
            continue
        seen.add(kind)
        assert _wire_keys(event) in RECORDED[kind], f"{kind} differs from the traces"
    assert seen == CHECKED


def test_an_inbound_call_runs_the_sample_dialplan_into_the_agi() -> None:
    model = Model(agi_address=("127.0.0.1", 4999), first_sequence=42)
    caller, out = model.inbound("5551009", "Quinn Queue", "5000", T0)
    assert caller.name == "PJSIP/trunk-00000000"
    assert caller.uniqueid == caller.linkedid == "1795327500.42"
    assert _names(out) == [
        "Newchannel",
        "Newexten",
        "Newexten",
        "Newexten",
        "Newexten",
        "Newstate",
        "Newexten",
    ]
    apps = [e["Application"] for e in out.events if e["Event"] == "Newexten"]
    assert apps == ["NoOp", "Set", "Set", "Answer", "AGI"]
    assert out.events[-1]["AppData"] == "agi://127.0.0.1:4999/ivr/main,5000"
    # Once Set(CTI_CALLID=${UNIQUEID}) ran, every event carries the tag.
    assert out.events[-1]["ChanVariable"] == ["CTI_CALLID=1795327500.42", "CTI_QUEUE="]
    start = _one(out, StartAgi)
    assert isinstance(start, StartAgi)
    assert (start.host, start.port) == ("127.0.0.1", 4999)
    recorded = (TRACES / "h2_fastagi_ivr_to_queue.agi-from-asterisk.txt").read_text()
    recorded_keys = [line.split(":")[0] for line in recorded.split("\n\n")[0].splitlines()]
    assert [key for key, _ in start.env] == recorded_keys
    env = dict(start.env)
    assert env["agi_network_script"] == "ivr/main"
    assert env["agi_request"] == "agi://127.0.0.1:4999/ivr/main"
    assert (env["agi_channel"], env["agi_uniqueid"]) == (caller.name, caller.uniqueid)
    assert (env["agi_callerid"], env["agi_calleridname"]) == ("5551009", "Quinn Queue")
    assert (env["agi_extension"], env["agi_priority"], env["agi_arg_1"]) == ("5000", "5", "5000")


def test_after_the_agi_the_caller_waits_on_music_in_the_holding_context() -> None:
    model = Model()
    uid, _name, out = _queued_call(model)
    caller = model.channels[uid]
    assert (caller.context, caller.exten, caller.priority, caller.app) == (
        "cc-holding",
        "s",
        3,
        "MusicOnHold",
    )
    assert _names(out)[-3:] == ["Newexten", "Newexten", "MusicOnHoldStart"]
    timer = [e for e in out.effects if isinstance(e, Timer)][-1]
    assert timer.seconds == 30.0
    # The MusicOnHold(default,30) loop: stop, the silence fallback not needed (ExecIf),
    # Goto(loop), Set, start again.
    again = model.timer(uid, timer.token, T0 + 32)
    assert _names(again) == ["MusicOnHoldStop"] + ["Newexten"] * 4 + ["MusicOnHoldStart"]
    assert [e["Application"] for e in again.events if e["Event"] == "Newexten"] == [
        "ExecIf",
        "Goto",
        "Set",
        "MusicOnHold",
    ]
    assert model.timer(uid, timer.token, T0 + 33).events == []  # stale: ignored


def test_delivery_dials_the_device_for_the_ring_seconds_and_a_timeout_goes_back() -> None:
    model = Model()
    uid, name, _ = _queued_call(model)
    out = _deliver(model, name, ring=15)
    assert _names(out) == [
        "MusicOnHoldStop",
        "Newexten",
        "Newexten",
        "Newchannel",
        "Newexten",
        "NewCallerid",
        "NewConnectedLine",
        "DialBegin",
    ]
    assert out.events[2]["Application"] == "Dial"
    assert out.events[2]["AppData"] == "PJSIP/1001,15"
    dial = out.events[-1]
    assert dial["DestChannel"] == "PJSIP/1001-00000001"
    assert dial["DestLinkedid"] == uid and dial["DialString"] == "1001"
    ring = _one(out, Ring)
    assert isinstance(ring, Ring) and ring.device == "PJSIP/1001"
    # Where the Dial ran: the agent context (the simulator rings an agent's phone).
    assert ring.context == "cc-agents"
    timer = _one(out, Timer)
    assert isinstance(timer, Timer) and timer.seconds == 15.0
    late = model.timer(uid, timer.token, T0 + 18)
    assert _names(late)[:2] == ["DialEnd", "Hangup"]
    assert late.events[0]["DialStatus"] == "NOANSWER"
    assert late.events[1]["Uniqueid"] == ring.uniqueid
    assert model.channels[uid].context == "cc-holding"
    assert _names(late)[-1] == "MusicOnHoldStart"


def test_a_busy_phone_ends_the_dial_with_busy() -> None:
    model = Model()
    uid, name, _ = _queued_call(model)
    ring = _one(_deliver(model, name), Ring)
    assert isinstance(ring, Ring)
    out = model.reject(ring.uniqueid, 17, T0 + 4)
    assert _names(out)[:3] == ["HangupRequest", "DialEnd", "Hangup"]
    assert out.events[1]["DialStatus"] == "BUSY"
    assert out.events[2]["Cause-txt"] == "User busy"
    assert model.channels[uid].context == "cc-holding"


def test_answer_bridges_and_the_agent_hanging_up_ends_the_call() -> None:
    model = Model()
    uid, name, _ = _queued_call(model)
    ring = _one(_deliver(model, name), Ring)
    assert isinstance(ring, Ring)
    out = model.answer(ring.uniqueid, T0 + 4)
    assert _names(out) == [
        "Newstate",
        "DialEnd",
        "BridgeCreate",
        "Newexten",
        "BridgeEnter",
        "BridgeEnter",
    ]
    assert out.events[1]["DialStatus"] == "ANSWER"
    assert out.events[4]["BridgeUniqueid"] == out.events[5]["BridgeUniqueid"]
    assert [e["BridgeNumChannels"] for e in out.events[4:]] == ["1", "2"]
    assert _one(out, Connected) == Connected(uid, ring.uniqueid, "PJSIP/1001")
    end = model.remote_hangup(ring.uniqueid, T0 + 9)
    # e1: leg's request, both leave, leg gone, bridge gone, then the caller (Dial
    # without the `g` option hangs the caller up).
    assert _names(end) == [
        "HangupRequest",
        "BridgeLeave",
        "BridgeLeave",
        "Hangup",
        "BridgeDestroy",
        "SoftHangupRequest",
        "Hangup",
    ]
    assert end.events[-1]["Uniqueid"] == uid and end.events[-1]["Cause"] == "16"
    assert [e.uniqueid for e in end.effects if isinstance(e, Gone)] == [ring.uniqueid, uid]
    assert model.channels == {} and model.bridges == {}


def test_hold_redirects_both_legs_and_unhold_bridges_them_again() -> None:
    model = Model()
    uid, name, _ = _queued_call(model)
    ring = _one(_deliver(model, name), Ring)
    assert isinstance(ring, Ring)
    model.answer(ring.uniqueid, T0 + 4)
    leg_name = model.channels[ring.uniqueid].name
    hold = model.redirect(
        [(name, "cc-hold", "s", "1"), (leg_name, "cc-hold-agent", "s", "1")], T0 + 5
    )
    assert _names(hold)[:3] == ["BridgeLeave", "BridgeLeave", "BridgeDestroy"]
    assert "Hangup" not in _names(hold)
    assert model.channels[uid].app == "MusicOnHold"
    assert model.channels[ring.uniqueid].app == "Wait"
    model.setvar(name, "CC_UNHELD", "1")  # the daemon's unhold, before its Bridge
    unhold = model.bridge(name, leg_name, T0 + 6)
    assert _names(unhold) == ["BridgeCreate", "MusicOnHoldStop", "BridgeEnter", "BridgeEnter"]
    # The after-bridge location is the next priority, as in the e2 trace.
    assert [e["Priority"] for e in unhold.events[2:]] == ["4", "3"]
    end = model.remote_hangup(uid, T0 + 7)
    assert [e["Application"] for e in end.events if e["Event"] == "Newexten"] == ["Hangup"]
    assert model.channels == {}


def test_hangup_action_and_errors() -> None:
    model = Model()
    uid, name, _ = _queued_call(model)
    with pytest.raises(ModelError, match="No such channel"):
        model.ami_hangup("PJSIP/nobody-00000099", T0)
    with pytest.raises(ModelError, match="Channel does not exist"):
        model.redirect([("PJSIP/nobody-00000099", "cc-agents", "s", "1")], T0)
    with pytest.raises(ModelError, match="No variable specified"):
        model.setvar(name, "", "x")
    out = model.ami_hangup(name, T0 + 5)
    assert _names(out) == ["SoftHangupRequest", "MusicOnHoldStop", "Hangup"]
    assert out.events[-1]["Cause-txt"] == "Normal Clearing"
    assert uid not in model.channels


def test_a_caller_hanging_up_during_the_agi_is_gone_when_the_agi_ends() -> None:
    model = Model()
    caller, _ = model.inbound("5551010", "", "5000", T0)
    out = model.remote_hangup(caller.uniqueid, T0 + 1)
    assert _names(out) == ["HangupRequest"]
    assert _one(out, AgiHangup) == AgiHangup(caller.uniqueid)
    done = model.agi_done(caller.uniqueid, T0 + 2)
    assert _names(done) == ["Hangup"]
    assert model.channels == {}


def test_core_show_channels_lists_the_live_channels() -> None:
    model = Model()
    uid, name, _ = _queued_call(model)
    ring = _one(_deliver(model, name), Ring)
    assert isinstance(ring, Ring)
    model.answer(ring.uniqueid, T0 + 4)
    items = model.core_show_channels("a-1", T0 + 65)
    assert [i["Event"] for i in items] == [
        "CoreShowChannel",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
    ]
    assert [i["Uniqueid"] for i in items[:2]] == [uid, ring.uniqueid]
    assert items[0]["Duration"] == "00:01:05"
    assert items[0]["BridgeId"] == items[1]["BridgeId"] != ""
    assert items[0]["Application"] == "Dial"
    assert items[-1]["ListItems"] == "2" and items[-1]["ActionID"] == "a-1"
    model.remote_hangup(uid, T0 + 70)
    assert model.core_show_channels("a-2", T0 + 71)[-1]["ListItems"] == "0"


def test_our_call_tracker_follows_a_simulated_call() -> None:
    model = Model()
    outcome = Outcome()
    uid, name, out = _queued_call(model)
    outcome.extend(out)
    first = _deliver(model, name, device="PJSIP/1002", ring=5)
    outcome.extend(first)
    missed = _one(first, Ring)
    timer = _one(first, Timer)
    assert isinstance(missed, Ring) and isinstance(timer, Timer)
    outcome.extend(model.timer(uid, timer.token, T0 + 9))
    second = _deliver(model, name)
    outcome.extend(second)
    ring = _one(second, Ring)
    assert isinstance(ring, Ring)
    outcome.extend(model.answer(ring.uniqueid, T0 + 11))
    outcome.extend(model.remote_hangup(uid, T0 + 20))
    wire = BANNER + b"".join(encode(e) for e in outcome.events)
    tracker = CallTracker()
    domain = []
    for message in AmiParser().feed(wire):
        domain += tracker.feed_message(message, T0)
    kinds = [type(e).__name__ for e in domain]
    assert kinds == [
        "CallStarted",
        "IvrEntered",
        "IvrLeft",
        "AgentRinging",
        "AgentNotAnswered",
        "AgentRinging",
        "CallAnswered",
        "CallEnded",
    ]
    not_answered = domain[4]
    assert isinstance(not_answered, AgentNotAnswered) and not_answered.reason == "no-answer"
    assert isinstance(domain[3], AgentRinging) and domain[3].device == "PJSIP/1002"
    answered = domain[6]
    assert isinstance(answered, CallAnswered) and answered.device == "PJSIP/1001"
    ended = domain[-1]
    assert isinstance(ended, CallEnded) and ended.call_id == uid and not ended.abandoned
    # The agent leg's hang-up follows the caller's, as on a real Asterisk: counted, harmless.
    assert set(tracker.report) <= {"event_after_call_ended"}, tracker.report


def test_traffic_plans_are_deterministic_and_follow_the_model() -> None:
    import random

    from adapters.simasterisk.traffic import TrafficModel

    model = TrafficModel(
        rate=2.0,
        known_numbers=("02079460018", "02079460019"),
        unknown_share=0.25,
        menus=[{"1": 0.5, "2": 0.5}],
        talk_seconds=(10.0, 20.0),
        patience=30.0,
    )
    plan = model.plan(400, random.Random(7))
    assert plan == model.plan(400, random.Random(7))
    assert plan != model.plan(400, random.Random(8))
    assert all(a.at < b.at for a, b in itertools.pairwise(plan))
    assert 150 < plan[-1].at < 250  # 400 arrivals at 2 per second
    known = sum(p.number in model.known_numbers for p in plan)
    assert 0.65 < known / len(plan) < 0.85
    assert {p.digits for p in plan} == {("1",), ("2",)}
    assert all(10.0 <= p.talk_seconds <= 20.0 for p in plan)
    assert all(p.patience is not None and p.patience > 0 for p in plan)


async def test_traffic_runs_a_plan_with_an_injected_sleep() -> None:
    import random
    from typing import Any

    from adapters.simasterisk import traffic

    slept: list[float] = []
    placed: list[tuple[str, list[str]]] = []

    class FakeSim:
        def place_call(self, number: str, did: str, **kw: Any) -> Any:
            placed.append((number, kw["digits"]))
            return number

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    plan = traffic.TrafficModel(rate=1.0).plan(5, random.Random(1))
    calls = await traffic.run(FakeSim(), plan, sleep=sleep)  # type: ignore[arg-type]
    assert len(calls) == 5 and [p[1] for p in placed] == [["2"]] * 5
    assert sum(slept) == pytest.approx(plan[-1].at)
