"""The simulated Asterisk's core: channels, bridges and the dialplan, as a pure state machine.

Every operation (a call arriving, an AMI action, a phone answering, a timer) takes `now`
and returns an `Outcome`: the AMI events Asterisk would send, in its order and with its
fields and field order (copied from tests/fixtures/asterisk-traces), and the effects the
I/O shell must carry out (start a FastAGI session, ring a phone, arm a timer). Nothing
here awaits or reads a clock, so a test can drive a whole call with plain values.

Events are dicts in wire order; a repeated header (`ChanVariable`) holds a list.
Only the events the CTI tracker reads (and the ones around them that carry the same
channel snapshot, and a Local pair's LocalBridge) are produced: no VarSet, CEL, Cdr,
DeviceStateChange, RTCP, DialState, ChanSpyStart/Stop or AGIExec*. `Local/` devices are
channel pairs whose `;2` half runs the dialplan, as on the real one
(adapters/simasterisk/local_channels.py).

Where it differs from the real Asterisk 22 on purpose (checked against one by
tests/integration/test_live_asterisk.py): music on hold always exists (every class
plays; the real one needs musiconhold.conf and files, and falls back to the dialplan's
silent Wait), and every prompt exists (a real one answers a missing file with
`result=-1`, which the daemon tells from a hang-up with CHANNEL STATUS).
"""

from __future__ import annotations

import random
import uuid
from functools import partial
from urllib.parse import urlsplit

from adapters.simasterisk.channels import (
    AGI_THREAD_BASE,
    CALLING_PRES,
    CAUSE_NO_ANSWER,
    CAUSE_NOT_IMPLEMENTED,
    DIAL_STATUS,
    REASON_ANSWERED,
    REASON_BUSY,
    REASON_FAILED,
    REASON_RING_TIMEOUT,
    STATE_DESC,
    UNKNOWN,
    AgiHangup,
    Bridge,
    Channel,
    Connected,
    Effect,
    Event,
    Gone,
    Originate,
    Outcome,
    Ring,
    StartAgi,
    Timer,
    bridge_fields,
    cause_text,
    channel_base,
    escape_c,
    head,
    originate_response,
)
from adapters.simasterisk.dialplan import Dialplan, load, split_args, substitute
from adapters.simasterisk.local_channels import (
    answered_by_dialplan,
    busy_by_dialplan,
    dial_local,
    finish_partner,
    hang_up_partner,
    is_local,
    originate_local,
    parse_local,
    ringing_by_dialplan,
)

# The model's values, importable from here as before the split into channels.py.
__all__ = [
    "AgiHangup",
    "Bridge",
    "Channel",
    "Connected",
    "Effect",
    "Event",
    "Gone",
    "Model",
    "ModelError",
    "Originate",
    "Outcome",
    "Ring",
    "StartAgi",
    "Timer",
]

_MAX_STEPS = 1000  # a dialplan loop that never blocks must not hang the simulator


class ModelError(Exception):
    """An action Asterisk would refuse; the message is Asterisk's."""


