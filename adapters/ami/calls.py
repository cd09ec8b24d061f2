"""The call tracker: AMI events in wire order -> domain events. Pure: no I/O, no clock.

Calls are keyed by Linkedid, the Uniqueid of the caller's channel, which Asterisk
copies to every channel the call creates (queue and Dial legs) and to a channel
bridged with it later (an agent leg originated by the CTI). A call starts when a
channel enters one of the inbound contexts, or carries the dialplan's tag variable
(`channelvars = CTI_CALLID` in manager.conf), whichever comes first.

Orderings seen on a real Asterisk 22 that this relies on being *free* to vary:
QueueCallerLeave comes before AgentConnect; QueueCallerAbandon before
QueueCallerLeave; OriginateResponse after the channel's first events (even after
QueueCallerJoin); AgentComplete anywhere among the agent leg's hangup events, or
after the caller is gone. Bad input never raises: it is counted in `report`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from adapters.ami.events import (
    AgentNotAnswered,
    AgentRinging,
    CallAnswered,
    CallEnded,
    CallHeld,
    CallQueued,
    CallStarted,
    CallTransferred,
    CallUnheld,
    DomainEvent,
    IvrEntered,
    IvrLeft,
)
from adapters.ami.framing import AmiMessage
from adapters.ami.resync import resync
from adapters.ami.state import Call, Channel, caller_id, device_of, to_int
from crm_store.phones import bounded_caller_id

log = logging.getLogger(__name__)

# The events the tracker reads; give them to AmiParser(wanted_events=...) so the rest
# (VarSet, CEL, Cdr, RTCP, DeviceStateChange, ...) is skipped before decoding.
TRACKED_EVENTS = frozenset(
    {
        "Newchannel",
        "NewCallerid",
        "Newexten",
        "Rename",
        "Hangup",
        "AGIExecStart",
        "AsyncAGIStart",
        "AsyncAGIEnd",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "AgentCalled",
        "AgentRingNoAnswer",
        "AgentConnect",
        "AgentComplete",
        "DialBegin",
        "DialEnd",
        "BridgeEnter",
        "BridgeLeave",
        "Hold",
        "Unhold",
        "BlindTransfer",
        "AttendedTransfer",
        "OriginateResponse",
        # The contrib dialplan's CcRingFailed (a Dial that never began) and the like.
        "UserEvent",
    }
)

# Channel variables, or the message that holds them (parsed on first use).
_Vars = Mapping[str, str] | AmiMessage
# How many ended call ids to remember, so stragglers about them do not restart them.
_ENDED_MEMORY = 10_000
_FAILED_DIAL = {"NOANSWER", "BUSY", "CANCEL", "CHANUNAVAIL", "CONGESTION", "DONTCALL"}
# Asterisk writes a channel's caller id fields (CallerIDName, ConnectedLineName, their
# Dest/LocalOne/... forms) through ast_escape_c: `"` `'` `?` `\` and C control
# characters come backslash-escaped; UTF-8 letters come as they are. OriginateResponse's
# copy is not escaped, but the tracker never reads a name from it.
_C_ESCAPE = re.compile(r"\\([abfnrtv\\'\"?])")
_C_UNESCAPED = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Dialplan facts the tracker needs; the defaults match contrib/asterisk samples."""

    # contrib/asterisk's inbound context, and the one of the test PBX the traces in
    # tests/fixtures/asterisk-traces were recorded on.
    inbound_contexts: frozenset[str] = frozenset({"cc-inbound", "inbound"})
    tag_variable: str = "CTI_CALLID"
    ivr_applications: frozenset[str] = frozenset({"AGI", "EAGI"})


@dataclass(frozen=True, slots=True)
class CallView:
    """What the shell needs to act on a live call (Redirect, Hangup, Bridge)."""

    call_id: str
    channel: str
    uniqueid: str
    stage: str
    queue: str | None
    agent_channel: str | None


