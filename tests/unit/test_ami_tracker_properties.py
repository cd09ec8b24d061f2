"""Hypothesis: shuffled, garbled and truncated AMI input never makes the tracker raise."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.ami.calls import CallTracker
from adapters.ami.events import CallEnded, CallStarted, DomainEvent
from adapters.ami.framing import AmiMessage
from tests.unit.test_ami_support import frame, trace_bytes

SCENARIOS = [
    "b_queue_answered",
    "c_queue_abandon",
    "e1_hold_redirect_to_agent",
    "e2_originate_agent_then_bridge",
    "g_userevent_chanvars",
    "h2_fastagi_ivr_to_queue",
]
EVENTS = {name: [m for m in frame(trace_bytes(name)) if m.event] for name in SCENARIOS}
ALL = [m for name in SCENARIOS for m in EVENTS[name]]
KEYS = sorted({key for m in ALL for key in m.headers})
VALUES = sorted({value for m in ALL for value in m.headers.values()})


def check_consistent(tracker: CallTracker, events: list[DomainEvent]) -> None:
    """No tracker bug was hit, and every end follows exactly one start."""
    assert tracker.report["internal_error"] == 0
    started: set[str] = set()
    ended: set[str] = set()
    for event in events:
        if isinstance(event, CallStarted):
            assert event.call_id not in started or event.call_id in ended
            started.add(event.call_id)
            ended.discard(event.call_id)
        elif isinstance(event, CallEnded):
            assert event.call_id in started and event.call_id not in ended
            ended.add(event.call_id)
        else:
            assert event.call_id in started


def run(messages: list[AmiMessage], tracker: CallTracker) -> list[DomainEvent]:
    out: list[DomainEvent] = []
    for index, message in enumerate(messages):
        out += tracker.feed_message(message, float(index))
    return out


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(SCENARIOS), st.randoms(use_true_random=False))
def test_shuffled_events_never_raise_and_stay_consistent(name: str, rnd: object) -> None:
    messages = list(EVENTS[name])
    rnd.shuffle(messages)  # type: ignore[attr-defined]
    tracker = CallTracker()
    events = run(messages, tracker)
    events += tracker.resync([], now=1e6)
    check_consistent(tracker, events)
    assert tracker.calls() == {}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(KEYS) | st.text(max_size=8),
            st.sampled_from(VALUES) | st.text(max_size=12),
            max_size=12,
        ),
        max_size=60,
    )
)
def test_garbled_events_never_raise(garbage: list[dict[str, str]]) -> None:
    tracker = CallTracker()
    events: list[DomainEvent] = []
    for index, headers in enumerate(garbage):
        events += tracker.feed(headers, float(index), chan_vars={"CTI_CALLID": "x"})
    events += tracker.resync(garbage, now=1e6, queue_entries=garbage)
    check_consistent(tracker, events)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(SCENARIOS),
    st.randoms(use_true_random=False),
    st.integers(0, 200),
)
def test_events_with_fields_dropped_or_swapped_never_raise(name: str, rnd: object, n: int) -> None:
    messages = []
    for message in EVENTS[name]:
        headers = dict(message.headers)
        for _ in range(rnd.randint(0, 2)):  # type: ignore[attr-defined]
            key = rnd.choice(KEYS)  # type: ignore[attr-defined]
            if rnd.random() < 0.5:  # type: ignore[attr-defined]
                headers.pop(key, None)
            else:
                headers[key] = rnd.choice(VALUES)  # type: ignore[attr-defined]
        messages.append(AmiMessage(headers, chan_vars=dict(message.chan_vars)))
    tracker = CallTracker()
    events = run(messages[: n or None], tracker)
    events += tracker.resync([], now=1e6)
    check_consistent(tracker, events)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(SCENARIOS),
    st.integers(0, 100_000),
    st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)), max_size=20),
    st.lists(st.integers(1, 5000), max_size=30),
)
def test_truncated_and_corrupted_bytes_never_raise(
    name: str, cut: int, flips: list[tuple[int, int]], chunks: list[int]
) -> None:
    data = bytearray(trace_bytes(name)[:cut])
    for offset, value in flips:
        if data:
            data[offset % len(data)] = value
    tracker = CallTracker()
    events = run(frame(bytes(data), chunks), tracker)
    events += tracker.resync([], now=1e6)
    check_consistent(tracker, events)
