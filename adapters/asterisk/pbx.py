"""Asterisk behind the telephony port.

FastAGI runs the IVR (`agi://daemon:4573/ivr/<flow>`): the session tags the channel with
the interaction id (CC_INTERACTION_ID) first; when the flow queues the call it sends it to
the holding context (music on hold) before handing it to routing, and any other way out
is named in CC_IVR_OUTCOME. A number that skips the IVR uses
`agi://daemon:4573/queue/<queue>?priority=..&skill=name:level&step=..&input.name=..`
(what a dialplan IVR of its own gathered: see adapters/asterisk/attached.py). AMI carries
the rest: the call tracker turns its events into contact events on the bus, and the
port's commands become AMI actions. Delivery: Setvar of the agent's device on the
caller's channel, then a Redirect into the agent context, which Dials it
(contrib/asterisk/extensions_contact_center.conf); the caller goes back to the holding
context when nobody answers, and the DialEnd that says so moves the offer on at once (a
device that cannot be dialled raises no DialEnd: the dialplan's CcRingFailed user event
does it). The desktop's Accept answers the phone only where `pbx.remote_answer` says it
can (a SIP NOTIFY `Event: talk`); otherwise the agent picks up the phone. Hold from the
desktop: a Redirect of both legs (caller to music on hold, agent to a silent wait), and
unhold is a Bridge action joining them again; either side hanging up while held hangs up
the other. Click-to-dial and spy are async Originates followed by their
OriginateResponse. After every AMI login a resync closes calls that ended, queues again
the known ones still waiting, and sends callers who came while the daemon was down
(waiting untagged in the holding context) through the IVR.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.agi.channel import AgiChannel, AgiError
from adapters.agi.codec import AgiEnvironment
from adapters.agi.server import FastAgiServer, ListenError
from adapters.ami.calls import TRACKED_EVENTS, CallTracker, TrackerConfig
from adapters.ami.client import AmiActionRefused, AmiClient, AmiError, AmiNotConnected
from adapters.ami.framing import AmiMessage
from adapters.asterisk.attached import attached_request
from adapters.asterisk.call_contacts import CallContacts, ContactEvent, TrackedCall
from adapters.asterisk.channel import VOICE
from adapters.asterisk.ivr import AgiCaller
from adapters.asterisk.ivr_runner import (
    IvrOutcome,
    hand_to_routing,
    record_ivr_end,
    record_ivr_path,
    run_flow,
)
from adapters.asterisk.settings import PbxConfig
from crm_store.fast_intake import SqliteIntake
from crm_store.models import Interaction
from crm_store.phones import clean_name
from ivr_flows import interpreter as ivr
from ivr_flows.model import Flow
from routing import contact_request
from routing.dialing import device_name, dial_string
from routing.events import (
    ContactEnded,
    ContactHeld,
    ContactQueued,
    ContactTransferred,
    ContactUnheld,
)
from routing.intake import OpenedContact, StoreOutbox, open_contact
from routing.ports import EventPublisher
from routing.router import RoutingError
from routing.telephony import TelephonyError

log = logging.getLogger(__name__)

INTERACTION_VAR = "CC_INTERACTION_ID"
DEVICE_VAR = "CC_AGENT_DEVICE"
RING_VAR = "CC_RING_SECONDS"
UNHELD_VAR = "CC_UNHELD"  # set just before unhold's Bridge (see [cc-hold])
DID_VAR = "CC_DID"  # the number the caller dialled, set by the inbound context
OUTCOME_VAR = "CC_IVR_OUTCOME"  # how the IVR ended, when it did not queue the call
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


class AsteriskPbx:
    """The telephony port on Asterisk, over AMI and FastAGI."""

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
        ivr_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        outbox: StoreOutbox | None = None,
    ) -> None:
        self.fast_intake = fast_intake
        # Where contacts and their updates wait while the store cannot be written.
        self.outbox = outbox
        self.pbx = pbx
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.flows = flows
        self.default_flow = default_flow
        self.region = region
        self.on_state = on_state
        self.clock = clock
        # The IVR's wall clock (opening hours), apart from event times; tests pin it.
        self.ivr_clock = ivr_clock
        # The configured inbound context, besides the sample's (calls start there).
        contexts = TrackerConfig().inbound_contexts | {pbx.inbound_context}
        self.tracker = CallTracker(TrackerConfig(inbound_contexts=contexts))
        # Which tracked call is which contact, and what its events mean (pure, shared
        # with `contact-center replay`).
        self.contacts = CallContacts()
        # Set once ring_agent's actions are done: a remote answer must not reach the phone
        # before the Dial does (a phone that is not ringing ignores it).
        self._ring_sent: dict[int, asyncio.Event] = {}
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
            {"ivr": self._ivr_session, "queue": self._queue_session},
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
        """`agi://daemon/ivr/<flow>`: the caller goes through an IVR flow."""
        flow = self.flows.get(unquote(env.subpath) or self.default_flow)
        if flow is None:
            await channel.verbose(f"no IVR flow {env.subpath!r}")
            await channel.hangup()
            return
        opened = await self._open(env, channel)
        outcome = await run_flow(
            flow,
            AgiCaller(channel),
            caller_number=env.get("agi_callerid"),
            interaction_id=opened.interaction_id,
            sessionmaker=self.sessionmaker,
            region=self.region,
            clock=self.ivr_clock,
            outbox=self.outbox,
        )
        await self._leave_ivr(env, channel, opened, outcome)

    async def _queue_session(self, env: AgiEnvironment, channel: AgiChannel) -> None:
        """`agi://daemon/queue/<queue>?...`: a number that skips the IVR (or whose own
        dialplan IVR already asked); the query says what it asks of routing."""
        if not env.subpath:
            await channel.verbose("no queue named in the AGI script")
            await channel.hangup()
            return
        request = attached_request(unquote(env.subpath), env.query)
        for problem in request.problems:
            log.warning("FastAGI %s: %s (ignored)", env.network_script, problem)
        opened = await self._open(env, channel)
        await record_ivr_path(
            self.sessionmaker,
            opened.interaction_id,
            request.path,
            request.inputs,
            outbox=self.outbox,
        )
        await self._leave_ivr(env, channel, opened, request.outcome)

    async def _open(self, env: AgiEnvironment, channel: AgiChannel) -> OpenedContact:
        """The contact of a call that reached FastAGI, its channel tagged with its id."""
        caller = env.get("agi_callerid") or ""
        opened = await open_contact(
            self.sessionmaker,
            channel=VOICE.name,
            address=caller if caller and caller != "unknown" else None,
            # The caller id name, shown on the pop of a caller the CRM does not know.
            address_name=env.get("agi_calleridname"),
            address_kind=VOICE.address_kind,
            region=self.region,
            external_id=env.get("agi_uniqueid"),
            at=self.clock(),
            fast=self.fast_intake,
            outbox=self.outbox,
        )
        self._link(opened.interaction_id, env.get("agi_channel", ""), env.get("agi_uniqueid", ""))
        # First, so the dialplan (and whoever reads the channel) knows the interaction
        # however the call leaves; a caller already gone is the IVR's to notice.
        try:
            await channel.set_variable(INTERACTION_VAR, str(opened.interaction_id))
        except AgiError as exc:
            log.info("interaction %s: could not tag its channel: %s", opened.interaction_id, exc)
        return opened

    async def _leave_ivr(
        self, env: AgiEnvironment, channel: AgiChannel, opened: OpenedContact, outcome: IvrOutcome
    ) -> None:
        caller = env.get("agi_callerid") or ""
        command = outcome.command
        try:
            if isinstance(command, ivr.Queue):
                await channel.continue_at(self.pbx.holding_context, "s")
                await hand_to_routing(
                    self.bus,
                    self.sessionmaker,
                    opened,
                    outcome,
                    command.queue,
                    address=caller or None,
                    address_name=clean_name(env.get("agi_calleridname")),
                    dnis=env.get("agi_extension", ""),
                    at=self.clock(),
                    outbox=self.outbox,
                )
                return
            # Every other way out ends the contact here, whatever Asterisk does next.
            self._forget(opened.interaction_id)
            await record_ivr_end(
                self.sessionmaker,
                opened.interaction_id,
                outcome,
                datetime.fromtimestamp(self.clock(), UTC),
                outbox=self.outbox,
            )
            if outcome.outcome == "caller_hangup":
                return
            await channel.set_variable(OUTCOME_VAR, outcome.outcome)
            if isinstance(command, ivr.Transfer):
                await channel.continue_at(TRANSFER_CONTEXT, command.extension)
            elif isinstance(command, ivr.Voicemail):
                await channel.continue_at(VOICEMAIL_CONTEXT, command.mailbox)
            else:
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
            self._publish(self.contacts.ring_failed(call, device, "", status, self.clock()))

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
        """A call-tracker event, as contact events on the bus (the shared mapping)."""
        self._publish(self.contacts.feed(event))

    def _publish(self, events: list[ContactEvent]) -> None:
        for event in events:
            if isinstance(event, ContactEnded):
                self._ring_sent.pop(event.interaction_id, None)
            self.bus.publish(event)

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
                            address_name=ix.address_name,
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
        sent = self._ring_sent[interaction_id] = asyncio.Event()
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
        except TelephonyError as exc:
            call.ringing_agent = call.ringing_device = None
            if "no such channel" in str(exc).lower():
                # The caller's channel is gone and no Hangup told us (it went while AMI
                # was away, or a dialplan of its own never tagged it): the contact is over.
                self.bus.publish(ContactEnded(interaction_id, self.clock(), "caller gone"))
                raise TelephonyError(str(exc), "telephony.no_call") from None
            raise
        finally:
            sent.set()

    async def answer_for_agent(self, interaction_id: int, device: str) -> bool:
        """The desktop's Accept: tell the ringing phone to answer (`pbx.remote_answer`).
        False when the agent must pick it up: no remote answer configured, a device that
        is not a PJSIP endpoint (Local/, a trunk), or Asterisk refused the NOTIFY."""
        call = self._call(interaction_id)
        if call.ringing_device is None or call.ringing_device.lower() != device.lower():
            raise TelephonyError(f"{device} is not ringing for {interaction_id}")
        endpoint = pjsip_endpoint(device)
        if self.pbx.remote_answer == "none" or endpoint is None:
            return False
        # Accept can come while the ring's actions are still on their way (each is
        # bounded by the AMI action timeout, and ring_agent always sets this).
        sent = self._ring_sent.get(interaction_id)
        if sent is not None:
            await sent.wait()
        if call.ringing_device is None:
            return False  # the ring could not be sent, or was answered meanwhile
        try:
            await self._action(
                {"Action": "PJSIPNotify", "Endpoint": endpoint, "Variable": "Event=talk"}
            )
        except TelephonyError as exc:
            log.warning("remote answer of %s refused (%s): the agent picks up", device, exc)
            return False
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

    @property
    def calls(self) -> dict[int, TrackedCall]:
        """The calls the daemon handles as contacts, by interaction id."""
        return self.contacts.calls

    def _link(self, interaction_id: int, channel: str, uniqueid: str) -> None:
        self.contacts.link(interaction_id, channel, uniqueid)

    def _forget(self, interaction_id: int) -> None:
        self.contacts.forget(interaction_id)
        self._ring_sent.pop(interaction_id, None)

    def _call(self, interaction_id: int) -> TrackedCall:
        call = self.calls.get(interaction_id)
        if call is None:
            raise TelephonyError(f"no call {interaction_id} on Asterisk", "telephony.no_call")
        return call

    def _connected(self, interaction_id: int) -> TrackedCall:
        call = self._call(interaction_id)
        if call.agent_channel is None:
            raise TelephonyError(
                f"call {interaction_id} is not connected to an agent", "telephony.not_connected"
            )
        return call

    async def _redirect(self, call: TrackedCall, context: str, extension: str) -> None:
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


def _legs(call: TrackedCall) -> tuple[str, str]:
    """(customer's leg, agent's leg) of a connected call."""
    assert call.agent_channel is not None
    if call.outbound:
        return call.agent_channel, call.channel
    return call.channel, call.agent_channel


_PJSIP_ENDPOINT = re.compile(r"^pjsip/([A-Za-z0-9_.+-]+)$", re.IGNORECASE)


def pjsip_endpoint(device: str) -> str | None:
    """The PJSIP endpoint a device dials (`PJSIP/1001` -> `1001`), or None when it is not
    one endpoint (a Local/ channel, a trunk's `PJSIP/number@trunk`, several devices)."""
    match = _PJSIP_ENDPOINT.match(device)
    return match.group(1) if match else None
