"""The simulated Asterisk's data: channels, bridges, effects, and how events are built.

Pure values shared by the model (adapters/simasterisk/model.py) and its Local channel
pairs (adapters/simasterisk/local_channels.py). Events are dicts in wire order; a repeated
header (`ChanVariable`) holds a list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Event = dict[str, str | list[str]]

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
CAUSE_TEXT = {
    0: "Unknown",
    16: "Normal Clearing",
    17: "User busy",
    19: "No user responding",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
    66: "Channel not implemented",
}
DIAL_STATUS = {17: "BUSY", 21: "BUSY", 34: "CONGESTION"}
# OriginateResponse `Reason`: the last control frame seen (AST_CONTROL_*).
REASON_FAILED, REASON_HANGUP, REASON_RING_TIMEOUT, REASON_ANSWERED, REASON_BUSY = 0, 1, 3, 4, 5
# HANGUPCAUSE of a Dial whose technology does not exist (AST_CAUSE_CHAN_NOT_IMPLEMENTED),
# and of a phone the dial code gave up on (AST_CAUSE_NO_ANSWER).
CAUSE_NOT_IMPLEMENTED, CAUSE_NO_ANSWER = 66, 19
UNKNOWN = "<unknown>"
# NewCallerid's extra field for a caller id set by Originate or Dial.
CALLING_PRES = {"CID-CallingPres": "0 (Presentation Allowed, Not Screened)"}
# ast_escape_c, which Asterisk applies to the caller id and connected line *names* of
# channel events (not to numbers, nor to OriginateResponse's copy).
_C_ESCAPES = str.maketrans(
    {
        "\a": "\\a",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\v": "\\v",
        "\\": "\\\\",
        "'": "\\'",
        '"': '\\"',
        "?": "\\?",
    }
)


def escape_c(text: str) -> str:
    """A name as a real Asterisk writes it in channel events (ast_escape_c)."""
    return text.translate(_C_ESCAPES)


AGI_THREAD_BASE = 140190360938176


@dataclass(frozen=True, slots=True)
class StartAgi:
    """Connect to the FastAGI server and send `env` (the agi_* lines, in order)."""

    uniqueid: str
    host: str
    port: int
    env: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class AgiHangup:
    """The caller hung up during the AGI: send `HANGUP`, then answer 511."""

    uniqueid: str


@dataclass(frozen=True, slots=True)
class Timer:
    """Call `Model.timer(uniqueid, token)` after `seconds` (ignored if stale)."""

    uniqueid: str
    seconds: float
    token: int


@dataclass(frozen=True, slots=True)
class Ring:
    """A device is being called: its phone decides (answer, busy, never)."""

    uniqueid: str
    device: str
    caller_number: str
    context: str = ""  # where the Dial ran (an Originate has none)


@dataclass(frozen=True, slots=True)
class Connected:
    """A caller and a dialled leg were bridged (the phone answered)."""

    caller: str
    leg: str
    device: str


@dataclass(frozen=True, slots=True)
class Gone:
    """A channel is destroyed (its Hangup event was sent)."""

    uniqueid: str
    channel: str
    cause: int


Effect = StartAgi | AgiHangup | Timer | Ring | Connected | Gone


@dataclass(slots=True)
class Outcome:
    """What an operation caused: events to send, effects to carry out."""

    events: list[Event] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)

    def extend(self, other: Outcome) -> None:
        """Append another outcome's events and effects."""
        self.events.extend(other.events)
        self.effects.extend(other.effects)


@dataclass(slots=True)
class Originate:
    """An Originate in progress on its channel."""

    action_id: str | None
    context: str
    exten: str
    priority: int
    application: str
    data: str
    timeout: float
    respond: bool = True  # async: an OriginateResponse tells how it went
    channel_id: str | None = None  # the client's ChannelId
    caller_id: tuple[str, str] | None = None  # its CallerID: (number, name)


@dataclass(slots=True)
class Channel:
    """One Asterisk channel and the dialplan location it runs at."""

    name: str
    uniqueid: str
    linkedid: str
    tech: str
    device: str
    created: float
    state: int = 0
    cid_num: str = UNKNOWN
    cid_name: str = UNKNOWN
    conn_num: str = UNKNOWN
    conn_name: str = UNKNOWN
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    app: str = ""
    app_data: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    has_pbx: bool = True  # runs dialplan (a Dial leg does not until redirected)
    bridge: str | None = None
    dialing: str | None = None  # the leg this channel's Dial is ringing
    dialed_by: str | None = None  # the channel whose Dial created this leg
    originate: Originate | None = None
    agi_running: bool = False
    hangup_cause: int | None = None  # set: hung up during the AGI, destroyed after it
    gen: int = 0  # bumped whenever the channel leaves its application (stale timers)
    dnid: str = ""
    # HANGUPCAUSE: what the last failed Dial left, and what Hangup() without a cause uses.
    last_cause: int = 0
    # A Local channel's half (1: the one called, 2: the one running the dialplan) and
    # the Uniqueid of the other half while both live; 0 and None for other channels.
    half: int = 0
    partner: str | None = None


@dataclass(slots=True)
class Bridge:
    """A basic bridge: `dial` (made by Dial) or `action` (made by the Bridge action)."""

    uniqueid: str
    kind: str
    members: list[str] = field(default_factory=list)


def head(name: str, privilege: str = "call,all") -> Event:
    return {"Event": name, "Privilege": privilege}


def bridge_fields(bridge: Bridge) -> Event:
    return {
        "BridgeUniqueid": bridge.uniqueid,
        "BridgeType": "basic",
        "BridgeTechnology": "simple_bridge",
        "BridgeCreator": UNKNOWN,
        "BridgeName": UNKNOWN,
        "BridgeNumChannels": str(len(bridge.members)),
        "BridgeVideoSourceMode": "none",
    }


def cause_text(cause: int) -> str:
    return CAUSE_TEXT.get(cause, "Unknown")


def channel_base(device: str) -> str:
    """`PJSIP/1001` rings as `PJSIP/1001-…`; `PJSIP/555@trunk` as `PJSIP/trunk-…`."""
    tech, _, resource = device.partition("/")
    number, at, peer = resource.partition("@")
    return f"{tech}/{peer if at else number}"


def originate_response(
    action_id: str | None,
    response: str,
    channel: str,
    context: str,
    exten: str,
    application: str,
    data: str,
    reason: int,
    uniqueid: str,
    cid_num: str,
    cid_name: str,
    chanvars: dict[str, str],
) -> Event:
    event: Event = head("OriginateResponse")
    if action_id is not None:
        event["ActionID"] = action_id
    event["Response"] = response
    event["Channel"] = channel
    if application:
        event["Application"] = application
        event["Data"] = data
    else:
        event["Context"] = context
        event["Exten"] = exten
    event["Reason"] = str(reason)
    event["Uniqueid"] = uniqueid
    event["CallerIDNum"] = cid_num
    event["CallerIDName"] = cid_name
    if chanvars:
        event[f"ChanVariable({channel})"] = [f"{k}={v}" for k, v in chanvars.items()]
    return event
