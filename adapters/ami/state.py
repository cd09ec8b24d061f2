"""The call tracker's working state: channels and calls, plus small field helpers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# Asterisk names a channel <tech>/<resource>-<8 hex digits>, and ;1/;2 for Local halves.
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-fA-F]+(;\d)?$")
_NO_VALUE = {"", "<unknown>", "<none>"}


@dataclass(slots=True)
class Channel:
    """One Asterisk channel as last described by an event."""

    uniqueid: str
    name: str
    linkedid: str
    context: str = ""
    exten: str = ""
    caller_number: str = ""
    caller_name: str = ""
    app: str = ""
    app_data: str = ""
    bridge: str | None = None
    call_id: str | None = None
    # Set for an agent leg the CTI originated: it must never start a call itself.
    agent_for: str | None = None

    def update(self, event: Mapping[str, str]) -> None:
        """Take the channel fields an event carries (events carry the full snapshot)."""
        get = event.get
        self.name = get("Channel") or self.name
        # Linkedid changes when a channel is bridged into another call (Bridge action).
        self.linkedid = get("Linkedid") or self.linkedid
        context = get("Context")
        if context is not None:
            self.context, self.exten = context, get("Exten", self.exten)
        if "CallerIDNum" in event:
            self.caller_number = get("CallerIDNum", "")
            self.caller_name = get("CallerIDName", self.caller_name)
        app = get("Application")
        if app is not None:
            self.app = app
            self.app_data = get("AppData") or get("ApplicationData") or ""


@dataclass(slots=True)
class Call:
    """One call, from its caller's channel appearing to its hangup."""

    call_id: str
    uniqueid: str
    channel: str
    stage: str = "waiting"
    queue: str | None = None
    in_ivr: bool = False
    held: bool = False
    abandoned: bool = False
    was_answered: bool = False
    answered_leg: str | None = None
    ended_by: str | None = None
    # Agent legs ringing now: leg uniqueid -> (device, channel name).
    ringing: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Legs already reported answered or not answered: later events about them are old news.
    finished_legs: set[str] = field(default_factory=set)


def caller_id(channel: Channel) -> tuple[str | None, str | None]:
    """The channel's caller number and name, None where Asterisk says <unknown>."""
    number = None if channel.caller_number in _NO_VALUE else channel.caller_number
    name = None if channel.caller_name in _NO_VALUE else channel.caller_name
    return number, name


def device_of(channel_name: str) -> str:
    """`Local/agent1001@agents-00000001;1` -> `Local/agent1001@agents` (the device)."""
    return _CHANNEL_SUFFIX.sub("", channel_name)


def to_int(value: str | None) -> int | None:
    """An integer header, or None when absent or not a number."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None
