"""Resync after a reconnect, and the tracker's handling of events the traces lack."""

from __future__ import annotations

from adapters.ami.calls import CallTracker
from adapters.ami.events import CallAnswered, CallEnded, CallStarted
from tests.unit.test_ami_support import frame, kinds, replay, summary, trace_bytes

CALLER = "Local/5551004@simcaller-00000007;1"


def test_connecting_mid_call_resyncs_then_follows_the_live_events() -> None:
    messages = frame(trace_bytes("e1_hold_redirect_to_agent"))
    items = [m for m in messages if m.event == "CoreShowChannel"]
    rest = messages[messages.index(items[-1]) + 1 :]
    tracker = CallTracker()
    found = tracker.resync(items, now=1.0)
    assert summary(found) == [
        (
            "CallStarted",
            {
                "channel": CALLER,
                "uniqueid": "1795327460.14",
                "caller_number": "5551004",
                "caller_name": "Redirect Me",
                "dnis": None,  # it is on hold in `waiting` now: the DID is not knowable
                "resynced": True,
            },
        )
    ]
    assert tracker.calls()["1795327460.14"].channel == CALLER
    live, _ = replay(rest, tracker)
    assert kinds(live) == ["AgentRinging", "CallAnswered", "CallEnded"]
    assert tracker.report["internal_error"] == 0


def test_a_resync_matching_what_we_know_reports_nothing() -> None:
    messages = frame(trace_bytes("e1_hold_redirect_to_agent"))
    items = [m for m in messages if m.event == "CoreShowChannel"]
    before, tracker = replay(messages[: messages.index(items[0])])
    assert kinds(before) == ["CallStarted"]
    assert tracker.resync(items, now=2.0) == []


def test_calls_that_ended_while_we_were_away_are_closed() -> None:
    messages = frame(trace_bytes("b_queue_answered"))
    connect = next(i for i, m in enumerate(messages) if m.event == "AgentConnect")
    events, tracker = replay(messages[: connect + 1])
    assert kinds(events)[-1] == "CallAnswered"
    closed = tracker.resync([], now=99.0)
    assert len(closed) == 1
    end = closed[0]
    assert isinstance(end, CallEnded)
    assert (end.call_id, end.cause, end.stage, end.resynced) == (
        "1795327436.0",
        None,
        "answered",
        True,
    )
    assert tracker.calls() == {}
    # The rest of the recording (as if delivered late) must not resurrect it.
    late, _ = replay(messages[connect + 1 :], tracker)
    assert late == []


def test_queue_entries_found_at_resync_are_queued_calls() -> None:
    messages = frame(trace_bytes("d_queue_members"))
    entry = next(m for m in messages if m.event == "QueueEntry")
    channel = {
        "Event": "CoreShowChannel",
        "Channel": entry.headers["Channel"],
        "Uniqueid": entry.headers["Uniqueid"],
        "Linkedid": entry.headers["Uniqueid"],
        "Context": "queues",
        "Exten": "sales",
        "CallerIDNum": "5551003",
        "CallerIDName": "Queue Waiter",
        "Application": "Queue",
        "BridgeId": "",
    }
    tracker = CallTracker()
    found = tracker.resync([channel], now=5.0, queue_entries=[entry])
    assert kinds(found) == ["CallStarted", "CallQueued"]
    assert summary(found)[1][1] == {"queue": "sales", "position": 1, "resynced": True}


def test_a_call_answered_while_we_were_away_is_reported_answered() -> None:
    messages = frame(trace_bytes("b_queue_answered"))
    join = next(i for i, m in enumerate(messages) if m.event == "QueueCallerJoin")
    _, tracker = replay(messages[: join + 1])
    bridge = "b-1"
    caller = {
        "Channel": "Local/5551001@simcaller-00000000;1",
        "Uniqueid": "1795327436.0",
        "Linkedid": "1795327436.0",
        "Context": "queues",
        "Exten": "support",
        "BridgeId": bridge,
    }
    agent = {
        "Channel": "Local/agent1001@agents-00000001;1",
        "Uniqueid": "1795327436.2",
        "Linkedid": "1795327436.0",
        "Context": "agents",
        "Exten": "agent1001",
        "BridgeId": bridge,
    }
    found = tracker.resync([caller, agent], now=7.0)
    assert len(found) == 1
    answered = found[0]
    assert isinstance(answered, CallAnswered)
    assert (answered.device, answered.resynced) == ("Local/agent1001@agents", True)


