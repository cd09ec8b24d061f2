"""Local channels (`Local/exten@context`) of the simulated Asterisk, made as chan_local does.

A Local device is a pair of channels. The `;1` half is what an Originate or a Dial
calls; the `;2` half runs the dialplan at exten@context, and that dialplan is the
"phone": its Answer() answers `;1`, its Ringing() makes `;1` ring, its Busy() makes it
busy, and when either half hangs up the other goes too. No simulated phone policy is
involved (there is no endpoint to ring).

What is sent, and in which order, follows a real Asterisk 22.10.1:
tests/fixtures/asterisk-caller-names/local-click-to-dial.ami (Originate with ChannelId
of a Local device: `;1` is the ChannelId, `;2` is `<ChannelId>;2`, both with the `;1`
half's Linkedid; the Originate's variables reach `;1` after its first events and are
copied to `;2`), tests/fixtures/asterisk-traces/e1 (Dial of a Local device), e2
(Originate with a CallerID), f_errors (a Local device whose context does not exist: both
halves appear and hang up with cause 0, and nothing is dialled) and c_queue_abandon
(Ringing() on `;2` shows as Newstate Ringing of `;1`); a busy phone (tb-busy), one that
never answers (tb-noanswer) and the supervisor's spy (Originate with Application
ChanSpy) were recorded live on the test bed, and
tests/integration/test_live_asterisk_click_to_dial.py compares them with the simulator.

The halves stay for the whole call: Asterisk optimises a pair away only when both
halves are bridged (the `;2` half's dialplan Dial()ed on), which the test bed's phones
never do; the simulator does not model that optimisation.

The functions take the `Model` and use its event builders; the model calls them from
`originate`, `_dial`, its dialplan applications and `_destroy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapters.simasterisk.channels import (
    CALLING_PRES,
    REASON_FAILED,
    REASON_HANGUP,
    Channel,
    Event,
    Originate,
    Outcome,
    Timer,
    head,
)

if TYPE_CHECKING:
    from adapters.simasterisk.model import Model

TECH = "Local"


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """Where a Local device's `;2` half runs: `Local/<exten>@<context>[/<options>]`."""

    exten: str
    context: str
    optimize: bool  # without the `n` option, Asterisk may optimise the pair away

    @property
    def dial_string(self) -> str:
        """The DialString of its DialBegin (`2007@tb-answer-stay`)."""
        return f"{self.exten}@{self.context}"


def parse_local(device: str) -> LocalTarget | None:
    """The target of a `Local/` device, or None if `device` is not one."""
    tech, _, resource = device.partition("/")
    if tech.lower() != TECH.lower() or not resource:
        return None
    resource, _, options = resource.partition("/")
    exten, at, context = resource.partition("@")
    if not exten:
        return None
    return LocalTarget(exten, context if at and context else "default", "n" not in options)


def is_local(channel: Channel) -> bool:
    """A half of a Local pair (alive or not)."""
    return channel.half != 0


def partner_of(model: Model, channel: Channel) -> Channel | None:
    """The other half of a Local pair, while it lives."""
    return model.channels.get(channel.partner or "")


def originate_local(
    model: Model,
    device: str,
    target: LocalTarget,
    now: float,
    orig: Originate,
    *,
    variables: dict[str, str],
    caller_id: tuple[str, str] | None,
    channel_id: str | None,
) -> tuple[Channel, Outcome]:
    """Originate of a Local device: the pair, then the `;2` half runs its dialplan."""
    out = Outcome()
    one, two = _pair(model, device, target, now, linkedid=None, uniqueid=channel_id)
    one.originate = orig
    model._event(out, "Newchannel", one)
    model._event(out, "Newchannel", two)
    one.app, one.app_data = "AppDial2", "(Outgoing Line)"
    model._newexten(out, one)
    if model.dialplan.step(target.context, target.exten, 1) is None:
        _unreachable(model, one, two, now, out)
        model._originate_failure_response(one, REASON_FAILED, out)
        return one, out
    one.variables.update(variables)
    two.variables.update(variables)
    if caller_id is not None:
        # e2: `;1` as any originated channel, then `;2` with both the CallerID given.
        model._originate_caller_id(one, caller_id, out)
        two.cid_num, two.cid_name = one.cid_num, one.cid_name
        two.conn_num, two.conn_name = one.conn_num, one.conn_name
        model._event(out, "NewCallerid", two, **CALLING_PRES)
        model._event(out, "NewConnectedLine", two)
    out.events.append(_local_bridge(model, one, two, target))
    out.events.append(
        {**head("DialBegin"), **model._fields(one, "Dest"), "DialString": target.dial_string}
    )
    out.effects.append(Timer(one.uniqueid, orig.timeout, one.gen))
    model._run(two, now, out)
    return one, out


