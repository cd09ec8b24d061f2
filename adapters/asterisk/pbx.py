"""Asterisk behind the telephony port.

FastAGI runs the IVR (`agi://daemon:4573/ivr/<flow>`); when a flow queues the call, the
AGI session tags the channel with the interaction id and sends it to the holding context
(music on hold) before handing it to routing. AMI carries the rest: the call tracker turns
its events into contact events on the bus, and the port's commands become AMI actions.
Delivery: Setvar of the agent's device on the caller's channel, then a Redirect into the
agent context, which Dials it (contrib/asterisk/extensions_contact_center.conf); the
caller goes back to the holding context when nobody answers, and the DialEnd that says so
moves the offer on at once (a device that cannot be dialled raises no DialEnd: the
dialplan's CcRingFailed user event does it). Hold from the desktop: a Redirect of both legs
(caller to music on hold, agent to a silent wait), and unhold is a Bridge action joining
them again; either side hanging up while held hangs up the other. Click-to-dial and spy
are async Originates followed by their OriginateResponse. After every AMI login a resync
closes calls that ended, queues again the known ones still waiting, and sends callers
who came while the daemon was down (waiting untagged in the holding context) through the
IVR.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.agi.channel import AgiChannel, AgiError
from adapters.agi.codec import AgiEnvironment
from adapters.agi.server import FastAgiServer, ListenError
from adapters.ami.calls import TRACKED_EVENTS, CallTracker, TrackerConfig
from adapters.ami.client import AmiActionRefused, AmiClient, AmiError, AmiNotConnected
from adapters.ami.events import (
    AgentNotAnswered,
    CallAnswered,
    CallEnded,
    CallHeld,
    CallStarted,
    CallUnheld,
)
from adapters.ami.framing import AmiMessage
from adapters.asterisk.ivr import AgiCaller
from adapters.asterisk.ivr_runner import IvrOutcome, hand_to_routing, record_ivr_end, run_flow
from adapters.asterisk.settings import PbxConfig
from crm_store.fast_intake import SqliteIntake
from crm_store.models import Interaction
from ivr_flows import interpreter as ivr
from ivr_flows.model import Flow
from routing import contact_request
from routing.dialing import device_name, dial_string
from routing.events import (
    ContactAnswered,
    ContactEnded,
    ContactHeld,
    ContactQueued,
    ContactRingFailed,
    ContactTransferred,
    ContactUnheld,
)
from routing.intake import open_contact
from routing.ports import EventPublisher
from routing.router import RoutingError
from routing.telephony import TelephonyError

log = logging.getLogger(__name__)

INTERACTION_VAR = "CC_INTERACTION_ID"
DEVICE_VAR = "CC_AGENT_DEVICE"
RING_VAR = "CC_RING_SECONDS"
UNHELD_VAR = "CC_UNHELD"  # set just before unhold's Bridge (see [cc-hold])
DID_VAR = "CC_DID"  # the number the caller dialled, set by the inbound context
TRANSFER_CONTEXT = "cc-transfer"
OUTBOUND_CONTEXT = "cc-outbound"
VOICEMAIL_CONTEXT = "cc-voicemail"
HOLD_CONTEXT = "cc-hold"
HOLD_AGENT_CONTEXT = "cc-hold-agent"
# The user event [cc-agents] raises when its Dial ends without an answer.
RING_FAILED_EVENT = "CcRingFailed"
# ActionIDs of our async Originates, to follow their OriginateResponse.
DIAL_ACTION_PREFIX = "cc-dial-"
SPY_ACTION_PREFIX = "cc-spy-"
# OriginateResponse's Reason: Asterisk's AST_CONTROL_* code of how the phone ended.
_ORIGINATE_REASONS = {
    "0": "could not be dialled",
    "1": "hung up",
    "3": "was not answered",
    "5": "was busy",
    "8": "was congested",
}
# A Dial the daemon cancelled itself (Redirect) or that the caller's hang-up ended: the
# router already knows; any other failed DialEnd is the agent's phone not taking the call.
_OWN_DIAL_ENDINGS = frozenset({"cancel"})


@dataclass
class _Call:
    interaction_id: int
    channel: str
    uniqueid: str
    ringing_agent: int | None = None
    ringing_device: str | None = None
    # The leg the tracked channel is connected to: the agent's for a call that came in,
    # the customer's for a click-to-dial (whose tracked channel is the agent's phone).
    agent_channel: str | None = None
    outbound: bool = False
    # The dialplan already sent the caller back to the holding context (Dial failed).
    back_in_holding: bool = False
    held: bool = False


class PhoneControl(Protocol):
    """Phones the daemon can work itself: only the simulated Asterisk's have this."""

    def ringing(self, device: str) -> None:
        """`device` is about to be rung for an offer."""

    def answer(self, device: str) -> None:
        """Pick up the ringing `device` (the desktop's Accept)."""