def test_garbage_resync_items_are_counted() -> None:
    tracker = CallTracker()
    assert tracker.resync([{"Event": "CoreShowChannel"}, {}], now=0.0) == []
    assert tracker.report["resync_item_without_uniqueid"] == 2


# --- events the recordings do not contain ---------------------------------------------

CALL = {
    "Channel": "PJSIP/trunk-00000001",
    "Uniqueid": "100.1",
    "Linkedid": "100.1",
    "Context": "inbound",
    "Exten": "5001",
    "CallerIDNum": "+15550100",
    "CallerIDName": "Zoë",
}
AGENT = {
    "Channel": "PJSIP/1001-00000002",
    "Uniqueid": "100.2",
    "Linkedid": "100.1",
    "Context": "agents",
    "Exten": "1001",
}


def feed(tracker: CallTracker, *events: dict[str, str]) -> list[str]:
    out = []
    for index, event in enumerate(events):
        out += tracker.feed(event, float(index))
    return kinds(out)


def test_sip_call_hold_unhold_and_blind_transfer() -> None:
    tracker = CallTracker()
    assert feed(
        tracker,
        {"Event": "Newchannel", **CALL},
        {"Event": "Newchannel", **AGENT},
        {"Event": "DialBegin", **CALL, "DestChannel": AGENT["Channel"], "DestUniqueid": "100.2"},
        {"Event": "DialEnd", **CALL, "DestUniqueid": "100.2", "DialStatus": "ANSWER"},
        {"Event": "BridgeEnter", **CALL, "BridgeUniqueid": "x"},
        {"Event": "BridgeEnter", **AGENT, "BridgeUniqueid": "x"},
        {"Event": "Hold", **AGENT},
        {"Event": "Hold", **AGENT},
        {"Event": "Unhold", **AGENT},
        {
            "Event": "BlindTransfer",
            "TransfereeUniqueid": "100.1",
            "Extension": "2000",
            "Context": "internal",
            "Result": "Success",
        },
        {"Event": "Hangup", **AGENT, "Cause": "16"},
        {"Event": "Hangup", **CALL, "Cause": "16", "Cause-txt": "Normal Clearing"},
    ) == [
        "CallStarted",
        "AgentRinging",
        "CallAnswered",
        "CallHeld",
        "CallUnheld",
        "CallTransferred",
        "CallEnded",
    ]


def test_caller_name_and_number_from_a_sip_newchannel() -> None:
    tracker = CallTracker()
    (start,) = tracker.feed({"Event": "Newchannel", **CALL}, 0.0)
    assert isinstance(start, CallStarted)
    assert (start.caller_number, start.caller_name, start.dnis) == ("+15550100", "Zoë", "5001")


def test_events_for_unknown_channels_are_counted_not_fatal() -> None:
    tracker = CallTracker()
    assert (
        feed(
            tracker,
            {"Event": "Hangup", "Uniqueid": "9.9", "Channel": "X/1-1"},
            {"Event": "AgentConnect", "Uniqueid": "9.8", "Channel": "X/2-1"},
            {"Event": "AgentComplete", "Uniqueid": "9.7"},
            {"Event": "BlindTransfer", "TransfereeUniqueid": "nope"},
            {"Response": "Success"},
        )
        == []
    )
    assert tracker.report["hangup_of_unknown_channel"] == 1
    assert tracker.report["agent_connect_unmatched"] == 1
    assert tracker.report["transfer_unmatched"] == 1
    assert tracker.report["not_an_event"] == 1
    assert tracker.report["internal_error"] == 0


def test_a_queue_event_for_a_call_we_never_saw_start_starts_it() -> None:
    tracker = CallTracker()
    queued = {"Event": "QueueCallerJoin", **CALL, "Context": "queues", "Queue": "support"}
    assert feed(tracker, queued) == ["CallStarted", "CallQueued"]
    assert tracker.report["implicit_call_start"] == 1


def test_failed_originate_to_an_agent_is_not_answered() -> None:
    tracker = CallTracker()
    tracker.feed({"Event": "Newchannel", **CALL}, 0.0)
    tracker.expect_originate("a-1", "100.1", "PJSIP/1001")
    events = tracker.feed(
        {"Event": "OriginateResponse", "ActionID": "a-1", "Response": "Failure", "Reason": "0"},
        1.0,
    )
    assert summary(events) == [
        (
            "AgentNotAnswered",
            {"device": "PJSIP/1001", "agent_channel": "", "reason": "failed (reason 0)"},
        )
    ]