class Model:
    """Channels, bridges and dialplan execution; every method returns an `Outcome`."""

    def __init__(
        self,
        dialplan: Dialplan | None = None,
        *,
        agi_address: tuple[str, int] | None = None,
        channelvars: tuple[str, ...] = ("CTI_CALLID", "CTI_QUEUE"),
        seed: int = 0,
        first_sequence: int = 0,
        phone_context: str = "default",
        phone_technologies: tuple[str, ...] = ("PJSIP", "SIP", "IAX2"),
    ) -> None:
        self.dialplan = dialplan or load()
        self.globals = dict(self.dialplan.globals)
        self.agi_address = agi_address
        self.channelvars = channelvars
        self.phone_context = phone_context
        # The channel drivers with phones behind them (`Local` is always there); the
        # test bed has none: its Dial of a PJSIP/ device fails at once.
        self.phone_technologies = frozenset(t.upper() for t in phone_technologies)
        self.rng = random.Random(seed)
        self.channels: dict[str, Channel] = {}  # by uniqueid, in creation order
        self.bridges: dict[str, Bridge] = {}
        self._sequence = first_sequence
        self._channel_index: dict[str, int] = {}

    # --- look-ups --------------------------------------------------------------------

    def by_name(self, name: str) -> Channel | None:
        """The live channel called `name` (Asterisk matches names without case)."""
        wanted = name.lower()
        for channel in self.channels.values():
            if channel.name.lower() == wanted:
                return channel
        return None

    def get(self, uniqueid: str) -> Channel | None:
        """The live channel with this Uniqueid."""
        return self.channels.get(uniqueid)

    def getvar(self, channel: Channel | None, name: str) -> str:
        """A variable or function value as Getvar / GET VARIABLE see it."""
        if channel is None:
            return self.globals.get(name, "")
        return self._lookup(channel, name)

    # --- calls arriving ----------------------------------------------------------------

    def inbound(
        self,
        number: str,
        name: str,
        did: str,
        now: float,
        *,
        context: str = "cc-inbound",
        trunk: str = "PJSIP/trunk",
    ) -> tuple[Channel, Outcome]:
        """A call from the trunk to `did`: Newchannel, then the dialplan runs."""
        out = Outcome()
        ch = self._new_channel(trunk, now, linkedid=None)
        ch.state, ch.context, ch.exten, ch.dnid = 4, context, did, did
        ch.cid_num, ch.cid_name = number or UNKNOWN, name or UNKNOWN
        self._event(out, "Newchannel", ch)
        self._run(ch, now, out)
        return ch, out

    def originate(
        self,
        device: str,
        now: float,
        *,
        action_id: str | None,
        context: str = "",
        exten: str = "",
        priority: int = 1,
        application: str = "",
        data: str = "",
        variables: dict[str, str] | None = None,
        caller_id: tuple[str, str] | None = None,
        timeout: float = 30.0,
        respond: bool = True,
        channel_id: str | None = None,
    ) -> tuple[Channel | None, Outcome]:
        """Originate: ring `device`; when it answers, run the context or application.

        A `Local/` device is a pair whose `;2` half runs the dialplan (local_channels)."""
        out = Outcome()
        orig = Originate(
            action_id,
            context,
            exten,
            priority,
            application,
            data,
            timeout,
            respond,
            channel_id=channel_id,
            caller_id=caller_id,
        )
        target = parse_local(device)
        if target is not None:
            return originate_local(
                self,
                device,
                target,
                now,
                orig,
                variables=variables or {},
                caller_id=caller_id,
                channel_id=channel_id,
            )
        tech = device.partition("/")[0]
        if tech.upper() not in self.phone_technologies or "/" not in device:
            if not respond:
                return None, out
            out.events.append(
                originate_response(
                    action_id,
                    "Failure",
                    device,
                    context,
                    exten,
                    application,
                    data,
                    REASON_FAILED,
                    UNKNOWN,
                    UNKNOWN,
                    UNKNOWN,
                    {},
                )
            )
            return None, out
        # ChannelId: the Uniqueid the client chose (and so the Linkedid of the call).
        ch = self._new_channel(channel_base(device), now, linkedid=None, uniqueid=channel_id)
        ch.device, ch.has_pbx = device, False
        ch.context, ch.exten = self.phone_context, "s"
        ch.originate = orig
        self._event(out, "Newchannel", ch)
        ch.app, ch.app_data = "AppDial2", "(Outgoing Line)"
        self._newexten(out, ch)
        # pbx_outgoing_attempt: the variables and the CallerID once the channel exists.
        ch.variables.update(variables or {})
        self._originate_caller_id(ch, caller_id, out)
        out.events.append(
            {
                **head("DialBegin"),
                **self._fields(ch, "Dest"),
                "DialString": device.partition("/")[2],
            }
        )
        out.effects.append(Ring(ch.uniqueid, device, ch.cid_num))
        out.effects.append(Timer(ch.uniqueid, timeout, ch.gen))
        return ch, out

    def _originate_caller_id(
        self, ch: Channel, caller_id: tuple[str, str] | None, out: Outcome
    ) -> None:
        """An Originate's CallerID on the channel it made: its caller id, then its
        connected line, both the CallerID given (e2's NewCallerid, NewConnectedLine)."""
        if caller_id is None:
            return
        number, name = caller_id[0] or UNKNOWN, caller_id[1] or UNKNOWN
        ch.cid_num, ch.cid_name = number, name
        self._event(out, "NewCallerid", ch, **CALLING_PRES)
        ch.conn_num, ch.conn_name = number, name
        self._event(out, "NewConnectedLine", ch)

    # --- the FastAGI session -----------------------------------------------------------

    def agi_set_variable(self, uniqueid: str, name: str, value: str) -> Outcome:
        """SET VARIABLE (a VarSet event, which we do not send)."""
        ch = self.channels.get(uniqueid)
        if ch is not None:
            ch.variables[name] = value
        return Outcome()

    def agi_set_location(
        self,
        uniqueid: str,
        *,
        context: str | None = None,
        exten: str | None = None,
        priority: str | None = None,
    ) -> bool:
        """SET CONTEXT / EXTENSION / PRIORITY: where the dialplan goes after the AGI."""
        ch = self.channels.get(uniqueid)
        if ch is None:
            return False
        if context is not None:
            ch.context = context
        if exten is not None:
            ch.exten = exten
        if priority is not None:
            number = self._priority_of(ch.context, ch.exten, priority)
            if number is None:
                return False
            # ast_explicit_goto inside a running PBX: one less, the PBX adds one back.
            ch.priority = number - 1
        return True

    def agi_hangup(self, uniqueid: str, now: float) -> Outcome:
        """HANGUP from the AGI: a soft hang-up; the channel goes when the AGI ends."""
        out = Outcome()
        ch = self.channels.get(uniqueid)
        if ch is not None and ch.hangup_cause is None:
            self._event(out, "SoftHangupRequest", ch, Cause="16")
            ch.hangup_cause = 16
        return out

    def agi_done(self, uniqueid: str, now: float) -> Outcome:
        """The FastAGI server closed the socket: on with the dialplan (or hang up)."""
        out = Outcome()
        ch = self.channels.get(uniqueid)
        if ch is None or not ch.agi_running:
            return out
        ch.agi_running = False
        ch.gen += 1
        if ch.hangup_cause is not None:
            self._destroy(ch, ch.hangup_cause, now, out)
            return out
        ch.priority += 1
        self._run(ch, now, out)
        return out

    # --- phones ------------------------------------------------------------------------

    def ringing(self, uniqueid: str, now: float) -> Outcome:
        """The called phone rings (180 Ringing)."""
        out = Outcome()
        ch = self.channels.get(uniqueid)
        if ch is not None and ch.state == 0:
            ch.state = 5
            self._event(out, "Newstate", ch)
        return out

    def answer(self, uniqueid: str, now: float) -> Outcome:
        """The called phone answers: bridge it with its caller, or run the Originate."""
        out = Outcome()
        leg = self.channels.get(uniqueid)
        if leg is None or leg.state == 6:
            return out
        leg.state = 6
        leg.gen += 1
        self._event(out, "Newstate", leg)
        if leg.originate is not None:
            self._originate_answered(leg, now, out)
            return out
        caller = self.channels.get(leg.dialed_by or "")
        if caller is None or caller.dialing != leg.uniqueid:
            return out
        caller.gen += 1
        caller.dialing = None
        caller.variables["DIALSTATUS"] = "ANSWER"
        out.events.append(self._pair("DialEnd", caller, leg, DialStatus="ANSWER"))
        bridge = Bridge(str(uuid.UUID(int=self.rng.getrandbits(128), version=4)), "dial")
        self.bridges[bridge.uniqueid] = bridge
        out.events.append({**head("BridgeCreate"), **bridge_fields(bridge)})
        self._newexten(out, leg)
        self._enter(bridge, leg, out)
        self._enter(bridge, caller, out)
        out.effects.append(Connected(caller.uniqueid, leg.uniqueid, leg.device))
        return out

    def reject(self, uniqueid: str, cause: int, now: float) -> Outcome:
        """The called phone refuses (486 Busy Here: cause 17)."""
        out = Outcome()
        leg = self.channels.get(uniqueid)
        if leg is None or leg.state == 6:
            return out
        local = is_local(leg)
        if not local:
            # The phone's 486 ends its leg; a Local `;1` half is only told "busy" by its
            # `;2` half's Busy() and goes when the Dial gives up (cause 0).
            self._event(out, "HangupRequest", leg, Cause=str(cause))
        status = DIAL_STATUS.get(cause, "CHANUNAVAIL")
        if local:
            cause = 0
        if leg.originate is not None:
            self._originate_failed(leg, REASON_BUSY, cause, now, out, dial_status=status)
            return out
        caller = self.channels.get(leg.dialed_by or "")
        ours = caller is not None and caller.dialing == leg.uniqueid
        if caller is not None and ours:
            out.events.append(self._pair("DialEnd", caller, leg, DialStatus=status))
            caller.dialing = None
        self._destroy(leg, cause, now, out)
        if caller is not None and ours:
            self._dial_over(caller, status, now, out)
        return out

    def remote_hangup(self, uniqueid: str, now: float, cause: int = 16) -> Outcome:
        """The far end hangs up (a BYE from the caller's trunk or the agent's phone)."""
        out = Outcome()
        ch = self.channels.get(uniqueid)
        if ch is None or ch.hangup_cause is not None:
            return out
        self._event(out, "HangupRequest", ch, Cause=str(cause))
        self._hangup(ch, cause, now, out)
        return out

    # --- AMI actions -------------------------------------------------------------------

    def ami_hangup(self, name: str, now: float, cause: int = 16) -> Outcome:
        """Action Hangup."""
        ch = self._must(name, "No such channel")
        out = Outcome()
        if ch.hangup_cause is not None:
            return out
        self._event(out, "SoftHangupRequest", ch, Cause=str(cause))
        self._hangup(ch, cause, now, out)
        return out

    def setvar(self, name: str | None, variable: str, value: str) -> Outcome:
        """Action Setvar (global without a channel)."""
        if not variable:
            raise ModelError("No variable specified")
        if not name:
            self.globals[variable] = value
            return Outcome()
        ch = self._must(name, "No such channel")
        ch.variables[variable] = value
        return Outcome()

    def redirect(
        self,
        moves: list[tuple[str, str, str, str]],
        now: float,
    ) -> Outcome:
        """Action Redirect: (channel, context, exten, priority) for Channel and ExtraChannel.

        Both channels leave their bridge together (no hang-up of the other), then each
        runs the dialplan at its new place.
        """
        targets: list[tuple[Channel, str, str, int]] = []
        for index, (name, context, exten, priority) in enumerate(moves):
            label = "Channel" if index == 0 else "ExtraChannel"
            ch = self.by_name(name)
            if ch is None:
                raise ModelError(f"{label} does not exist: {name}")
            number = self._priority_of(context, exten, priority)
            if number is None:
                raise ModelError("Redirect failed")
            targets.append((ch, context, exten, number))
        out = Outcome()
        moving = {ch.uniqueid for ch, *_ in targets}
        for ch, *_ in targets:
            self._leave_app(ch, now, out, keep=moving)
        for ch, context, exten, number in targets:
            ch.context, ch.exten, ch.priority = context, exten, number
            ch.has_pbx, ch.dialed_by = True, None
            self._run(ch, now, out)
        return out

    def bridge(self, name1: str, name2: str, now: float) -> Outcome:
        """Action Bridge: both leave what they run; each resumes at its next priority
        when the bridge ends."""
        ch1 = self._must(name1, f"Channel1 does not exist: {name1}")
        ch2 = self._must(name2, f"Channel2 does not exist: {name2}")
        out = Outcome()
        bridge = Bridge(str(uuid.UUID(int=self.rng.getrandbits(128), version=4)), "action")
        self.bridges[bridge.uniqueid] = bridge
        out.events.append({**head("BridgeCreate"), **bridge_fields(bridge)})
        for ch in (ch1, ch2):
            self._leave_app(ch, now, out, keep={ch1.uniqueid, ch2.uniqueid})
            ch.priority += 1  # the after-bridge location
            ch.has_pbx = True
            self._enter(bridge, ch, out)
        return out

    def core_show_channels(self, action_id: str | None, now: float) -> list[Event]:
        """The CoreShowChannel items and CoreShowChannelsComplete (no Response)."""
        items: list[Event] = []
        for ch in self.channels.values():
            item: Event = {"Event": "CoreShowChannel"}
            if action_id is not None:
                item["ActionID"] = action_id
            item.update(self._fields(ch))
            seconds = max(0, int(now - ch.created))
            item["Application"] = ch.app
            item["ApplicationData"] = ch.app_data
            item["Duration"] = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            item["BridgeId"] = ch.bridge or ""
            items.append(item)
        done: Event = {"Event": "CoreShowChannelsComplete"}
        if action_id is not None:
            done["ActionID"] = action_id
        done["EventList"] = "Complete"
        done["ListItems"] = str(len(items))
        return [*items, done]

    # --- timers ------------------------------------------------------------------------

    def timer(self, uniqueid: str, token: int, now: float) -> Outcome:
        """A timer armed by an effect fired: Dial/Originate timeout, MusicOnHold/Wait end."""
        out = Outcome()
        ch = self.channels.get(uniqueid)
        if ch is None or ch.gen != token or ch.hangup_cause is not None:
            return out
        if ch.originate is not None and ch.state != 6:
            # The Originate's Timeout: no DialEnd (the recorded ring timeout had none);
            # the dial code hangs the phone up with "no answer".
            self._originate_failed(ch, REASON_RING_TIMEOUT, CAUSE_NO_ANSWER, now, out)
            return out
        if ch.dialing is not None:
            leg = self.channels.get(ch.dialing)
            ch.dialing = None
            if leg is not None:
                out.events.append(self._pair("DialEnd", ch, leg, DialStatus="NOANSWER"))
                self._destroy(leg, 0, now, out)
            self._dial_over(ch, "NOANSWER", now, out)
            return out
        self._leave_app(ch, now, out)
        ch.priority += 1
        self._run(ch, now, out)
        return out

    # --- dialplan execution ------------------------------------------------------------

    def _run(self, ch: Channel, now: float, out: Outcome) -> None:
        for _ in range(_MAX_STEPS):
            if ch.uniqueid not in self.channels or ch.hangup_cause is not None:
                return
            step = self.dialplan.step(ch.context, ch.exten, ch.priority)
            if step is None:
                # Nothing at this priority: the PBX ends and the channel hangs up.
                self._destroy(ch, 16, now, out)
                return
            data = substitute(step.data, partial(self._lookup, ch, now=now))
            if step.app == "AGI":
                data = self._agi_data(data)
            ch.app, ch.app_data = step.app, data
            self._newexten(out, ch)
            if not self._exec(ch, step.app, data, now, out):
                return
        self._destroy(ch, 16, now, out)

    def _exec(self, ch: Channel, app: str, data: str, now: float, out: Outcome) -> bool:
        """Run one application; True to go on at the channel's (new) location."""
        args = split_args(data)
        if app == "NoOp":
            ch.priority += 1
        elif app == "Set":
            name, _, value = data.partition("=")
            ch.variables[name.strip()] = value
            ch.priority += 1
        elif app == "Answer":
            if ch.state != 6:
                ch.state = 6
                self._event(out, "Newstate", ch)
                answered_by_dialplan(self, ch, now, out)
            ch.priority += 1
        elif app == "Ringing":
            ringing_by_dialplan(self, ch, now, out)
            ch.priority += 1
        elif app == "Busy":
            if not busy_by_dialplan(self, ch, now, out) and args and args[0]:
                out.effects.append(Timer(ch.uniqueid, float(args[0]), ch.gen))
            return False
        elif app == "Goto":
            return self._goto(ch, args)
        elif app == "GotoIf":
            condition, _, branches = data.partition("?")
            yes, _, no = branches.partition(":")
            chosen = yes if condition.strip() not in ("", "0") else no
            if not chosen:
                ch.priority += 1
                return True
            return self._goto(ch, split_args(chosen))
        elif app == "ExecIf":
            # ExecIf(condition?App(args)): the app's own rules say where the channel goes.
            condition, _, call = data.partition("?")
            name, _, rest = call.partition("(")
            if condition.strip() in ("", "0") or not name.strip():
                ch.priority += 1
                return True
            return self._exec(ch, name.strip(), rest.rpartition(")")[0], now, out)
        elif app == "UserEvent":
            # UserEvent(Name,Header: value,...): a user event every AMI client sees.
            name, *headers = args
            fields = dict(h.partition(":")[::2] for h in headers)
            self._event(
                out,
                "UserEvent",
                ch,
                UserEvent=name,
                **{k.strip(): v.strip() for k, v in fields.items()},
            )
            ch.priority += 1
        elif app == "AGI":
            self._start_agi(ch, args, out)
            return False
        elif app == "MusicOnHold":
            self._event(out, "MusicOnHoldStart", ch, Class=args[0] if args else "default")
            if len(args) > 1 and args[1]:
                out.effects.append(Timer(ch.uniqueid, float(args[1]), ch.gen))
            return False
        elif app in ("Wait", "VoiceMail"):
            # VoiceMail: the caller records for a while, then the dialplan goes on.
            seconds = float(args[0]) if app == "Wait" and args else 5.0
            out.effects.append(Timer(ch.uniqueid, seconds, ch.gen))
            return False
        elif app == "Dial":
            return self._dial(ch, args, now, out)
        elif app == "Hangup":
            # Without a cause the channel keeps the one a failed Dial left (HANGUPCAUSE).
            given = int(args[0]) if args and args[0].isdigit() else None
            self._event(out, "SoftHangupRequest", ch, Cause=str(given or 16))
            self._destroy(ch, given or ch.last_cause or 16, now, out)
            return False
        else:
            # An application this simulator does not know: Asterisk would hang up.
            self._destroy(ch, 16, now, out)
            return False
        return True

    def _goto(self, ch: Channel, args: list[str]) -> bool:
        context, exten = ch.context, ch.exten
        if len(args) == 3:
            context, exten, target = args
        elif len(args) == 2:
            exten, target = args
        elif args:
            target = args[0]
        else:
            return False
        number = self._priority_of(context, exten, target)
        if number is None:
            return False
        ch.context, ch.exten, ch.priority = context, exten, number
        return True

    def _priority_of(self, context: str, exten: str, priority: str) -> int | None:
        if priority.strip().isdigit():
            return int(priority)
        ext = self.dialplan.find(context, exten)
        return None if ext is None else ext.label(priority.strip())

    def _lookup(self, ch: Channel, expr: str, *, now: float = 0.0) -> str:
        if expr == "EPOCH":
            return str(int(now))
        if expr.startswith("GLOBAL(") and expr.endswith(")"):
            return self.globals.get(expr[7:-1], "")
        special = {
            "EXTEN": ch.exten,
            "CONTEXT": ch.context,
            "PRIORITY": str(ch.priority),
            "UNIQUEID": ch.uniqueid,
            "CHANNEL": ch.name,
            "CALLERID(num)": "" if ch.cid_num == UNKNOWN else ch.cid_num,
            "CALLERID(name)": "" if ch.cid_name == UNKNOWN else ch.cid_name,
        }
        if expr == "CALLERID(all)":
            name, num = special["CALLERID(name)"], special["CALLERID(num)"]
            return f'"{name}" <{num}>' if name else f"<{num}>"
        if expr in special:
            return special[expr]
        return ch.variables.get(expr, self.globals.get(expr, ""))

    def _agi_data(self, data: str) -> str:
        """The sample's fixed `:4573` becomes the address the simulator was given."""
        if self.agi_address is None:
            return data
        url, sep, rest = data.partition(",")
        parts = urlsplit(url)
        host, port = self.agi_address
        return f"agi://{host}:{port}{parts.path}{sep}{rest}"

    def _start_agi(self, ch: Channel, args: list[str], out: Outcome) -> None:
        url = args[0] if args else ""
        parts = urlsplit(url)
        ch.agi_running = True
        tech = ch.name.partition("/")[0]
        sequence = int(ch.uniqueid.rpartition(".")[2])
        env = [
            ("agi_network", "yes"),
            ("agi_network_script", parts.path.lstrip("/")),
            ("agi_request", url),
            ("agi_channel", ch.name),
            ("agi_language", "en"),
            ("agi_type", tech),
            ("agi_uniqueid", ch.uniqueid),
            ("agi_version", "22.10.1"),
            ("agi_callerid", ch.cid_num if ch.cid_num != UNKNOWN else "unknown"),
            ("agi_calleridname", ch.cid_name if ch.cid_name != UNKNOWN else "unknown"),
            ("agi_callingpres", "0"),
            ("agi_callingani2", "0"),
            ("agi_callington", "0"),
            ("agi_callingtns", "0"),
            ("agi_dnid", ch.dnid or "unknown"),
            ("agi_rdnis", "unknown"),
            ("agi_context", ch.context),
            ("agi_extension", ch.exten),
            ("agi_priority", str(ch.priority)),
            ("agi_enhanced", "0.0"),
            ("agi_accountcode", ""),
            ("agi_threadid", str(AGI_THREAD_BASE + 4096 * sequence)),
        ]
        env += [(f"agi_arg_{i}", arg) for i, arg in enumerate(args[1:], start=1)]
        out.effects.append(StartAgi(ch.uniqueid, parts.hostname or "", parts.port or 4573, env))

    def _dial(self, caller: Channel, args: list[str], now: float, out: Outcome) -> bool:
        target = args[0] if args else ""
        timeout = float(args[1]) if len(args) > 1 and args[1] else None
        local = parse_local(target)
        if local is not None:
            return dial_local(self, caller, target, local, timeout, now, out)
        tech, _, resource = target.partition("/")
        if tech.upper() not in self.phone_technologies or not resource:
            caller.variables["DIALSTATUS"] = "CHANUNAVAIL"
            caller.last_cause = CAUSE_NOT_IMPLEMENTED
            caller.priority += 1
            return True
        leg = self._new_channel(channel_base(target), now, linkedid=caller.linkedid)
        leg.device, leg.has_pbx = target, False
        leg.context, leg.exten = self.phone_context, caller.exten
        self._event(out, "Newchannel", leg)
        leg.app, leg.app_data = "AppDial", "(Outgoing Line)"
        leg.cid_num, leg.cid_name = caller.cid_num, caller.cid_name
        leg.conn_num, leg.conn_name = caller.cid_num, caller.cid_name
        self._newexten(out, leg)
        self._event(out, "NewCallerid", leg, **CALLING_PRES)
        self._event(out, "NewConnectedLine", leg)
        out.events.append(self._pair("DialBegin", caller, leg, DialString=resource))
        caller.dialing, leg.dialed_by = leg.uniqueid, caller.uniqueid
        out.effects.append(Ring(leg.uniqueid, target, caller.cid_num, caller.context))
        if timeout:
            out.effects.append(Timer(caller.uniqueid, timeout, caller.gen))
        return False

    def _dial_over(self, caller: Channel, status: str, now: float, out: Outcome) -> None:
        """A Dial that failed returns: the dialplan goes on at the next priority."""
        caller.dialing = None
        caller.gen += 1
        caller.variables["DIALSTATUS"] = status
        caller.priority += 1
        self._run(caller, now, out)

    def _originate_answered(self, ch: Channel, now: float, out: Outcome) -> None:
        orig = ch.originate
        assert orig is not None
        out.events.append({**head("DialEnd"), **self._fields(ch, "Dest"), "DialStatus": "ANSWER"})
        if orig.respond:
            out.events.append(
                originate_response(
                    orig.action_id,
                    "Success",
                    ch.name,
                    orig.context,
                    orig.exten,
                    orig.application,
                    orig.data,
                    REASON_ANSWERED,
                    ch.uniqueid,
                    ch.cid_num,
                    ch.cid_name,
                    self._chanvars(ch),
                )
            )
        ch.originate, ch.has_pbx = None, True
        if orig.application:
            # The application runs on the channel until it hangs up (ChanSpy, Wait...).
            # Its dialplan location does not change, so Asterisk sends no Newexten
            # (channel_newexten: only when context, exten or priority change).
            ch.app, ch.app_data = orig.application, orig.data
            return
        ch.context, ch.exten, ch.priority = orig.context, orig.exten, orig.priority
        self._run(ch, now, out)

    def _originate_failed(
        self,
        ch: Channel,
        reason: int,
        cause: int,
        now: float,
        out: Outcome,
        *,
        dial_status: str | None = None,
    ) -> None:
        """The Originate failed: its OriginateResponse, the DialEnd (`dial_status`, if
        the phone said why), then the channel goes (as recorded: the daemon learns why a
        click-to-dial failed before its call ends)."""
        self._originate_failure_response(ch, reason, out)
        if dial_status is not None:
            out.events.append(
                {**head("DialEnd"), **self._fields(ch, "Dest"), "DialStatus": dial_status}
            )
        self._destroy(ch, cause, now, out)

    def _originate_failure_response(self, ch: Channel, reason: int, out: Outcome) -> None:
        """manager.c fast_originate, no channel left: the device as requested, the
        client's ChannelId (or `<unknown>`), the Originate's CallerID, no variables."""
        orig = ch.originate
        assert orig is not None
        if not orig.respond:
            return
        number, name = orig.caller_id or ("", "")
        out.events.append(
            originate_response(
                orig.action_id,
                "Failure",
                ch.device,
                orig.context,
                orig.exten,
                orig.application,
                orig.data,
                reason,
                orig.channel_id or UNKNOWN,
                number or UNKNOWN,
                name or UNKNOWN,
                {},
            )
        )

    # --- leaving, bridging, hanging up -----------------------------------------------

    def _leave_app(
        self, ch: Channel, now: float, out: Outcome, keep: set[str] | None = None
    ) -> None:
        """Stop what the channel runs (an async goto): music, a ringing Dial, a bridge."""
        ch.gen += 1
        if ch.app == "MusicOnHold" and ch.bridge is None:
            self._event(out, "MusicOnHoldStop", ch)
        if ch.dialing is not None:
            leg = self.channels.get(ch.dialing)
            ch.dialing = None
            if leg is not None:
                out.events.append(self._pair("DialEnd", ch, leg, DialStatus="CANCEL"))
                self._destroy(leg, 0, now, out)
        if ch.bridge is not None:
            self._leave_bridge(ch, now, out, keep or set())

    def _hangup(self, ch: Channel, cause: int, now: float, out: Outcome) -> None:
        if ch.agi_running:
            # The AGI is told (HANGUP); the channel is destroyed when the AGI ends.
            ch.hangup_cause = cause
            out.effects.append(AgiHangup(ch.uniqueid))
            return
        self._destroy(ch, cause, now, out)

    def _destroy(self, ch: Channel, cause: int, now: float, out: Outcome) -> None:
        if ch.uniqueid not in self.channels:
            return
        ch.hangup_cause = cause
        # A Local half takes its other half with it (local_channels.hang_up_partner).
        partner_later = hang_up_partner(self, ch, cause, now, out)
        if ch.app == "MusicOnHold" and ch.bridge is None:
            self._event(out, "MusicOnHoldStop", ch)
        if ch.dialing is not None:
            leg = self.channels.get(ch.dialing)
            ch.dialing = None
            if leg is not None:
                out.events.append(self._pair("DialEnd", ch, leg, DialStatus="CANCEL"))
                self._destroy(leg, 0, now, out)
        caller = self.channels.get(ch.dialed_by or "")
        if caller is not None and caller.dialing == ch.uniqueid and ch.state != 6:
            # The ringing leg went away by itself (the phone's network dropped it).
            out.events.append(self._pair("DialEnd", caller, ch, DialStatus="CHANUNAVAIL"))
        del self.channels[ch.uniqueid]
        bridge = self.bridges.get(ch.bridge or "")
        if bridge is None:
            self._event(out, "Hangup", ch, Cause=str(cause), **{"Cause-txt": cause_text(cause)})
            out.effects.append(Gone(ch.uniqueid, ch.name, cause))
            if partner_later is not None:
                finish_partner(self, ch, partner_later, cause, now, out)
            if caller is not None and caller.dialing == ch.uniqueid:
                self._dial_over(caller, "CHANUNAVAIL", now, out)
            return
        # e1: BridgeLeave of the one hanging up and of the others, its Hangup, then
        # BridgeDestroy, then whatever the others do next.
        others = self._leave_bridge(ch, now, out, set(), defer=True)
        self._event(out, "Hangup", ch, Cause=str(cause), **{"Cause-txt": cause_text(cause)})
        out.effects.append(Gone(ch.uniqueid, ch.name, cause))
        if partner_later is not None:
            finish_partner(self, ch, partner_later, cause, now, out)
        self._after_bridge(bridge, others, now, out)

    def _leave_bridge(
        self, ch: Channel, now: float, out: Outcome, keep: set[str], *, defer: bool = False
    ) -> list[Channel]:
        """`ch` leaves its bridge; the others leave too (two-party bridges end)."""
        bridge = self.bridges.get(ch.bridge or "")
        ch.bridge = None
        if bridge is None:
            return []
        self._exit(bridge, ch, out)
        others = [self.channels[u] for u in list(bridge.members) if u in self.channels]
        for other in others:
            self._exit(bridge, other, out)
        if not defer:
            self._after_bridge(bridge, [o for o in others if o.uniqueid not in keep], now, out)
            if any(o.uniqueid in keep for o in others):
                for other in others:
                    other.gen += 1
        return others

    def _after_bridge(
        self, bridge: Bridge, others: list[Channel], now: float, out: Outcome
    ) -> None:
        self.bridges.pop(bridge.uniqueid, None)
        out.events.append({**head("BridgeDestroy"), **bridge_fields(bridge)})
        for other in others:
            if other.uniqueid not in self.channels:
                continue
            if bridge.kind == "action" and other.has_pbx:
                other.gen += 1
                self._run(other, now, out)
            elif bridge.kind == "dial" and other.has_pbx and other.dialed_by is None:
                # The caller's Dial (no `g` option) ends the call when the callee goes.
                self._event(out, "SoftHangupRequest", other, Cause="16")
                self._destroy(other, 16, now, out)
            else:
                # The called leg has no dialplan to go back to.
                self._event(out, "SoftHangupRequest", other, Cause="16")
                self._destroy(other, 16, now, out)

    def _enter(self, bridge: Bridge, ch: Channel, out: Outcome) -> None:
        bridge.members.append(ch.uniqueid)
        ch.bridge = bridge.uniqueid
        out.events.append({**head("BridgeEnter"), **bridge_fields(bridge), **self._fields(ch)})

    def _exit(self, bridge: Bridge, ch: Channel, out: Outcome) -> None:
        if ch.uniqueid in bridge.members:
            bridge.members.remove(ch.uniqueid)
        ch.bridge = None
        out.events.append({**head("BridgeLeave"), **bridge_fields(bridge), **self._fields(ch)})

    # --- event building ----------------------------------------------------------------

    def _new_channel(
        self,
        base: str,
        now: float,
        linkedid: str | None,
        uniqueid: str | None = None,
        *,
        suffix: str = "",
        same_index: bool = False,
    ) -> Channel:
        """A channel named `<base>-<8 hex digits><suffix>`, counted per technology
        (`same_index`: the number of the one before, a Local pair's second half)."""
        tech = base.partition("/")[0]
        index = self._channel_index.get(tech, 0)
        if same_index:
            index = max(0, index - 1)
        else:
            self._channel_index[tech] = index + 1
        uid = uniqueid or f"{int(now)}.{self._sequence}"
        self._sequence += 1
        ch = Channel(
            name=f"{base}-{index:08x}{suffix}",
            uniqueid=uid,
            linkedid=linkedid or uid,
            tech=base.partition("/")[0],
            device=base,
            created=now,
        )
        self.channels[uid] = ch
        return ch

    def _must(self, name: str, message: str) -> Channel:
        ch = self.by_name(name) if name else None
        if ch is None:
            raise ModelError(message if name else "Channel not specified")
        return ch

    def _chanvars(self, ch: Channel) -> dict[str, str]:
        return {name: ch.variables.get(name, "") for name in self.channelvars}

    def _fields(self, ch: Channel, prefix: str = "") -> Event:
        p = prefix
        return {
            f"{p}Channel": ch.name,
            f"{p}ChannelState": str(ch.state),
            f"{p}ChannelStateDesc": STATE_DESC.get(ch.state, "Unknown"),
            f"{p}CallerIDNum": ch.cid_num,
            f"{p}CallerIDName": escape_c(ch.cid_name),
            f"{p}ConnectedLineNum": ch.conn_num,
            f"{p}ConnectedLineName": escape_c(ch.conn_name),
            f"{p}Language": "en",
            f"{p}AccountCode": "",
            f"{p}Context": ch.context,
            f"{p}Exten": ch.exten,
            f"{p}Priority": str(ch.priority),
            f"{p}Uniqueid": ch.uniqueid,
            f"{p}Linkedid": ch.linkedid,
            f"{p}ChanVariable": [f"{k}={v}" for k, v in self._chanvars(ch).items()],
        }

    def _event(self, out: Outcome, name: str, ch: Channel, **extra: str) -> None:
        out.events.append({**head(name), **self._fields(ch), **extra})

    def _newexten(self, out: Outcome, ch: Channel) -> None:
        out.events.append(
            {
                **head("Newexten", "dialplan,all"),
                **self._fields(ch),
                "Extension": ch.exten,
                "Application": ch.app,
                "AppData": ch.app_data,
            }
        )

    def _pair(self, name: str, ch: Channel, dest: Channel, **extra: str) -> Event:
        return {**head(name), **self._fields(ch), **self._fields(dest, "Dest"), **extra}
