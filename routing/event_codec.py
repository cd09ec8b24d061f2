"""Bus events on the wire: a stable type name and schema version per event class, and a
pure codec between an event and a JSON-safe dict.

The daemon's bus is in memory today; this is the seam for a broker between daemons
later. The wire form is `{"type": "contact.queued", "version": 1, "data": {...}}`:
datetimes as ISO 8601 text, tuples as lists, nested dataclasses as objects, enums as
their values. Decoding is driven by the event class's type hints and is strict: an
unknown type or version, a missing or unknown field, or a value of the wrong type is an
`EventCodecError` naming what is wrong, never a half-built event.

An event class declares its name and version where it is defined:

    @bus_event("contact.queued", version=1)
    @dataclass(frozen=True)
    class ContactQueued: ...

A change to an event's fields that an older reader cannot take gets a new version.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from crm_store.errors import ContactCenterError

T = TypeVar("T")

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
WIRE_KEYS = frozenset({"type", "version", "data"})


class EventCodecError(ContactCenterError):
    """An event cannot be written to or read from the wire (type, version or shape)."""

    error_id = "bus.bad_event"


@dataclass(frozen=True, slots=True)
class EventType:
    """A registered bus event: its stable name, its schema version and its class."""

    name: str
    version: int
    cls: type


class EventCodec:
    """A registry of bus event classes and the codec between them and the wire form."""

    def __init__(self) -> None:
        self._by_name: dict[str, EventType] = {}
        self._by_class: dict[type, EventType] = {}
        self._hints: dict[type, dict[str, Any]] = {}

    def register(self, name: str, *, version: int = 1) -> Callable[[type[T]], type[T]]:
        """Class decorator: `cls` travels as `name` at schema `version`."""
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"event name {name!r}: expected dotted lower-case words")
        if type(version) is not int or version < 1:
            raise ValueError(f"event {name!r}: the version is a positive integer")

        def decorate(cls: type[T]) -> type[T]:
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
                raise TypeError(f"event {name!r}: {cls!r} is not a dataclass")
            if name in self._by_name:
                raise ValueError(f"event name {name!r} is taken by {self._by_name[name].cls}")
            if cls in self._by_class:
                raise ValueError(f"{cls.__qualname__} is already {self._by_class[cls].name!r}")
            entry = EventType(name, version, cls)
            self._by_name[name] = entry
            self._by_class[cls] = entry
            return cls

        return decorate

    def types(self) -> list[EventType]:
        """Every registered event type, by name."""
        return sorted(self._by_name.values(), key=lambda entry: entry.name)

    def type_of(self, cls: type) -> EventType | None:
        """The registration of `cls`, or None when it is not a bus event."""
        return self._by_class.get(cls)

    def to_wire(self, event: Any) -> dict[str, Any]:
        """`event` as a JSON-safe dict with its type name and version."""
        entry = self._by_class.get(type(event))
        if entry is None:
            raise EventCodecError(f"{type(event).__qualname__} is not a registered bus event")
        data = _encode_fields(event, entry.name)
        return {"type": entry.name, "version": entry.version, "data": data}

    def from_wire(self, wire: Mapping[str, Any]) -> Any:
        """The event `wire` describes; EventCodecError when it is not one this daemon reads."""
        if not isinstance(wire, Mapping):
            raise EventCodecError(f"an event on the wire is an object, not {_kind(wire)}")
        extra = sorted(str(key) for key in set(wire) - WIRE_KEYS)
        missing = sorted(WIRE_KEYS - set(wire))
        if extra or missing:
            raise EventCodecError(
                "an event on the wire has exactly type, version and data"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(extra)}" if extra else "")
            )
        name, version, data = wire["type"], wire["version"], wire["data"]
        entry = self._by_name.get(name) if isinstance(name, str) else None
        if entry is None:
            raise EventCodecError(f"unknown event type {str(name)[:80]!r}")
        if type(version) is not int or version != entry.version:
            raise EventCodecError(
                f"event {name!r} version {str(version)[:20]}: this daemon reads version "
                f"{entry.version}"
            )
        return self._decode_dataclass(entry.cls, data, name)

    def _type_hints(self, cls: type) -> dict[str, Any]:
        hints = self._hints.get(cls)
        if hints is None:
            hints = typing.get_type_hints(cls)
            self._hints[cls] = hints
        return hints

    def _decode_dataclass(self, cls: type, data: Any, where: str) -> Any:
        if not isinstance(data, dict):
            raise EventCodecError(f"{where}: expected an object, got {_kind(data)}")
        hints = self._type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(str(key) for key in set(data) - set(fields))
        if unknown:
            raise EventCodecError(f"{where}: unknown field {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for field_name, spec in fields.items():
            if field_name not in data:
                has_default = (
                    spec.default is not dataclasses.MISSING
                    or spec.default_factory is not dataclasses.MISSING
                )
                if has_default:
                    continue
                raise EventCodecError(f"{where}: missing field {field_name}")
            hint = hints[field_name]
            values[field_name] = self._decode(data[field_name], hint, f"{where}.{field_name}")
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise EventCodecError(f"{where}: {exc}") from None

    def _decode(self, value: Any, hint: Any, where: str) -> Any:
        if hint is Any:
            return value
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin is typing.Union or origin is types.UnionType:
            if value is None and type(None) in args:
                return None
            problems = []
            for option in args:
                if option is type(None):
                    continue
                try:
                    return self._decode(value, option, where)
                except EventCodecError as exc:
                    problems.append(str(exc))
            raise EventCodecError("; ".join(problems) or f"{where}: cannot be {_kind(value)}")
        if origin in (list, tuple, dict):
            return self._decode_container(value, origin, args, where)
        if hint is type(None):
            if value is None:
                return None
        elif hint is bool:
            if isinstance(value, bool):
                return value
        elif hint is int:
            if type(value) is int:
                return value
        elif hint is float:
            if type(value) in (int, float) and math.isfinite(value):
                return float(value)
        elif hint is str:
            if isinstance(value, str):
                return value
        elif hint is datetime or hint is date:
            if isinstance(value, str):
                try:
                    return hint.fromisoformat(value)
                except ValueError:
                    pass
        elif isinstance(hint, type) and issubclass(hint, enum.Enum):
            try:
                return hint(value)
            except ValueError:
                pass
        elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self._decode_dataclass(hint, value, where)
        else:
            raise EventCodecError(f"{where}: the codec cannot read a {hint!r}")
        raise EventCodecError(f"{where}: expected {_hint_name(hint)}, got {_kind(value)}")

    def _decode_container(self, value: Any, origin: Any, args: tuple[Any, ...], where: str) -> Any:
        if origin is dict:
            if not isinstance(value, dict):
                raise EventCodecError(f"{where}: expected an object, got {_kind(value)}")
            key_hint, value_hint = args or (str, Any)
            if key_hint is not str:
                raise EventCodecError(f"{where}: the codec reads text keys only")
            return {k: self._decode(v, value_hint, f"{where}.{k}") for k, v in value.items()}
        if not isinstance(value, list):
            raise EventCodecError(f"{where}: expected a list, got {_kind(value)}")
        if origin is list:
            item = args[0] if args else Any
            return [self._decode(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            item = args[0] if args else Any
            return tuple(self._decode(v, item, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise EventCodecError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(
            self._decode(v, h, f"{where}[{i}]")
            for i, (v, h) in enumerate(zip(value, args, strict=True))
        )


def _encode_fields(obj: Any, where: str) -> dict[str, Any]:
    return {
        f.name: _encode(getattr(obj, f.name), f"{where}.{f.name}")
        for f in dataclasses.fields(obj)
        if f.init
    }


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EventCodecError(f"{where}: {value} is not a JSON number")
        return value
    if isinstance(value, enum.Enum):
        return _encode(value.value, where)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise EventCodecError(f"{where}: only text keys travel")
        return {key: _encode(item, f"{where}.{key}") for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_fields(value, where)
    raise EventCodecError(f"{where}: a {type(value).__qualname__} does not travel")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


# The daemon's registry: every bus event class registers here where it is defined.
CODEC = EventCodec()
bus_event = CODEC.register


def to_wire(event: Any) -> dict[str, Any]:
    """`event` as a JSON-safe dict (`{"type", "version", "data"}`)."""
    return CODEC.to_wire(event)


def from_wire(wire: Mapping[str, Any]) -> Any:
    """The bus event a JSON-safe dict describes; EventCodecError when it is not one."""
    return CODEC.from_wire(wire)