def dial_local(
    model: Model,
    caller: Channel,
    device: str,
    target: LocalTarget,
    timeout: float | None,
    now: float,
    out: Outcome,
) -> bool:
    """Dial() of a Local device from `caller`; True when the caller's dialplan goes on
    at once (the device cannot be called: DIALSTATUS CHANUNAVAIL, no DialBegin)."""
    one, two = _pair(model, device, target, now, linkedid=caller.linkedid, uniqueid=None)
    model._event(out, "Newchannel", one)
    model._event(out, "Newchannel", two)
    one.app, one.app_data = "AppDial", "(Outgoing Line)"
    model._newexten(out, one)
    if model.dialplan.step(target.context, target.exten, 1) is None:
        _unreachable(model, one, two, now, out)
        caller.variables["DIALSTATUS"] = "CHANUNAVAIL"
        caller.priority += 1
        return True
    # e1: the `;1` half calls "as" the extension dialled, named like the caller; the
    # `;2` half has the caller's id, and `;1` as its connected line.
    one.cid_num, one.cid_name = target.exten, caller.cid_name
    one.conn_num, one.conn_name = caller.cid_num, caller.cid_name
    model._event(out, "NewCallerid", one, **CALLING_PRES)
    model._event(out, "NewConnectedLine", one)
    two.cid_num, two.cid_name = caller.cid_num, caller.cid_name
    two.conn_num, two.conn_name = one.cid_num, one.cid_name
    model._event(out, "NewCallerid", two, **CALLING_PRES)
    model._event(out, "NewConnectedLine", two)
    out.events.append(_local_bridge(model, one, two, target))
    out.events.append(model._pair("DialBegin", caller, one, DialString=target.dial_string))
    caller.dialing, one.dialed_by = one.uniqueid, caller.uniqueid
    if timeout:
        out.effects.append(Timer(caller.uniqueid, timeout, caller.gen))
    model._run(two, now, out)
    return False


def answered_by_dialplan(model: Model, two: Channel, now: float, out: Outcome) -> None:
    """Answer() ran on a `;2` half: its `;1` half is answered (Newstate, DialEnd...)."""
    one = partner_of(model, two)
    if two.half == 2 and one is not None:
        out.extend(model.answer(one.uniqueid, now))


def ringing_by_dialplan(model: Model, two: Channel, now: float, out: Outcome) -> None:
    """Ringing() ran on a `;2` half: its `;1` half rings (Newstate 5 Ringing)."""
    one = partner_of(model, two)
    if two.half == 2 and one is not None:
        out.extend(model.ringing(one.uniqueid, now))


def busy_by_dialplan(model: Model, two: Channel, now: float, out: Outcome) -> bool:
    """Busy() ran on a `;2` half: its `;1` half is refused as busy (cause 17). False if
    `two` is no `;2` half with a `;1` still ringing."""
    one = partner_of(model, two)
    if two.half != 2 or one is None or one.state == 6:
        return False
    two.last_cause = 17  # its own HANGUPCAUSE when it goes (User busy)
    out.extend(model.reject(one.uniqueid, 17, now))
    return True


