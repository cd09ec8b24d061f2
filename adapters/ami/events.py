"""What the call tracker reports: the life of a call on the PBX, in domain terms.

Past tense, frozen. `call_id` is the Asterisk Linkedid of the call (the Uniqueid of the
caller's channel); `at` is the `now` the tracker was given, never read from a clock,
so replaying a recording gives the same events.
Each has a stable type name and schema version (`routing.event_codec`); `CallEvent`
is only their common base.
"""

from __future__ import annotations

from dataclasses import dataclass

from routing.event_codec import bus_event


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent:
    """Common fields of every call event."""

    call_id: str
    at: float


@bus_event("call.started", version=1)
@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted(CallEvent):
    """A caller reached the PBX (or was found there by a resync)."""

    channel: str
    uniqueid: str
    caller_number: str | None
    caller_name: str | None
    dnis: str | None
    resynced: bool = False


@bus_event("call.ivr_entered", version=1)
@dataclass(frozen=True, slots=True, kw_only=True)
class IvrEntered(CallEvent):
    """The caller's channel started the IVR application (AGI)."""

    application: str
    script: str


@bus_event("call.ivr_left", version=1)
@dataclass(frozen=True, slots=True, kw_only=True)
class IvrLeft(CallEvent):
    """The IVR application ended: `returned` to the dialplan, or `hangup`."""

    reason: str


@bus_event("call.queued", version=1)
@dataclass(frozen=True, slots=True, kw_only=True)
class CallQueued(CallEvent):
    """The caller joined an Asterisk queue."""

    queue: str
    position: int | None
    resynced: bool = False


@bus_event("call.agent_ringing", version=1)
@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRinging(CallEvent):
    """An agent's device is being rung for this call."""

    device: str
    agent_channel: str
    member_name: str | None = None
    queue: str | None = None


@bus_event("call.agent_not_answered", version=1)
@dataclass(frozen=True, slots=True, kw_only=True)
class AgentNotAnswered(CallEvent):
    """A ringing agent leg ended unanswered: no-answer, busy, cancel, failed, ..."""

    device: str
    agent_channel: str
    reason: str


@bus_event("call.answered", version=1)
@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered(CallEvent):
    """The caller is connected to an agent."""

    device: str
    agent_channel: str
    member_name: str | None = None
    queue: str | None = None
    resynced: bool = False


@bus_event("call.held", version=1)
@dataclass(frozen=True, slots=True, kw_only=True)
class CallHeld(CallEvent):
    """The call was put on hold."""


@bus_event("call.unheld", version=1)
@dataclass(frozen=True, slots=True, kw_only=True)
class CallUnheld(CallEvent):
    """The call came back from hold."""


@bus_event("call.transferred", version=1)
@dataclass(frozen=True, slots=True, kw_only=True)
class CallTransferred(CallEvent):
    """The call was transferred (`blind` or `attended`) to `target`."""

    target: str
    kind: str


@bus_event("call.ended", version=1)
@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(CallEvent):
    """The caller's channel is gone.

    `cause` is the Q.850 hangup cause (None when a resync found the call gone);
    `stage` is where the call was (waiting, ivr, queued, ringing, answered);
    `ended_by` is queue's AgentComplete reason (agent, caller, transfer) when known.
    """

    cause: int | None
    cause_text: str
    stage: str
    abandoned: bool
    ended_by: str | None = None
    resynced: bool = False


DomainEvent = (
    CallStarted
    | IvrEntered
    | IvrLeft
    | CallQueued
    | AgentRinging
    | AgentNotAnswered
    | CallAnswered
    | CallHeld
    | CallUnheld
    | CallTransferred
    | CallEnded
)
