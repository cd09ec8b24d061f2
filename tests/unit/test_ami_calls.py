"""The call tracker on real Asterisk 22 traces: framing + tracker -> domain events."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.ami.calls import CallTracker
from adapters.ami.events import AgentRinging, CallAnswered, CallEnded
from tests.unit.test_ami_support import frame, kinds, replay, summary, trace_bytes

ALICE = "Local/agent1001@agents"
BOB = "Local/agent1002@agents"
DAVE = "Local/agent2001@agents-noanswer"


def events_of(name: str, chunks: list[int] | None = None, *, filtered: bool = True) -> list:  # type: ignore[type-arg]
    events, tracker = replay(frame(trace_bytes(name), chunks, filtered=filtered))
    assert tracker.report["internal_error"] == 0
    assert tracker.calls() == {}  # every call in these traces ends
    return events


def started(number: str, name: str, dnis: str, channel: str, uniqueid: str) -> tuple[str, dict]:  # type: ignore[type-arg]
    return (
        "CallStarted",
        {
            "channel": channel,
            "uniqueid": uniqueid,
            "caller_number": number,
            "caller_name": name,
            "dnis": dnis,
            "resynced": False,
        },
    )


def ended(stage: str, *, abandoned: bool = False, by: str | None = None) -> tuple[str, dict]:  # type: ignore[type-arg]
    return (
        "CallEnded",
        {
            "cause": 16,
            "cause_text": "Normal Clearing",
            "stage": stage,
            "abandoned": abandoned,
            "ended_by": by,
            "resynced": False,
        },
    )


def test_b_queue_answered() -> None:
    events = events_of("b_queue_answered")
    assert {e.call_id for e in events} == {"1795327436.0"}
    leg = "Local/agent1001@agents-00000001;1"
    assert summary(events) == [
        started(
            "5551001", "Alice Caller", "5001", "Local/5551001@simcaller-00000000;1", "1795327436.0"
        ),
        ("CallQueued", {"queue": "support", "position": 1, "resynced": False}),
        (
            "AgentRinging",
            {
                "device": ALICE,
                "agent_channel": leg,
                "member_name": "Alice Agent",
                "queue": "support",
            },
        ),
        (
            "CallAnswered",
            {
                "device": ALICE,
                "agent_channel": leg,
                "member_name": "Alice Agent",
                "queue": "support",
                "resynced": False,
            },
        ),
        ended("answered", by="agent"),
    ]


def test_c_queue_abandon_after_a_retry() -> None:
    events = events_of("c_queue_abandon")
    assert kinds(events) == [
        "CallStarted",
        "CallQueued",
        "AgentRinging",
        "AgentNotAnswered",
        "AgentRinging",
        "AgentNotAnswered",
        "CallEnded",
    ]
    first, second = events[3], events[5]
    assert (first.device, first.reason) == (DAVE, "no-answer")
    # The caller hung up while the retry was ringing: Dial cancels that leg.
    assert (second.device, second.reason) == (DAVE, "cancel")
    assert first.agent_channel != second.agent_channel
    assert summary(events)[-1] == ended("queued", abandoned=True)
    assert summary(events)[0][1]["caller_name"] == "Brian Abandon"


def test_e1_hold_then_redirect_to_an_agent() -> None:
    events = events_of("e1_hold_redirect_to_agent")
    leg = "Local/agent1002@agents-00000008;1"
    assert summary(events) == [
        started(
            "5551004", "Redirect Me", "5003", "Local/5551004@simcaller-00000007;1", "1795327460.14"
        ),
        ("AgentRinging", {"device": BOB, "agent_channel": leg, "member_name": None, "queue": None}),
        (
            "CallAnswered",
            {
                "device": BOB,
                "agent_channel": leg,
                "member_name": None,
                "queue": None,
                "resynced": False,
            },
        ),
        ended("answered"),
    ]


def test_e2_originated_agent_leg_bridged_to_the_caller() -> None:
    events = events_of("e2_originate_agent_then_bridge")
    leg = "Local/agent1001@agents-0000000a;1"
    assert summary(events) == [
        started(
            "5551005", "Bridge Me", "5003", "Local/5551005@simcaller-00000009;1", "1795327470.18"
        ),
        (
            "CallAnswered",
            {
                "device": ALICE,
                "agent_channel": leg,
                "member_name": None,
                "queue": None,
                "resynced": False,
            },
        ),
        ended("answered"),
    ]


def test_e2_with_the_originate_announced_rings_the_agent() -> None:
    tracker = CallTracker()
    tracker.expect_originate("e2_originate_agent_then_bridge-003", "1795327470.18", ALICE)
    events, _ = replay(frame(trace_bytes("e2_originate_agent_then_bridge")), tracker)
    assert kinds(events) == ["CallStarted", "AgentRinging", "CallAnswered", "CallEnded"]
    ringing = events[1]
    assert isinstance(ringing, AgentRinging)
    assert (ringing.device, ringing.agent_channel) == (ALICE, "Local/agent1001@agents-0000000a;1")
    assert tracker.report["internal_error"] == 0


def test_g_dialplan_tagged_channel_is_a_call() -> None:
    # Not an inbound context, but the dialplan set CTI_CALLID (a manager.conf channelvar).
    events = events_of("g_userevent_chanvars")
    assert summary(events) == [
        started(
            "5551008", "Tools", "userevent", "Local/userevent@cti-tools-0000000c;2", "1795327487.27"
        ),
        ended("waiting"),
    ]
    assert events[0].call_id == "1795327487.26"  # the Linkedid, not the tagged channel


def test_h2_ivr_then_queue_then_answered() -> None:
    events = events_of("h2_fastagi_ivr_to_queue")
    assert summary(events) == [
        started(
            "5551009", "Quinn Queue", "5000", "Local/5551009@simcaller-0000000e;1", "1795327500.30"
        ),
        ("IvrEntered", {"application": "AGI", "script": "agi://127.0.0.1:4573/ivr,5000"}),
        ("IvrLeft", {"reason": "returned"}),
        ("CallQueued", {"queue": "support", "position": 1, "resynced": False}),
        (
            "AgentRinging",
            {
                "device": BOB,
                "agent_channel": "Local/agent1002@agents-0000000f;1",
                "member_name": "Bob Agent",
                "queue": "support",
            },
        ),
        (
            "CallAnswered",
            {
                "device": BOB,
                "agent_channel": "Local/agent1002@agents-0000000f;1",
                "member_name": "Bob Agent",
                "queue": "support",
                "resynced": False,
            },
        ),
        ended("answered", by="agent"),
    ]


def test_h_ivr_hangs_up_the_call() -> None:
    events = events_of("h_fastagi_ivr")
    assert kinds(events) == ["CallStarted", "IvrEntered", "IvrLeft", "CallEnded"]


def test_no_call_in_sessions_without_calls() -> None:
    for name in ("a_login_core", "f2_auth_errors"):
        assert events_of(name) == []


def test_f_errors_originate_into_nowhere_is_no_call() -> None:
    events, tracker = replay(frame(trace_bytes("f_errors")))
    assert events == []
    assert tracker.report["internal_error"] == 0


SCENARIOS = [
    "b_queue_answered",
    "c_queue_abandon",
    "d_queue_members",
    "e1_hold_redirect_to_agent",
    "e2_originate_agent_then_bridge",
    "g_userevent_chanvars",
    "h_fastagi_ivr",
    "h2_fastagi_ivr_to_queue",
]


def without_time(events: list) -> list:  # type: ignore[type-arg]
    return [replace(e, at=0.0) for e in events]


def test_filtering_changes_nothing_the_tracker_reports() -> None:
    for name in SCENARIOS:
        assert without_time(events_of(name)) == without_time(events_of(name, filtered=False)), name


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(SCENARIOS), st.lists(st.integers(1, 3000), max_size=80))
def test_any_chunking_gives_the_same_events(name: str, chunks: list[int]) -> None:
    assert events_of(name, chunks) == events_of(name)


def test_all_scenarios_in_one_burst_on_one_tracker() -> None:
    # One connection's worth of calls back to back, each read holding many events.
    bodies = [trace_bytes(name).split(b"\r\n", 1)[1] for name in SCENARIOS]
    data = b"Asterisk Call Manager/11.0.0\r\n" + b"".join(bodies)
    events, tracker = replay(frame(data, [65536] * 20))
    assert tracker.report["internal_error"] == 0
    assert tracker.calls() == {}
    ends = [e for e in events if isinstance(e, CallEnded)]
    assert len(ends) == len(SCENARIOS)
    answered = [e for e in events if isinstance(e, CallAnswered)]
    assert len(answered) == 4