class DirectQueueLike(Protocol):
    """A simulated call whose IVR is already done."""

    queue: str
    priority: int
    skills: dict[str, int]
    ivr_path: list[str]
    ivr_inputs: dict[str, str]


class CallScriptLike(Protocol):
    """What a simulated call does in its AGI session (adapters/simasterisk/controls.py)."""

    flow: str | None
    direct: DirectQueueLike | None
    done: asyncio.Future[tuple[int, str]]


class AsteriskPbx:
    """The telephony port on a real Asterisk (or the simulated one)."""

    def __init__(
        self,
        pbx: PbxConfig,
        *,
        bus: EventPublisher,
        sessionmaker: async_sessionmaker[AsyncSession],
        flows: dict[str, Flow],
        default_flow: str,
        region: str,
        on_state: Callable[[str, str, str | None], None] | None = None,
        fast_intake: SqliteIntake | None = None,
        clock: Callable[[], float] = time.time,
        phones: PhoneControl | None = None,
        scripts: dict[str, CallScriptLike] | None = None,
    ) -> None:
        self.fast_intake = fast_intake
        # Both only with the simulated Asterisk: a real PBX's phones are answered by hand,
        # and its callers choose their own way through the IVR.
        self.phones = phones
        self.scripts = scripts
        self.pbx = pbx
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.flows = flows
        self.default_flow = default_flow
        self.region = region
        self.on_state = on_state
        self.clock = clock
        # The configured inbound context, besides the sample's (calls start there).
        contexts = TrackerConfig().inbound_contexts | {pbx.inbound_context}
        self.tracker = CallTracker(TrackerConfig(inbound_contexts=contexts))
        self.calls: dict[int, _Call] = {}
        self._by_call_id: dict[str, int] = {}
        self._started: dict[str, CallStarted] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._spies = itertools.count(1)
        self.ami = AmiClient(
            host=pbx.ami.host,
            port=pbx.ami.port,
            username=pbx.ami.username,
            secret=pbx.ami.secret.get_secret_value(),
            on_event=self._on_ami_event,
            on_login=self._resync,
            on_state=lambda state, error: self._state("ami", state, error),
            wanted_events=TRACKED_EVENTS,
            ping_interval=pbx.ami.ping_interval_seconds,
            action_timeout=pbx.ami.action_timeout_seconds,
            reconnect_max=pbx.ami.reconnect_max_seconds,
        )
        self.agi = FastAgiServer(
            pbx.agi.host,
            pbx.agi.port,
            {"ivr": self._ivr_session},
            read_timeout=pbx.agi.read_timeout_seconds,
        )

    async def start(self) -> None:
        """Listen for FastAGI and connect to AMI (in the background)."""
        try:
            await self.agi.start()
        except OSError as exc:
            raise ListenError(
                f"FastAGI cannot listen on {self.pbx.agi.host}:{self.pbx.agi.port}"
                f" (pbx.agi): {exc.strerror or exc}"
            ) from None
        self._state("agi", "up", None)
        await self.ami.start()

    async def stop(self) -> None:
        """Close AMI and the FastAGI listener."""
        await self.ami.stop()
        await self.agi.stop()
        self._state("agi", "down", "stopped")

    # --- the IVR ------------------------------------------------------------------

    async def _ivr_session(self, env: AgiEnvironment, channel: AgiChannel) -> None:
        script = (self.scripts or {}).get(env.get("agi_uniqueid", ""))
        try:
            await self._run_ivr(env, channel, script)
        finally:
            if script is not None and not script.done.done():
                script.done.set_exception(
                    TelephonyError("the IVR ended without a contact", "telephony.no_ivr")
                )

    async def _run_ivr(
        self, env: AgiEnvironment, channel: AgiChannel, script: CallScriptLike | None
    ) -> None:
        name = (script.flow if script is not None else None) or env.subpath or self.default_flow
        flow = self.flows.get(name)
        if flow is None and (script is None or script.direct is None):
            await channel.verbose(f"no IVR flow {env.subpath!r}")
            await channel.hangup()
            return
        caller = env.get("agi_callerid") or ""
        opened = await open_contact(
            self.sessionmaker,
            channel="voice",
            address=caller if caller and caller != "unknown" else None,
            region=self.region,
            external_id=env.get("agi_uniqueid"),
            at=self.clock(),
            fast=self.fast_intake,
        )
        self._link(opened.interaction_id, env.get("agi_channel", ""), env.get("agi_uniqueid", ""))
        if script is not None and script.direct is not None:
            outcome = _direct_outcome(script.direct)
        else:
            assert flow is not None
            outcome = await run_flow(
                flow,
                AgiCaller(channel),
                caller_number=caller,
                interaction_id=opened.interaction_id,
                sessionmaker=self.sessionmaker,
                region=self.region,
            )
        if script is not None:
            script.done.set_result((opened.interaction_id, outcome.outcome))
        command = outcome.command
        try:
            if isinstance(command, ivr.Queue):
                await channel.set_variable(INTERACTION_VAR, str(opened.interaction_id))
                await channel.continue_at(self.pbx.holding_context, "s")
                await hand_to_routing(
                    self.bus,
                    self.sessionmaker,
                    opened,
                    outcome,
                    command.queue,
                    address=caller or None,
                    dnis=env.get("agi_extension", ""),
                    at=self.clock(),
                )
                return
            # Every other way out ends the contact here, whatever Asterisk does next.
            self._forget(opened.interaction_id)
            await record_ivr_end(
                self.sessionmaker,
                opened.interaction_id,
                outcome,
                datetime.fromtimestamp(self.clock(), UTC),
            )
            if isinstance(command, ivr.Transfer):
                await channel.continue_at(TRANSFER_CONTEXT, command.extension)
            elif isinstance(command, ivr.Voicemail):
                await channel.continue_at(VOICEMAIL_CONTEXT, command.mailbox)
            elif outcome.outcome != "caller_hangup":
                await channel.hangup()
        except AgiError as exc:
            log.warning("IVR of interaction %s ended early: %s", opened.interaction_id, exc)

    # --- AMI events -----------------------------------------------------------------

    def _on_ami_event(self, message: AmiMessage) -> None:
        name = message.get("Event")
        if name == "Hangup":
            self._left_hold(str(message.get("Channel", "")))
        elif name == "UserEvent" and message.get("UserEvent") == RING_FAILED_EVENT:
            self._dial_failed(message)
        elif name == "OriginateResponse":
            self._originated(message)
        for event in self.tracker.feed_message(message, self.clock()):
            self._domain(event)

    def _originated(self, message: AmiMessage) -> None:
        """How an async Originate went (it is answered "queued" at once): a click-to-dial
        whose phone was busy, unreachable or not picked up ends here; a spy that failed
        is logged."""
        action_id = str(message.get("ActionID", ""))
        if message.get("Response") == "Success":
            return
        reason = _ORIGINATE_REASONS.get(str(message.get("Reason", "")), "failed")
        if action_id.startswith(SPY_ACTION_PREFIX):
            log.warning("spy from %s failed: the phone %s", message.get("Channel"), reason)
            return
        if not action_id.startswith(DIAL_ACTION_PREFIX):
            return
        uniqueid = action_id  # dial() uses the same id for the ActionID and the channel
        for interaction_id, call in list(self.calls.items()):
            if call.outbound and call.uniqueid == uniqueid and call.agent_channel is None:
                self._forget(interaction_id)
                self.bus.publish(
                    ContactEnded(interaction_id, self.clock(), f"dial failed: phone {reason}")
                )

    def _dial_failed(self, message: AmiMessage) -> None:
        """[cc-agents]' Dial ended without an answer. A device that cannot be dialled
        raises no DialEnd: this is then the only word that the offer is over."""
        channel = str(message.get("Channel", ""))
        device = str(message.get("Device", ""))
        status = str(message.get("DialStatus", "")).lower() or "chanunavail"
        for call in list(self.calls.values()):
            if call.channel != channel or call.ringing_agent is None:
                continue
            # A DialEnd already moved the offer on (and maybe rang another device).
            if call.ringing_device is None or call.ringing_device.lower() != device.lower():
                continue
            self._ring_failed(
                call,
                AgentNotAnswered(
                    call_id="", at=self.clock(), device=device, agent_channel="", reason=status
                ),
            )

    def _left_hold(self, channel: str) -> None:
        """One side of a held call hung up: the other is out of any bridge, in [cc-hold]'s
        music or [cc-hold-agent]'s Wait(7200), and nothing else would end it, so it is
        hung up too (whoever left ended the call)."""
        for call in self.calls.values():
            if not call.held or call.agent_channel is None:
                continue
            customer, agent = _legs(call)
            other = customer if channel == agent else agent if channel == customer else None
            if other is not None:
                call.held = False
                task = asyncio.create_task(self._hang_up_quietly(other))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _hang_up_quietly(self, channel: str) -> None:
        try:
            await self._action({"Action": "Hangup", "Channel": channel})
        except TelephonyError as exc:
            log.warning("could not hang up %s after the other side left hold: %s", channel, exc)

    def _domain(self, event: Any) -> None:
        if isinstance(event, CallStarted):
            self._started[event.call_id] = event
            for known_id, known in self.calls.items():
                if event.uniqueid == known.uniqueid or event.channel == known.channel:
                    self._by_call_id[event.call_id] = known_id
                    # A click-to-dial was linked by the Uniqueid we gave it, before its
                    # channel had a name.
                    known.channel = event.channel
            return
        found = self._by_call_id.get(event.call_id)
        if found is None:
            return
        interaction_id = found
        call = self.calls.get(interaction_id)
        if isinstance(event, CallAnswered) and call is not None and call.ringing_agent:
            call.agent_channel = event.agent_channel
            self.bus.publish(ContactAnswered(interaction_id, call.ringing_agent, event.at))
            # Answered once: a later bridge (a transfer's target) is not this agent's.
            call.ringing_agent = call.ringing_device = None
        elif isinstance(event, AgentNotAnswered) and call is not None:
            self._ring_failed(call, event)
        elif isinstance(event, CallHeld):
            self.bus.publish(ContactHeld(interaction_id, event.at))
        elif isinstance(event, CallUnheld):
            self.bus.publish(ContactUnheld(interaction_id, event.at))
        elif isinstance(event, CallEnded):
            cause = event.cause_text or ("gone while disconnected" if event.resynced else "")
            self.bus.publish(ContactEnded(interaction_id, event.at, cause or "hangup"))
            self.calls.pop(interaction_id, None)
            self._by_call_id.pop(event.call_id, None)
            self._started.pop(event.call_id, None)

    async def _resync(self) -> None:
        """After every login: what exists now. Calls that ended meanwhile are closed, and
        calls still waiting that this process does not know (it restarted) are queued
        again, keeping their place (their age is the interaction's start)."""
        channels = await self.ami.send({"Action": "CoreShowChannels"}, as_list=True)
        items = [m for m in channels if m.get("Event") == "CoreShowChannel"]
        for event in self.tracker.resync(items, self.clock()):
            self._domain(event)
        await self._adopt(items)
        await self._pick_up_strays(items)

    async def _pick_up_strays(self, items: list[Any]) -> None:
        """Callers waiting in the holding context that no interaction knows came while
        the daemon was down (their FastAGI failed, the dialplan went on to wait): they
        are sent back to the inbound context, to the number they dialled, to run the IVR
        now (which queues them like any call)."""
        known = {call.uniqueid for call in self.calls.values()}
        for item in items:
            uniqueid, channel = str(item.get("Uniqueid", "")), str(item.get("Channel", ""))
            if item.get("Context") != self.pbx.holding_context or uniqueid in known:
                continue
            try:
                reply = await self._action(
                    {"Action": "Getvar", "Channel": channel, "Variable": DID_VAR}
                )
                did = str(reply.get("Value") or "")
                if not did or did == "(null)":
                    log.warning("caller %s waits untagged and without %s: left", channel, DID_VAR)
                    continue
                await self._action(
                    {
                        "Action": "Redirect",
                        "Channel": channel,
                        "Context": self.pbx.inbound_context,
                        "Exten": did,
                        "Priority": "1",
                    }
                )
            except TelephonyError as exc:
                log.warning("could not pick up the waiting caller %s: %s", channel, exc)
                continue
            log.info("caller %s came while the daemon was away: sent to the IVR", channel)

    async def _adopt(self, items: list[Any]) -> None:
        live = {str(m.get("Uniqueid")): str(m.get("Channel")) for m in items}
        known = {call.uniqueid for call in self.calls.values()}
        now = self.clock()
        requeue: list[ContactQueued] = []
        async with self.sessionmaker.begin() as db:
            open_calls = (
                await db.scalars(
                    select(Interaction).where(
                        Interaction.channel == "voice",
                        Interaction.ended_at.is_(None),
                        Interaction.external_id.is_not(None),
                    )
                )
            ).all()
            for ix in open_calls:
                uniqueid = ix.external_id or ""
                if uniqueid in known:
                    continue
                if uniqueid not in live:
                    # Hung up while nobody was listening: close it, never leave it open.
                    ix.ended_at = datetime.fromtimestamp(now, UTC)
                    ix.end_cause = "ended while the daemon was away"
                    continue
                self._link(ix.id, live[uniqueid], uniqueid)
                if ix.answered_at is None and ix.queue is not None:
                    # As the IVR queued it: its priority and skills were kept for this.
                    priority, skills = contact_request.from_routing(ix.routing)
                    requeue.append(
                        ContactQueued(
                            interaction_id=ix.id,
                            channel="voice",
                            queue=ix.queue,
                            at=now,
                            address=ix.address,
                            customer_id=ix.customer_id,
                            ivr_path=list(ix.ivr_path or []),
                            priority=priority,
                            skills=skills,
                            ivr_inputs=dict(ix.ivr_inputs or {}),
                            enqueued_at=ix.started_at.timestamp(),
                        )
                    )
        for event in requeue:
            self.bus.publish(event)
        if requeue:
            log.info("%d waiting calls found on Asterisk and queued again", len(requeue))

    def _ring_failed(self, call: _Call, event: AgentNotAnswered) -> None:
        agent_id = call.ringing_agent
        if agent_id is None or event.reason in _OWN_DIAL_ENDINGS:
            return
        if not _same_device(call.ringing_device, event.device, event.agent_channel):
            return  # the end of an earlier agent's ring, already dealt with
        # [cc-agents] sends the caller back to [cc-holding] after a failed Dial; the
        # router's next move must not Redirect it there a second time.
        call.ringing_agent, call.ringing_device, call.back_in_holding = None, None, True
        self.bus.publish(ContactRingFailed(call.interaction_id, agent_id, event.at, event.reason))

    # --- the telephony port ---------------------------------------------------------

    async def ring_agent(
        self, interaction_id: int, agent_id: int, device: str, ring_seconds: float
    ) -> None:
        """Tag the caller's channel with the device, then Redirect it to the agent context."""
        call = self._call(interaction_id)
        _checked(device_name, device)  # it becomes the argument of the agent context's Dial
        # Noted before the first action: the agent may accept (or the DialEnd come back)
        # while the actions are still on their way.
        call.ringing_agent, call.ringing_device, call.back_in_holding = agent_id, device, False
        if self.phones is not None:
            self.phones.ringing(device)
        try:
            await self._action(
                {
                    "Action": "Setvar",
                    "Channel": call.channel,
                    "Variable": DEVICE_VAR,
                    "Value": device,
                }
            )
            await self._action(
                {
                    "Action": "Setvar",
                    "Channel": call.channel,
                    "Variable": RING_VAR,
                    "Value": str(max(1, int(ring_seconds))),
                }
            )
            await self._redirect(call, self.pbx.agent_context, "s")
        except TelephonyError:
            call.ringing_agent = call.ringing_device = None
            raise

    async def answer_for_agent(self, interaction_id: int, device: str) -> bool:
        """Only the phone can answer a call on a real PBX (False: the agent picks it up);
        a simulated one answers here."""
        if self.phones is None:
            return False
        call = self._call(interaction_id)
        if call.ringing_device is None or call.ringing_device.lower() != device.lower():
            raise TelephonyError(f"{device} is not ringing for {interaction_id}")
        self.phones.answer(device)
        return True

    async def return_to_waiting(self, interaction_id: int) -> None:
        """Back to music on hold in the holding context."""
        call = self._call(interaction_id)
        call.ringing_agent, call.ringing_device = None, None
        if call.back_in_holding:
            call.back_in_holding = False
            return
        await self._redirect(call, self.pbx.holding_context, "s")

    async def hangup(self, interaction_id: int) -> None:
        """Hang up the caller's channel."""
        call = self._call(interaction_id)
        await self._action({"Action": "Hangup", "Channel": call.channel})

    async def hold(self, interaction_id: int) -> None:
        """Both legs leave the bridge in one Redirect: the caller to music on hold, the
        agent's leg to a silent wait ([cc-hold] and [cc-hold-agent])."""
        call = self._connected(interaction_id)
        if call.held:
            raise TelephonyError(f"call {interaction_id} is already on hold", "telephony.held")
        customer, agent = _legs(call)
        await self._action(
            {
                "Action": "Redirect",
                "Channel": customer,
                "Context": HOLD_CONTEXT,
                "Exten": "s",
                "Priority": "1",
                "ExtraChannel": agent,
                "ExtraContext": HOLD_AGENT_CONTEXT,
                "ExtraExten": "s",
                "ExtraPriority": "1",
            }
        )
        call.held = True
        # A Redirect raises no Hold event: the hold is ours to report.
        self.bus.publish(ContactHeld(interaction_id, self.clock()))

    async def unhold(self, interaction_id: int) -> None:
        """Bridge the two legs again; when either hangs up after that, the other's
        dialplan hangs up too (the Bridge action resumes each at its next priority)."""
        call = self._connected(interaction_id)
        if not call.held:
            raise TelephonyError(f"call {interaction_id} is not on hold", "telephony.not_held")
        # [cc-hold] then knows that its MusicOnHold() ended for the bridge (and hangs up
        # when the call ends), not for want of a music-on-hold class.
        await self._action(
            {
                "Action": "Setvar",
                "Channel": _legs(call)[0],
                "Variable": UNHELD_VAR,
                "Value": "1",
            }
        )
        await self._action(
            {
                "Action": "Bridge",
                "Channel1": call.channel,
                "Channel2": call.agent_channel,
                "Tone": "no",
            }
        )
        call.held = False
        self.bus.publish(ContactUnheld(interaction_id, self.clock()))

    async def transfer(self, interaction_id: int, target: str) -> None:
        """Blind transfer: the caller's channel goes to the extension."""
        target = _checked(dial_string, target)
        call = self._call(interaction_id)
        await self._redirect(call, TRANSFER_CONTEXT, target)
        # The caller has left the contact center (a Redirect raises no BlindTransfer):
        # the agent's part ends now, and what the extension does is not ours to follow.
        now = self.clock()
        self._forget(interaction_id)
        self.bus.publish(ContactTransferred(interaction_id, target, now))
        self.bus.publish(ContactEnded(interaction_id, now, f"transferred to {target}"))

    async def dial(self, interaction_id: int, agent_id: int, device: str, number: str) -> None:
        """Ring the agent's device; when answered, it dials the number.

        The agent's leg gets a Uniqueid of our choosing (ChannelId) and the CTI tag, so
        the tracker follows it as a call from its first event and its answer and end
        reach the interaction like an inbound call's."""
        device, number = _checked(device_name, device), _checked(dial_string, number)
        uniqueid = f"{DIAL_ACTION_PREFIX}{interaction_id}"
        self._link(interaction_id, device, uniqueid)
        call = self.calls[interaction_id]
        call.outbound, call.ringing_agent, call.ringing_device = True, agent_id, device
        try:
            await self._action(
                {
                    "Action": "Originate",
                    "Channel": device,
                    "Context": OUTBOUND_CONTEXT,
                    "Exten": number,
                    "Priority": "1",
                    "Async": "true",
                    # Its OriginateResponse (the phone busy, not answered...) is found
                    # by this ActionID once the reply has come.
                    "ActionID": uniqueid,
                    "ChannelId": uniqueid,
                    # A list: one Variable header each (panoramisk repeats the key).
                    "Variable": [
                        f"{INTERACTION_VAR}={interaction_id}",
                        f"{self.tracker.config.tag_variable}={uniqueid}",
                    ],
                }
            )
        except TelephonyError:
            self.calls.pop(interaction_id, None)
            raise

    async def spy(self, supervisor_device: str, agent_device: str, mode: str) -> None:
        """ChanSpy on the agent's device from the supervisor's phone."""
        options = {"listen": "q", "whisper": "qw", "barge": "qB"}[mode]
        # The agent's device is ChanSpy's first argument: a `,` there would add options.
        supervisor_device = _checked(device_name, supervisor_device)
        agent_device = _checked(device_name, agent_device)
        await self._action(
            {
                "Action": "Originate",
                "Channel": supervisor_device,
                "Application": "ChanSpy",
                "Data": f"{agent_device},{options}",
                "Async": "true",
                "ActionID": f"{SPY_ACTION_PREFIX}{next(self._spies)}",
            }
        )

    async def end_waiting(self, interaction_id: int, action: str) -> None:
        """Maximum wait: voicemail, or the caller is let go."""
        call = self._call(interaction_id)
        if action == "voicemail":
            await self._redirect(call, VOICEMAIL_CONTEXT, "s")
        else:
            await self._action({"Action": "Hangup", "Channel": call.channel})

    # --- helpers --------------------------------------------------------------------

    def _link(self, interaction_id: int, channel: str, uniqueid: str) -> None:
        self.calls[interaction_id] = _Call(interaction_id, channel, uniqueid)
        for call_id, started in self._started.items():
            if started.uniqueid == uniqueid or started.channel == channel:
                self._by_call_id[call_id] = interaction_id

    def _forget(self, interaction_id: int) -> None:
        self.calls.pop(interaction_id, None)
        for call_id in [c for c, i in self._by_call_id.items() if i == interaction_id]:
            del self._by_call_id[call_id]

    def _call(self, interaction_id: int) -> _Call:
        call = self.calls.get(interaction_id)
        if call is None:
            raise TelephonyError(f"no call {interaction_id} on Asterisk", "telephony.no_call")
        return call

    def _connected(self, interaction_id: int) -> _Call:
        call = self._call(interaction_id)
        if call.agent_channel is None:
            raise TelephonyError(
                f"call {interaction_id} is not connected to an agent", "telephony.not_connected"
            )
        return call

    async def _redirect(self, call: _Call, context: str, extension: str) -> None:
        await self._action(
            {
                "Action": "Redirect",
                "Channel": call.channel,
                "Context": context,
                "Exten": extension,
                "Priority": "1",
            }
        )

    async def _action(self, action: dict[str, Any]) -> Any:
        try:
            return await self.ami.send(action)
        except AmiActionRefused as exc:
            raise TelephonyError(str(exc), "telephony.unsafe_input") from None
        except AmiNotConnected as exc:
            # Nothing reached Asterisk: the caller of the port may try again once it is back.
            raise TelephonyError(str(exc), "telephony.unavailable") from None
        except AmiError as exc:
            raise TelephonyError(str(exc)) from None

    def _state(self, component: str, state: str, error: str | None) -> None:
        if self.on_state is not None:
            self.on_state(component, state, error)


