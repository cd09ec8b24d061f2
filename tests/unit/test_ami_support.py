"""Helpers (no tests) shared by the AMI tracker tests: replay recorded traces through framing."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from adapters.ami.calls import TRACKED_EVENTS, CallTracker
from adapters.ami.events import DomainEvent
from adapters.ami.framing import AmiMessage, AmiParser

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-traces"


def trace_bytes(name: str) -> bytes:
    """The raw bytes Asterisk sent in scenario `name`."""
    return (TRACES / f"{name}.ami.txt").read_bytes()


def frame(
    data: bytes, chunks: list[int] | None = None, *, filtered: bool = True
) -> list[AmiMessage]:
    """Frame `data` fed in pieces of the given sizes (the rest in one piece)."""
    parser = AmiParser(TRACKED_EVENTS if filtered else None)
    out: list[AmiMessage] = []
    start = 0
    for size in chunks or []:
        out += parser.feed(data[start : start + size])
        start += size
    out += parser.feed(data[start:])
    return out


def replay(
    messages: list[AmiMessage], tracker: CallTracker | None = None
) -> tuple[list[DomainEvent], CallTracker]:
    """Feed the events to a tracker; `now` is the event's index (deterministic)."""
    tracker = tracker or CallTracker()
    events: list[DomainEvent] = []
    for index, message in enumerate(messages):
        if message.event is not None:
            events += tracker.feed_message(message, float(index))
    return events, tracker


def summary(events: list[DomainEvent]) -> list[tuple[str, dict[str, object]]]:
    """Events as (type, fields without `at` and `call_id`), for readable expectations."""
    out = []
    for event in events:
        fields = asdict(event)
        del fields["at"], fields["call_id"]
        out.append((type(event).__name__, fields))
    return out


def kinds(events: list[DomainEvent]) -> list[str]:
    """Just the event type names."""
    return [type(event).__name__ for event in events]