def hang_up_partner(
    model: Model, ch: Channel, cause: int, now: float, out: Outcome
) -> Channel | None:
    """`ch` is being destroyed: start ending its other half, as a real Asterisk does.

    The `;1` half hung up by its own dialplan (the click-to-dial's Hangup()): `;2` gets
    HangupRequest, SoftHangupRequest and its Hangup before `;1`'s. A `;1` half that was
    never answered (a ring timeout, a busy phone, a cancelled Dial): `;2` gets its
    HangupRequest (and SoftHangupRequest, unless it sits in Busy()) now, and goes after
    `;1`'s Hangup. The `;2` half going (its dialplan, an AMI Hangup of it): `;1` gets its
    HangupRequest now and goes after `;2`'s Hangup. Returns the half to finish after
    `ch`'s Hangup (`finish_partner`), or None.
    """
    other = partner_of(model, ch)
    ch.partner = None
    if other is None:
        return None
    other.partner = None
    model._event(out, "HangupRequest", other, Cause=str(cause))
    if ch.half == 1 and ch.has_pbx:
        model._event(out, "SoftHangupRequest", other, Cause="16")
        model._destroy(other, cause, now, out)
        return None
    if ch.half == 1 and not _in_busy(other):
        model._event(out, "SoftHangupRequest", other, Cause="16")
    return other


def finish_partner(
    model: Model, ch: Channel, other: Channel, cause: int, now: float, out: Outcome
) -> None:
    """After `ch`'s Hangup, its other half goes (see `hang_up_partner`)."""
    if other.uniqueid not in model.channels:
        return
    if ch.half == 1:
        # The `;2` half: a Busy() phone shows its busy state, then goes with its own cause.
        if _in_busy(other):
            other.state = 7
            model._event(out, "Newstate", other)
            model._event(out, "SoftHangupRequest", other, Cause="16")
        model._destroy(other, other.last_cause or cause, now, out)
        return
    if other.originate is not None and other.state != 6:
        # The phone hung up before it answered: the Originate failed.
        model._originate_failed(other, REASON_HANGUP, cause, now, out)
        return
    model._hangup(other, cause, now, out)


def _in_busy(two: Channel) -> bool:
    return two.half == 2 and two.app == "Busy" and two.state != 6


# --- building the pair ---------------------------------------------------------------


def _pair(
    model: Model,
    device: str,
    target: LocalTarget,
    now: float,
    *,
    linkedid: str | None,
    uniqueid: str | None,
) -> tuple[Channel, Channel]:
    """The two halves, registered, before any event: `;1` is called, `;2` will run."""
    base = f"{TECH}/{target.exten}@{target.context}"
    one = model._new_channel(base, now, linkedid=linkedid, uniqueid=uniqueid, suffix=";1")
    # ChannelId names `;1`; core_unreal gives `;2` the same id with `;2` after it.
    two = model._new_channel(
        base,
        now,
        linkedid=one.linkedid,
        uniqueid=f"{uniqueid};2" if uniqueid else None,
        suffix=";2",
        same_index=True,
    )
    one.device, one.has_pbx, one.half, one.partner = device, False, 1, two.uniqueid
    two.device, two.half, two.partner = device, 2, one.uniqueid
    for half in (one, two):
        half.context, half.exten, half.priority = target.context, target.exten, 1
    two.state = 4  # Ring: it has a call coming in, which its dialplan answers
    return one, two


def _unreachable(model: Model, one: Channel, two: Channel, now: float, out: Outcome) -> None:
    """f_errors: no such exten@context: the `;2` half goes, then `;1`, both cause 0."""
    one.partner = two.partner = None
    model._destroy(two, 0, now, out)
    model._destroy(one, 0, now, out)


def _local_bridge(model: Model, one: Channel, two: Channel, target: LocalTarget) -> Event:
    return {
        **head("LocalBridge"),
        **model._fields(one, "LocalOne"),
        **model._fields(two, "LocalTwo"),
        "Context": target.context,
        "Exten": target.exten,
        "LocalOptimization": "Yes" if target.optimize else "No",
    }