def _checked(check: Callable[[str], str], value: str) -> str:
    """`check(value)`, with its RoutingError as the port's TelephonyError."""
    try:
        return check(value)
    except RoutingError as exc:
        raise TelephonyError(exc.message, exc.error_id) from None


def _direct_outcome(direct: DirectQueueLike) -> IvrOutcome:
    """A simulated call placed straight into a queue, as if its IVR had queued it."""
    return IvrOutcome(
        outcome="queued",
        command=ivr.Queue(direct.queue, dict(direct.skills), direct.priority, {}),
        path=list(direct.ivr_path),
        inputs=dict(direct.ivr_inputs),
        skills=dict(direct.skills),
        priority=direct.priority,
        language=None,
        customer_id=None,
        tier=None,
    )


def _legs(call: _Call) -> tuple[str, str]:
    """(customer's leg, agent's leg) of a connected call."""
    assert call.agent_channel is not None
    if call.outbound:
        return call.agent_channel, call.channel
    return call.channel, call.agent_channel


def _same_device(ringing: str | None, device: str, agent_channel: str) -> bool:
    """Does this failed leg belong to the device we rang? `PJSIP/1001` rings as
    `PJSIP/1001-0000002a`; Asterisk keeps the technology's case, people may not."""
    if ringing is None:
        return False
    wanted = ringing.lower()
    return device.lower() == wanted or agent_channel.lower().startswith(wanted + "-")
