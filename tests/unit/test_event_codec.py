"""Every bus event travels: a stable type name and version, and a JSON round trip that
gives back an equal event.

The event classes are found by walking the event modules, so a new event class that is
not registered (or does not survive the wire) fails here without anyone listing it.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import types
import typing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import ModuleType
from typing import Any

import pytest

import adapters.ami.events
import adapters.messaging.events
import routing.events
from crm_store.error_ids import status_of
from crm_store.errors import ContactCenterError
from routing.event_codec import (
    CODEC,
    NAME_PATTERN,
    EventCodec,
    EventCodecError,
    from_wire,
    to_wire,
)
from routing.events import ContactEnded, ContactQueued

# Every module that defines bus events; a new one is added here (the last test says so).
EVENT_MODULES: tuple[ModuleType, ...] = (
    routing.events,
    adapters.ami.events,
    adapters.messaging.events,
)


def _event_classes(module: ModuleType) -> list[type]:
    """The dataclasses defined in `module`, less the bases the others extend."""
    defined = [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if obj.__module__ == module.__name__ and dataclasses.is_dataclass(obj)
    ]
    bases = {base for cls in defined for base in cls.__mro__[1:]}
    return [cls for cls in defined if cls not in bases]


ALL_EVENTS = [cls for module in EVENT_MODULES for cls in _event_classes(module)]


def _sample(hint: Any, name: str, full: bool) -> Any:
    """A value of type `hint`; `full` fills optional parts (None otherwise)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        return _sample(options[0], name, full) if full or type(None) not in args else None
    if hint is Any:
        return {"digits": "12#", "tries": 2, "path": ["menu", 1], "none": None} if full else "x"
    if origin is dict:
        return {"billing": _sample(args[1], name, full), "support": _sample(args[1], name, full)}
    if origin is list:
        return [_sample(args[0], name, full), _sample(args[0], name, full)] if full else []
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return (_sample(args[0], name, full),) * 2
        return tuple(_sample(a, name, full) for a in args)
    if hint is bool:
        return full
    if hint is int:
        return 41 if full else -7
    if hint is float:
        return 1764612000.125 if full else 0.0
    if hint is str:
        return f'{name} é "quoted" \n' if full else ""
    if hint is datetime:
        return datetime(2026, 12, 1, 18, 30, 5, 123456, tzinfo=UTC)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _instance(hint, full)
    raise AssertionError(f"no sample for {hint!r} ({name}): teach the test, or the codec")


def _instance(cls: type, full: bool) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        has_default = f.default is not dataclasses.MISSING or (
            f.default_factory is not dataclasses.MISSING
        )
        if has_default and not full:
            continue
        kwargs[f.name] = _sample(hints[f.name], f.name, full)
    return cls(**kwargs)


def test_the_walk_finds_the_events() -> None:
    names = {cls.__name__ for cls in ALL_EVENTS}
    assert {"ContactQueued", "ContactEnded", "CallStarted", "CallEnded"} <= names
    assert "CallEvent" not in names  # the common base, never published itself


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda cls: cls.__name__)
def test_every_event_is_registered_with_a_name_and_version(cls: type) -> None:
    entry = CODEC.type_of(cls)
    assert entry is not None, f"{cls.__name__}: decorate it with @bus_event(name, version=1)"
    assert NAME_PATTERN.fullmatch(entry.name) and entry.version >= 1


@pytest.mark.parametrize("full", [True, False], ids=["every_field", "defaults"])
@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda cls: cls.__name__)
def test_every_event_round_trips_through_json(cls: type, full: bool) -> None:
    event = _instance(cls, full)
    wire = to_wire(event)
    text = json.dumps(wire, allow_nan=False)
    back = from_wire(json.loads(text))
    assert type(back) is cls
    assert back == event
    assert to_wire(back) == wire


def test_every_registered_event_is_in_an_event_module() -> None:
    # Registered somewhere else: add its module to EVENT_MODULES so the walk covers it.
    modules = {module.__name__ for module in EVENT_MODULES}
    strays = [e.cls.__qualname__ for e in CODEC.types() if e.cls.__module__ not in modules]
    assert not strays


def test_the_wire_form_is_plain_and_named() -> None:
    event = ContactQueued(
        12, "voice", "billing", 100.5, skills={"billing": 3}, ivr_path=["menu", "1"]
    )
    wire = to_wire(event)
    assert wire["type"] == "contact.queued" and wire["version"] == 1
    assert wire["data"]["skills"] == {"billing": 3}
    assert wire["data"]["enqueued_at"] is None
    assert to_wire(ContactEnded(3, 9.0)) == {
        "type": "contact.ended",
        "version": 1,
        "data": {"interaction_id": 3, "at": 9.0, "cause": "normal"},
    }


