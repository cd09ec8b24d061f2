"""The replay core on the recorded Asterisk traces: bytes (+ timeline, + router) -> records."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from contact_center.replay import (
    Cut,
    Replay,
    ReplayAgent,
    ReplayError,
    RoutingSetup,
    parse_timeline,
    read_timeline,
    replay,
    timeline_path,
    to_json,
)
from routing.model import Policy, QueueDef

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-traces"
RECORDINGS = sorted(TRACES.glob("*.ami.txt"))
B_CALL = "1795327436.0"
ALICE_DEVICE = "Local/agent1001@agents"  # the member that answers in b and h2's queue
POLICY = Policy(
    capacity={"voice": 1, "chat": 3, "email": 5, "sms": 3},
    blocks={"voice": ("chat", "email", "sms")},
    wrap_up_seconds=0.5,
)
SUPPORT = QueueDef("support", ("voice",), {"support": 3}, offer_timeout_seconds=20)


def recording(name: str) -> tuple[bytes, list[Cut] | None]:
    path = TRACES / f"{name}.ami.txt"
    return path.read_bytes(), read_timeline(path)


def routing(*agents: ReplayAgent, policy: Policy = POLICY) -> RoutingSetup:
    return RoutingSetup((SUPPORT,), policy, agents, holding_context="cc-holding")


def types(result: Replay, call_id: str | None = None) -> list[str]:
    return [r["type"] for r in result.records if call_id in (None, r["call_id"])]


def lines(result: Replay) -> list[str]:
    return [to_json(record) for record in result.records]


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name.removesuffix(".ami.txt"))
def test_every_trace_replays_the_same_twice(path: Path) -> None:
    data, timeline = path.read_bytes(), read_timeline(path)
    assert timeline is not None
    first = replay(data, timeline, routing(ReplayAgent(1, "alice", {"support": 5}, ALICE_DEVICE)))
    again = replay(data, timeline, routing(ReplayAgent(1, "alice", {"support": 5}, ALICE_DEVICE)))
    assert first.problem is None
    assert not [n for n in first.notes if not n.startswith("routing:")], first.notes
    assert lines(first) == lines(again)
    untimed = replay(data)
    assert untimed.problem is None
    assert lines(untimed) == lines(replay(data))
    for record in first.records + untimed.records:
        assert isinstance(record["type"], str)
        assert isinstance(record["call_id"], str)
        assert isinstance(record["at"], float)
        assert json.loads(to_json(record)) == record
    times = [r["at"] for r in first.records]
    assert times == sorted(times)


def test_b_queue_answered_gives_the_call_in_order() -> None:
    result = replay(*recording("b_queue_answered"))
    assert result.problem is None
    assert {r["call_id"] for r in result.records} == {B_CALL}
    assert types(result) == [
        "CallStarted",
        "CallQueued",
        "AgentRinging",
        "CallAnswered",
        "CallEnded",
    ]
    started, queued, _ringing, answered, ended = result.records
    assert started["caller_number"] == "5551001"
    assert queued["queue"] == "support"
    assert answered["device"] == ALICE_DEVICE
    assert ended["ended_by"] == "agent"
    # Times are the timeline's: ms since connect, as seconds. The agent talks 5 s.
    assert (started["at"], queued["at"], answered["at"]) == (0.014, 0.016, 0.02)
    assert 5.4 < ended["at"] < 5.6


def test_without_a_timeline_everything_is_at_zero() -> None:
    data, _timeline = recording("b_queue_answered")
    result = replay(data)
    assert types(result) == types(replay(*recording("b_queue_answered")))
    assert {r["at"] for r in result.records} == {0.0}


def test_without_a_timeline_timestamp_headers_give_the_time() -> None:
    def event(stamp: str, *lines: str) -> bytes:
        return ("\r\n".join([*lines, f"Timestamp: {stamp}"]) + "\r\n\r\n").encode()

    channel = ["Channel: PJSIP/trunk-00000001", "Uniqueid: 100.1", "Linkedid: 100.1"]
    data = (
        b"Asterisk Call Manager/11.0.0\r\n"
        + event("1700000010.250000", "Event: Newchannel", *channel, "Context: inbound")
        + event("1700000012.750000", "Event: QueueCallerJoin", *channel, "Queue: support")
        # Stamps that go back do not turn the clock back.
        + event("1700000011.000000", "Event: Hangup", *channel, "Cause: 16")
    )
    result = replay(data)
    assert [(r["type"], r["at"]) for r in result.records] == [
        ("CallStarted", 0.0),
        ("CallQueued", 2.5),
        ("CallEnded", 2.5),
    ]


def test_a_truncated_recording_gives_what_came_before_the_cut() -> None:
    data, timeline = recording("b_queue_answered")
    whole = replay(data, timeline)
    cut = data.index(b"Event: AgentConnect") + 40  # inside the message that answers
    for cut_timeline in (timeline, None):
        result = replay(data[:cut], cut_timeline)
        assert result.problem is not None
        assert "truncated" in result.problem
        assert "middle of a message" in result.problem
        assert types(result) == ["CallStarted", "CallQueued", "AgentRinging"]
    assert lines(replay(data[:cut], timeline)) == lines(whole)[:3]


def test_a_cut_on_a_message_boundary_is_caught_by_the_timeline() -> None:
    data, timeline = recording("b_queue_answered")
    boundary = data.index(b"Response: Goodbye")
    assert replay(data[:boundary]).problem is None  # nothing says anything is missing
    result = replay(data[:boundary], timeline)
    assert result.problem is not None
    assert f"ends at byte {boundary}" in result.problem
    assert types(result) == types(replay(data, timeline))


def test_a_cut_in_the_banner_is_truncated_and_no_banner_is_not_ami() -> None:
    assert replay(b"Asterisk Call Manager/11").problem == (
        "truncated: the file ends inside the banner line"
    )
    for data in (b"", b"Action: Login\r\n\r\n", b"Response: Success\r\n\r\n"):
        with pytest.raises(ReplayError, match="not an AMI recording"):
            replay(data)
    lf_only = recording("b_queue_answered")[0].replace(b"\r\n", b"\n")
    with pytest.raises(ReplayError, match="lines end in LF, not CRLF"):
        replay(lf_only)


def test_with_a_router_the_offer_is_accepted_and_the_wrap_up_ends() -> None:
    alice = ReplayAgent(1, "alice", {"support": 5}, ALICE_DEVICE)
    bob = ReplayAgent(2, "bob", {"support": 5}, "PJSIP/1002")
    result = replay(*recording("b_queue_answered"), routing(bob, alice))
    assert types(result) == [
        "CallStarted",
        "CallQueued",
        "Offer",
        "AgentRinging",
        "CallAnswered",
        "CallEnded",
        "WrapUpEnded",
    ]
    offer = result.records[2]
    assert offer["call_id"] == B_CALL
    # Both idle since 0 s: the tie goes to the lower user id, whoever is listed first.
    assert (offer["agent_id"], offer["agent"], offer["device"]) == (1, "alice", ALICE_DEVICE)
    assert offer["at"] == result.records[1]["at"]
    assert offer["expires_at"] == pytest.approx(offer["at"] + 20)
    assert offer["explanation"]["skills_matched"] == {"support": 5}
    ended, wrap_up = result.records[-2:]
    assert (wrap_up["call_id"], wrap_up["agent"]) == (B_CALL, "alice")
    assert wrap_up["at"] == pytest.approx(ended["at"] + 0.5)
    assert result.notes == ["routing: 2 agents ready from 0 s (alice, bob); queues support"]


def test_with_a_router_an_answer_elsewhere_withdraws_the_offer() -> None:
    bob = ReplayAgent(2, "bob", {"support": 5}, "PJSIP/1002")
    result = replay(*recording("b_queue_answered"), routing(bob))
    withdrawn = [r for r in result.records if r["type"] == "OfferWithdrawn"]
    assert withdrawn == [
        {
            "type": "OfferWithdrawn",
            "call_id": B_CALL,
            "at": 0.02,
            "agent_id": 2,
            "agent": "bob",
            "reason": f"answered by {ALICE_DEVICE}",
        }
    ]
    # Nobody the router knows took the call: bob was never on it, so no wrap-up.
    assert "WrapUpEnded" not in types(result)


def sales_routing(timeout: float, *agents: ReplayAgent) -> RoutingSetup:
    sales = QueueDef("sales", ("voice",), {"sales": 1}, offer_timeout_seconds=timeout)
    return RoutingSetup((sales,), replace(POLICY, not_ready_after_missed=0), agents)


def routed(result: Replay) -> list[tuple[str, str, float]]:
    return [(r["type"], r["agent"], r["at"]) for r in result.records if "agent" in r]


def test_with_a_router_an_unanswered_offer_expires_on_the_virtual_clock() -> None:
    # c_queue_abandon: a sales caller waits 6.5 s, then hangs up.
    dave = ReplayAgent(7, "dave", {"sales": 3}, "PJSIP/2001")
    result = replay(*recording("c_queue_abandon"), sales_routing(2, dave))
    queued = next(r["at"] for r in result.records if r["type"] == "CallQueued")
    # Expired at its own time, between two recorded messages; a missed contact is not
    # offered to the same agent again.
    assert routed(result) == [
        ("Offer", "dave", queued),
        ("OfferExpired", "dave", round(queued + 2, 6)),
    ]


def test_with_a_router_a_failed_ring_moves_the_offer_on() -> None:
    # Asterisk rings Dave's device for 4 s without an answer (AgentRingNoAnswer).
    dave = ReplayAgent(7, "dave", {"sales": 3}, "Local/agent2001@agents-noanswer")
    erin = ReplayAgent(8, "erin", {"sales": 3}, "PJSIP/2002")
    result = replay(*recording("c_queue_abandon"), sales_routing(20, dave, erin))
    not_answered = next(r["at"] for r in result.records if r["type"] == "AgentNotAnswered")
    ended = next(r["at"] for r in result.records if r["type"] == "CallEnded")
    assert routed(result)[1:] == [
        ("OfferExpired", "dave", not_answered),
        ("Offer", "erin", not_answered),
        ("OfferWithdrawn", "erin", ended),
    ]
    assert result.records[-1]["reason"] == "the call ended"  # right after CallEnded


def test_with_a_router_a_caller_waiting_in_the_holding_context_is_queued() -> None:
    def event(name: str, uniqueid: str, *lines: str) -> bytes:
        head = [f"Event: {name}", f"Channel: PJSIP/trunk-{uniqueid}", f"Uniqueid: {uniqueid}"]
        return ("\r\n".join([*head, f"Linkedid: {uniqueid}", *lines]) + "\r\n\r\n").encode()

    tagged = "ChanVariable: CTI_CALLID=x"
    holding = ("Context: cc-holding", tagged, "ChanVariable: CTI_QUEUE=support")
    data = b"Asterisk Call Manager/11.0.0\r\n" + b"".join(
        [
            event("Newchannel", "1.1", "Context: cc-inbound", tagged),
            event("Newexten", "1.1", *holding),
            # The music-on-hold loop comes back to the context: queued once all the same.
            event("Newexten", "1.1", *holding),
            event("Newchannel", "2.1", "Context: cc-inbound", tagged),
            event("Newexten", "2.1", "Context: cc-holding", tagged, "ChanVariable: CTI_QUEUE="),
        ]
    )
    timeline = [Cut(float(i), end) for i, end in enumerate(_ends(data))]
    alice = ReplayAgent(1, "alice", {"support": 5}, ALICE_DEVICE)
    result = replay(data, timeline, routing(alice))
    assert [(r["type"], r["call_id"], r["at"]) for r in result.records] == [
        ("CallStarted", "1.1", 1.0),
        ("Offer", "1.1", 2.0),
        ("CallStarted", "2.1", 4.0),
    ]
    assert result.notes[1:] == [
        "call 2.1 waits in cc-holding with no configured queue in CTI_QUEUE (''): not routed"
    ]


def _ends(data: bytes) -> list[int]:
    """Where each line of the banner and each message of `data` ends."""
    ends, pos = [data.index(b"\r\n") + 2], 0
    while (pos := data.find(b"\r\n\r\n", pos)) >= 0:
        pos += 4
        ends.append(pos)
    return ends


def test_a_queue_that_is_not_configured_is_not_routed() -> None:
    alice = ReplayAgent(1, "alice", {"support": 5}, ALICE_DEVICE)
    result = replay(*recording("c_queue_abandon"), routing(alice))  # sales is not set up
    assert types(result) == types(replay(*recording("c_queue_abandon")))


def test_timeline_rows_and_their_place() -> None:
    text = "# t_ms\tdir\tfile_offset\tlength\tsummary\n0\trecv\t0\t30\tbanner\n10\tsend\t0\t96\tx\n"
    text += "12\trecv\t30\t87\tResponse\n13\teof\t117\t0\tclosed\n"
    assert parse_timeline(text) == [Cut(0.0, 30), Cut(0.012, 117)]
    with pytest.raises(ReplayError, match="line 1: t_ms, file_offset and length"):
        parse_timeline("soon\trecv\t0\t30\tbanner\n", "x.timeline.tsv")
    with pytest.raises(ReplayError, match="line 2: expected t_ms, dir"):
        parse_timeline("0\trecv\t0\t30\n0 recv 30 87\n")
    assert timeline_path(Path("d/b_x.ami.txt")) == Path("d/b_x.timeline.tsv")
    assert timeline_path(Path("d/capture.txt")) == Path("d/capture.timeline.tsv")