def ami_text(value: str | None) -> str | None:
    """A caller id field of a channel event as text: unescaped, cleaned, None if empty.

    `<unknown>` (what Asterisk writes for an empty name or number), an empty value and
    control characters only give None (`crm_store.phones.bounded_caller_id`).
    """
    if value is None:
        return None
    text = _C_ESCAPE.sub(lambda m: _C_UNESCAPED.get(m[1], m[1]), value)
    return bounded_caller_id(text) if text not in ("<unknown>", "<none>") else None


class CallTracker:
    """Feed AMI events in wire order; get domain events back."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.report: Counter[str] = Counter()
        self._channels: dict[str, Channel] = {}
        self._calls: dict[str, Call] = {}
        self._bridges: dict[str, set[str]] = {}
        self._ended: dict[str, None] = {}  # insertion-ordered set, oldest first
        # ActionID of an Originate to an agent -> (call_id, device): set by the shell.
        self._originates: dict[str, tuple[str, str]] = {}
        self._handlers = {
            "Newexten": self._on_newexten,
            "Hangup": self._on_hangup,
            "AGIExecStart": self._on_agi,
            "AsyncAGIStart": self._on_agi,
            "AsyncAGIEnd": self._on_async_agi_end,
            "QueueCallerJoin": self._on_queue_join,
            "QueueCallerAbandon": self._on_queue_abandon,
            "AgentCalled": self._on_agent_called,
            "AgentRingNoAnswer": self._on_ring_no_answer,
            "AgentConnect": self._on_agent_connect,
            "AgentComplete": self._on_agent_complete,
            "DialBegin": self._on_dial_begin,
            "DialEnd": self._on_dial_end,
            "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave,
            "Hold": self._on_hold,
            "Unhold": self._on_unhold,
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "OriginateResponse": self._on_originate_response,
        }

    # --- public API -------------------------------------------------------------

    def feed(
        self, event: Mapping[str, str], now: float, chan_vars: Mapping[str, str] | None = None
    ) -> list[DomainEvent]:
        """Domain events caused by one AMI event (a dict of its headers)."""
        out: list[DomainEvent] = []
        try:
            self._feed(event, now, {} if chan_vars is None else chan_vars, out)
        except Exception:
            # Safety net: a tracker bug must not stop the event stream. Counted so
            # tests (which assert it stays zero) and /status can see it.
            self.report["internal_error"] += 1
            log.exception("call tracker failed on %r", event.get("Event"))
        return out

    def feed_message(self, message: AmiMessage, now: float) -> list[DomainEvent]:
        """`feed` for a framed message (keeps its channel variables)."""
        out: list[DomainEvent] = []
        try:
            # The message itself, not its chan_vars: they are parsed only if needed.
            self._feed(message.headers, now, message, out)
        except Exception:
            self.report["internal_error"] += 1
            log.exception("call tracker failed on %r", message.event)
        return out

    def expect_originate(self, action_id: str, call_id: str, device: str) -> None:
        """Say that the Originate with `action_id` rings `device` for `call_id`."""
        self._originates[action_id] = (call_id, device)
        if len(self._originates) > _ENDED_MEMORY:
            # An OriginateResponse that never came (timeout, lost link): forget the oldest.
            del self._originates[next(iter(self._originates))]

    def resync(
        self,
        channels: Iterable[AmiMessage | Mapping[str, str]],
        now: float,
        queue_entries: Iterable[AmiMessage | Mapping[str, str]] = (),
    ) -> list[DomainEvent]:
        """Rebuild state from CoreShowChannel (and QueueEntry) items after a reconnect.

        Tracked calls that are gone end (`resynced=True`); calls found that we did not
        know start; what happened meanwhile (queued, answered) is reported once.
        """
        out: list[DomainEvent] = []
        try:
            resync(self, channels, queue_entries, now, out)
        except Exception:
            self.report["internal_error"] += 1
            log.exception("call tracker resync failed")
        return out

    def calls(self) -> dict[str, CallView]:
        """The live calls, by call id."""
        views = {}
        for call in self._calls.values():
            agent = self._channels.get(call.answered_leg or "")
            views[call.call_id] = CallView(
                call.call_id,
                call.channel,
                call.uniqueid,
                call.stage,
                call.queue,
                agent.name if agent else None,
            )
        return views

    # --- dispatch -------------------------------------------------------------------

    def _feed(
        self,
        event: Mapping[str, str],
        now: float,
        chan_vars: _Vars,
        out: list[DomainEvent],
    ) -> None:
        name = event.get("Event")
        if name is None:
            self.report["not_an_event"] += 1
            return
        channel = self._touch(event, name, chan_vars, now, out)
        handler = self._handlers.get(name)
        if handler is not None:
            handler(event, channel, now, out)

    def _touch(
        self,
        event: Mapping[str, str],
        name: str,
        chan_vars: _Vars,
        now: float,
        out: list[DomainEvent],
    ) -> Channel | None:
        """The event's channel, created if new, updated, and joined to its call."""
        uid = event.get("Uniqueid")
        if not uid or uid == "none" or name == "OriginateResponse":
            # "none": a global VarSet. OriginateResponse describes the channel as
            # originated, without Linkedid.
            return None
        channel = self._channels.get(uid)
        if channel is None:
            if name == "Hangup":
                self.report["hangup_of_unknown_channel"] += 1
                return None
            if name != "Newchannel":
                self.report["unknown_channel"] += 1
            channel = Channel(uid, event.get("Channel", ""), event.get("Linkedid") or uid)
            self._channels[uid] = channel
        channel.update(event)
        self._attach(channel, chan_vars, now, out)
        return channel

    def _attach(
        self, channel: Channel, chan_vars: _Vars, now: float, out: list[DomainEvent]
    ) -> None:
        if channel.call_id is not None and channel.call_id in self._calls:
            return
        if channel.linkedid in self._calls:
            # A leg of a known call, or a channel bridged into it (Linkedid follows).
            channel.call_id = channel.linkedid
            return
        if channel.agent_for is not None:
            return
        if channel.linkedid in self._ended:
            self.report["event_after_call_ended"] += 1
            return
        if isinstance(chan_vars, AmiMessage):
            chan_vars = chan_vars.chan_vars
        tag = chan_vars.get(self.config.tag_variable)
        if tag or channel.context in self.config.inbound_contexts:
            # A click-to-dial from a `Local/` device: the `;2` half (the phone) shows the
            # tag first (the `;1` half gets it by a VarSet, which is not tracked), but the
            # call is the `;1` half's, the channel Originate named (ChannelId) that dials
            # out: the tag is its Uniqueid, and the `;2` half's Linkedid. (A tag the
            # dialplan set on a `;2` half names no channel: that half is the call.)
            origin = self._channels.get(channel.linkedid) if tag == channel.linkedid else None
            if origin is not None and origin is not channel and origin.call_id is None:
                self._start(origin, now, out)
                channel.call_id = origin.call_id
            else:
                self._start(channel, now, out)

    def _start(
        self, channel: Channel, now: float, out: list[DomainEvent], *, resynced: bool = False
    ) -> Call:
        inbound = channel.context in self.config.inbound_contexts
        call = Call(channel.linkedid, channel.uniqueid, channel.name)
        self._calls[call.call_id] = call
        channel.call_id = call.call_id
        number, name = (ami_text(value) for value in caller_id(channel))
        out.append(
            CallStarted(
                call_id=call.call_id,
                at=now,
                channel=channel.name,
                uniqueid=channel.uniqueid,
                caller_number=number,
                caller_name=name,
                dnis=channel.exten if inbound or not resynced else None,
                resynced=resynced,
            )
        )
        return call

    def _call_of(self, channel: Channel | None) -> Call | None:
        if channel is None or channel.call_id is None:
            return None
        return self._calls.get(channel.call_id)

    def _primary_call(self, channel: Channel | None) -> Call | None:
        call = self._call_of(channel)
        if call is None or channel is None or call.uniqueid != channel.uniqueid:
            return None
        return call

    def _caller_call(self, channel: Channel, now: float, out: list[DomainEvent]) -> Call | None:
        """The call this caller-side queue event is about; starts one if needed."""
        call = self._primary_call(channel)
        if call is not None:
            return call
        existing = self._call_of(channel)
        if existing is not None:
            # A leg became the caller (e.g. a transfer into a queue): follow it.
            existing.uniqueid, existing.channel = channel.uniqueid, channel.name
            return existing
        if channel.linkedid in self._ended or channel.agent_for is not None:
            self.report["event_after_call_ended"] += 1
            return None
        self.report["implicit_call_start"] += 1
        return self._start(channel, now, out)

    # --- channel life ---------------------------------------------------------------

    def _on_newexten(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        call = self._primary_call(ch)
        if call is None:
            return
        app = event.get("Application", "")
        in_ivr_app = app in self.config.ivr_applications
        if in_ivr_app and not call.in_ivr:
            call.in_ivr, call.stage = True, "ivr"
            out.append(
                IvrEntered(
                    call_id=call.call_id,
                    at=now,
                    application=app,
                    script=event.get("AppData", ""),
                )
            )
        elif call.in_ivr and not in_ivr_app:
            call.in_ivr, call.stage = False, "waiting"
            out.append(IvrLeft(call_id=call.call_id, at=now, reason="returned"))

    def _on_agi(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        # Seen when Newexten was missed (a resync in the middle of the IVR).
        call = self._primary_call(ch)
        if call is not None and not call.in_ivr:
            call.in_ivr, call.stage = True, "ivr"
            script = ch.app_data if ch is not None and ch.app == "AGI" else ""
            out.append(
                IvrEntered(
                    call_id=call.call_id,
                    at=now,
                    application=event.get("Event", "AGI"),
                    script=script,
                )
            )

    def _on_async_agi_end(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        call = self._primary_call(ch)
        if call is not None and call.in_ivr:
            call.in_ivr, call.stage = False, "waiting"
            out.append(IvrLeft(call_id=call.call_id, at=now, reason="returned"))

    def _on_hangup(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        if ch is None:
            return
        self._channels.pop(ch.uniqueid, None)
        self._leave_bridge(ch)
        call = self._call_of(ch)
        if call is None:
            return
        if call.uniqueid != ch.uniqueid:
            if ch.uniqueid in call.ringing:
                self._not_answered(call, ch.uniqueid, "hangup", now, out)
            return
        if call.in_ivr:
            out.append(IvrLeft(call_id=call.call_id, at=now, reason="hangup"))
        self._end(call, to_int(event.get("Cause")), event.get("Cause-txt", ""), now, out)

    def _end(
        self,
        call: Call,
        cause: int | None,
        cause_text: str,
        now: float,
        out: list[DomainEvent],
        *,
        resynced: bool = False,
    ) -> None:
        del self._calls[call.call_id]
        self._ended[call.call_id] = None
        if len(self._ended) > _ENDED_MEMORY:
            del self._ended[next(iter(self._ended))]
        never_answered = call.answered_leg is None and not call.was_answered
        abandoned = call.abandoned or (never_answered and call.stage in ("queued", "ringing"))
        out.append(
            CallEnded(
                call_id=call.call_id,
                at=now,
                cause=cause,
                cause_text=cause_text,
                stage=call.stage,
                abandoned=abandoned,
                ended_by=call.ended_by,
                resynced=resynced,
            )
        )

    # --- queue ----------------------------------------------------------------------

    def _on_queue_join(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        if ch is None:
            self.report["queue_event_without_channel"] += 1
            return
        call = self._caller_call(ch, now, out)
        if call is None:
            return
        call.queue, call.stage, call.abandoned = event.get("Queue") or None, "queued", False
        out.append(
            CallQueued(
                call_id=call.call_id,
                at=now,
                queue=event.get("Queue", ""),
                position=to_int(event.get("Position")),
            )
        )

    def _on_queue_abandon(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        call = self._primary_call(ch)
        if call is not None:
            call.abandoned = True

    def _on_agent_called(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        call = self._primary_call(ch)
        leg = event.get("DestUniqueid", "")
        if call is None or not leg:
            self.report["agent_called_unmatched"] += 1
            return
        self._ringing(
            call,
            leg,
            event.get("Interface") or device_of(event.get("DestChannel", "")),
            event.get("DestChannel", ""),
            event.get("MemberName") or None,
            event.get("Queue") or None,
            now,
            out,
        )

    def _on_ring_no_answer(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        call = self._call_of(ch)
        if call is not None:
            self._not_answered(call, event.get("DestUniqueid", ""), "no-answer", now, out)

    def _on_agent_connect(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        call = self._primary_call(ch)
        leg = event.get("DestUniqueid", "")
        if call is None or not leg:
            self.report["agent_connect_unmatched"] += 1
            return
        self._answered(
            call,
            leg,
            event.get("Interface") or device_of(event.get("DestChannel", "")),
            event.get("DestChannel", ""),
            event.get("MemberName") or None,
            event.get("Queue") or call.queue,
            now,
            out,
        )

    def _on_agent_complete(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        call = self._call_of(ch)
        if call is None:
            # Its place among the hangups varies; after the caller is gone it is news
            # to nobody.
            self.report["agent_complete_after_end"] += 1
            return
        call.ended_by = event.get("Reason") or None

    # --- dial and bridge ------------------------------------------------------------

    def _on_dial_begin(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        # Without a dialer channel this is an Originate: only `expect_originate` can
        # say which call it belongs to (see OriginateResponse).
        call = self._primary_call(ch)
        leg = event.get("DestUniqueid", "")
        if call is None or not leg:
            return
        dest = event.get("DestChannel", "")
        self._ringing(call, leg, device_of(dest), dest, None, None, now, out)

    def _on_dial_end(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        call = self._call_of(ch)
        status = event.get("DialStatus", "")
        if call is not None and status in _FAILED_DIAL:
            reason = "no-answer" if status == "NOANSWER" else status.lower()
            self._not_answered(call, event.get("DestUniqueid", ""), reason, now, out)

    def _on_bridge_enter(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        bridge = event.get("BridgeUniqueid", "")
        if ch is None or not bridge:
            return
        self._leave_bridge(ch)
        ch.bridge = bridge
        members = self._bridges.setdefault(bridge, set())
        members.add(ch.uniqueid)
        self._check_bridge(members, now, out)

    def _check_bridge(self, members: set[str], now: float, out: list[DomainEvent]) -> None:
        """A caller sharing a bridge with another channel is answered by it."""
        for uid in members:
            call = self._primary_call(self._channels.get(uid))
            if call is None:
                continue
            others = sorted(m for m in members if m != uid)
            if not others or call.answered_leg in others:
                continue
            other = self._channels[others[0]]
            other.call_id = call.call_id
            self._answered(
                call, other.uniqueid, device_of(other.name), other.name, None, None, now, out
            )

    def _on_bridge_leave(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        if ch is not None:
            self._leave_bridge(ch)

    def _leave_bridge(self, ch: Channel) -> None:
        if ch.bridge is None:
            return
        members = self._bridges.get(ch.bridge)
        if members is not None:
            members.discard(ch.uniqueid)
            if not members:
                del self._bridges[ch.bridge]
        ch.bridge = None

    def _on_hold(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        call = self._call_of(ch)
        if call is not None and not call.held:
            call.held = True
            out.append(CallHeld(call_id=call.call_id, at=now))

    def _on_unhold(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        call = self._call_of(ch)
        if call is not None and call.held:
            call.held = False
            out.append(CallUnheld(call_id=call.call_id, at=now))

    def _on_blind_transfer(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        call = self._find_call(event, "Transferee", "Transferer")
        if call is None:
            self.report["transfer_unmatched"] += 1
            return
        target = f"{event.get('Extension', '')}@{event.get('Context', '')}"
        self._transferred(call, target, "blind", now, out)

    def _on_attended_transfer(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        call = self._find_call(event, "Transferee", "OrigTransferer", "SecondTransferer")
        if call is None:
            self.report["transfer_unmatched"] += 1
            return
        target = (
            event.get("TransferTargetChannel")
            or event.get("DestExten")
            or event.get("DestApp")
            or event.get("DestType", "")
        )
        self._transferred(call, target, "attended", now, out)

    def _on_originate_response(
        self, event: Mapping[str, str], ch: Channel | None, now: float, out: list[DomainEvent]
    ) -> None:
        expected = self._originates.pop(event.get("ActionID", ""), None)
        if expected is None:
            return
        call = self._calls.get(expected[0])
        if call is None:
            self.report["originate_for_ended_call"] += 1
            return
        leg, name, device = event.get("Uniqueid", ""), event.get("Channel", ""), expected[1]
        if event.get("Response") != "Success" or not leg:
            reason = f"failed (reason {event.get('Reason', '?')})"
            out.append(
                AgentNotAnswered(
                    call_id=call.call_id, at=now, device=device, agent_channel=name, reason=reason
                )
            )
            return
        channel = self._channels.get(leg)
        if channel is not None:
            channel.agent_for = channel.call_id = call.call_id
        if call.answered_leg != leg:
            self._ringing(call, leg, device, name, None, None, now, out)

    # --- shared steps ---------------------------------------------------------------

    def _find_call(self, event: Mapping[str, str], *prefixes: str) -> Call | None:
        for prefix in prefixes:
            for field in ("Uniqueid", "Linkedid"):
                value = event.get(prefix + field)
                if not value:
                    continue
                call = self._calls.get(value) or self._call_of(self._channels.get(value))
                if call is not None:
                    return call
        return None

    def _ringing(
        self,
        call: Call,
        leg: str,
        device: str,
        agent_channel: str,
        member: str | None,
        queue: str | None,
        now: float,
        out: list[DomainEvent],
    ) -> None:
        if leg in call.ringing or leg in call.finished_legs or leg == call.answered_leg:
            return
        call.ringing[leg] = (device, agent_channel)
        if call.answered_leg is None:
            call.stage = "ringing"
        out.append(
            AgentRinging(
                call_id=call.call_id,
                at=now,
                device=device,
                agent_channel=agent_channel,
                member_name=member,
                queue=queue,
            )
        )

    def _not_answered(
        self, call: Call, leg: str, reason: str, now: float, out: list[DomainEvent]
    ) -> None:
        rung = call.ringing.pop(leg, None)
        if rung is None:
            return
        call.finished_legs.add(leg)
        if not call.ringing and call.stage == "ringing":
            call.stage = "queued" if call.queue else "waiting"
        out.append(
            AgentNotAnswered(
                call_id=call.call_id, at=now, device=rung[0], agent_channel=rung[1], reason=reason
            )
        )

    def _answered(
        self,
        call: Call,
        leg: str,
        device: str,
        agent_channel: str,
        member: str | None,
        queue: str | None,
        now: float,
        out: list[DomainEvent],
        *,
        resynced: bool = False,
    ) -> None:
        if call.answered_leg == leg:
            return
        rung = call.ringing.pop(leg, None)
        if rung is not None:
            device = rung[0] if rung[0] else device
        call.finished_legs.add(leg)
        call.answered_leg, call.was_answered, call.stage = leg, True, "answered"
        out.append(
            CallAnswered(
                call_id=call.call_id,
                at=now,
                device=device,
                agent_channel=agent_channel,
                member_name=member,
                queue=queue,
                resynced=resynced,
            )
        )

    def _transferred(
        self, call: Call, target: str, kind: str, now: float, out: list[DomainEvent]
    ) -> None:
        call.answered_leg, call.stage = None, "transferred"
        out.append(CallTransferred(call_id=call.call_id, at=now, target=target, kind=kind))