# A codec of its own, so these test-only classes stay off the daemon's registry.
LOCAL = EventCodec()


class Tier(enum.Enum):
    GOLD = "gold"
    SILVER = "silver"


@dataclass(frozen=True)
class Leg:
    device: str
    rung_at: datetime


@LOCAL.register("test.rich", version=2)
@dataclass(frozen=True)
class Rich:
    legs: tuple[Leg, ...]
    pair: tuple[str, int]
    when: datetime
    day: date
    tier: Tier
    first: Leg | None = None
    notes: list[str] = field(default_factory=list)


def test_datetimes_tuples_enums_and_nested_dataclasses_travel() -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    event = Rich(
        legs=(Leg("PJSIP/1001", at), Leg("PJSIP/1002", at)),
        pair=("a", 1),
        when=at,
        day=date(2026, 12, 1),
        tier=Tier.GOLD,
        first=Leg("PJSIP/1001", at),
    )
    wire = LOCAL.to_wire(event)
    assert wire["data"]["when"] == "2026-12-01T09:00:00+00:00"
    assert wire["data"]["legs"][0] == {"device": "PJSIP/1001", "rung_at": at.isoformat()}
    assert wire["data"]["pair"] == ["a", 1] and wire["data"]["tier"] == "gold"
    assert LOCAL.from_wire(json.loads(json.dumps(wire))) == event


def _queued_wire(**data: Any) -> dict[str, Any]:
    wire = to_wire(ContactQueued(1, "voice", "billing", 5.0))
    wire["data"].update(data)
    return wire


@pytest.mark.parametrize(
    ("wire", "says"),
    [
        ({"type": "contact.teleported", "version": 1, "data": {}}, "unknown event type"),
        ({**to_wire(ContactEnded(1, 2.0)), "version": 2}, "reads version 1"),
        ({**to_wire(ContactEnded(1, 2.0)), "version": "1"}, "reads version 1"),
        ({"type": "contact.ended", "version": 1}, "missing data"),
        ({**to_wire(ContactEnded(1, 2.0)), "sent_by": "b"}, "unknown sent_by"),
        ({"type": "contact.ended", "version": 1, "data": [1, 2]}, "expected an object"),
        ({"type": "contact.ended", "version": 1, "data": {"at": 2.0}}, "missing field"),
        (_queued_wire(mood="calm"), "unknown field mood"),
        (_queued_wire(interaction_id="1"), "interaction_id: expected int, got str"),
        (_queued_wire(interaction_id=True), "interaction_id: expected int, got bool"),
        (_queued_wire(at=None), "at: expected float, got null"),
        (_queued_wire(skills={"billing": "high"}), "skills.billing: expected int"),
        (_queued_wire(customer_id=1.5), "customer_id: expected int, got float"),
        ([1, 2], "is an object"),
    ],
)
def test_what_this_daemon_cannot_read_is_refused_clearly(wire: Any, says: str) -> None:
    with pytest.raises(EventCodecError, match=says) as caught:
        from_wire(wire)
    assert caught.value.error_id == "bus.bad_event"


def test_what_cannot_travel_is_refused_before_it_leaves() -> None:
    with pytest.raises(EventCodecError, match="not a registered bus event"):
        to_wire(Leg("PJSIP/1", datetime(2026, 1, 1, tzinfo=UTC)))
    with pytest.raises(EventCodecError, match="not a JSON number"):
        to_wire(ContactEnded(1, float("nan")))
    with pytest.raises(EventCodecError, match="does not travel"):
        to_wire(ContactQueued(1, "voice", "q", 1.0, ivr_inputs={"x": object()}))


def test_names_are_unique_and_well_formed() -> None:
    codec = EventCodec()
    codec.register("test.one")(Leg)
    with pytest.raises(ValueError, match="taken"):
        codec.register("test.one")(Rich)
    with pytest.raises(ValueError, match="already"):
        codec.register("test.two")(Leg)
    with pytest.raises(ValueError, match="dotted"):
        codec.register("Test One")
    with pytest.raises(ValueError, match="positive"):
        codec.register("test.three", version=0)
    with pytest.raises(TypeError, match="not a dataclass"):
        codec.register("test.four")(Tier)


def test_codec_errors_are_catalogued_contact_center_errors() -> None:
    assert issubclass(EventCodecError, ContactCenterError)
    assert status_of(EventCodecError.error_id) == 500
