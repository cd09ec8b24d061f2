"""SimulatedAsterisk: the model, the AMI listener, FastAGI sessions and phones, wired up.

The shell around the pure model: it arms the timers the model asks for, rings the
simulated phones, runs an AGI session per call against the daemon's FastAGI server, and
sends every event to the AMI sessions. It learns what the daemon did only as a real
Asterisk would: the channel variables it sets (CC_INTERACTION_ID, CC_IVR_OUTCOME), the
Dials its dialplan runs (a Dial from the agent context rings an agent's phone), and the
actions it sends (PJSIPNotify `Event: talk` answers a ringing phone). A `Local/` device
is a channel pair whose `;2` half runs the dialplan (its Answer() answers, its Hangup()
hangs up), with no phone policy. Use it for demos, tests and load:

    sim = SimulatedAsterisk(ami_port=0, agi_address=("127.0.0.1", 4573))
    await sim.start()
    sim.phones.set("PJSIP/1001", PhonePolicy(answer_after=0.2, talk_seconds=3))
    call = sim.place_call("5551009", "5000", digits=["2"])
    await call.ended.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from adapters.simasterisk import dialplan as dialplan_module
from adapters.simasterisk import local_channels
from adapters.simasterisk.agi_client import AgiSession
from adapters.simasterisk.ami_server import Action, ActionResult, AmiServer, error, response
from adapters.simasterisk.model import (
    AgiHangup,
    Connected,
    Gone,
    Model,
    ModelError,
    Outcome,
    Ring,
    StartAgi,
    Timer,
)
from adapters.simasterisk.phones import CALLER, PhonePolicy, Phones

log = logging.getLogger(__name__)

# Channel variables the daemon's FastAGI sets (the sample dialplan's contract with it).
INTERACTION_VAR = "CC_INTERACTION_ID"
OUTCOME_VAR = "CC_IVR_OUTCOME"


@dataclass(slots=True)
class SimCall:
    """One inbound call placed by the simulator, and what happened to it."""

    number: str
    did: str
    name: str
    digits: list[str]
    patience: float | None
    talk_seconds: float | None
    hangup_by: str | None
    placed_at: float
    uniqueid: str = ""
    channel: str = ""
    agi_commands: list[str] = field(default_factory=list)
    connected_at: float | None = None
    device: str | None = None
    agent_leg: str | None = None
    ended_at: float | None = None
    cause: int | None = None
    abandoned: bool = False  # the caller gave up before talking to anyone
    # The FastAGI script to run instead of the dialplan's (`ivr/sales`, `queue/billing?..`),
    # as if the number dialled had its own AGI() line.
    agi_script: str | None = None
    interaction_id: int | None = None  # the daemon's, from CC_INTERACTION_ID
    # How the IVR ended: CC_IVR_OUTCOME when the daemon set it; else "queued" (it tagged
    # the call and sent it on to wait) or "caller_hangup"; None when no IVR took the call.
    ivr_outcome: str | None = None
    left_ivr: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class SimulatedAsterisk:
    """A loopback Asterisk: AMI on `ami_host:ami_port`, calls into FastAGI `agi_address`."""

    def __init__(
        self,
        ami_host: str = "127.0.0.1",
        ami_port: int = 0,
        agi_address: tuple[str, int] = ("127.0.0.1", 4573),
        *,
        username: str = "cti",
        secret: str = "cti-secret",
        dialplan_path: Path | None = None,
        phones: Phones | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        auth_fail_delay: float = 1.0,
        prompt_seconds: float = 0.0,
        timeout_scale: float = 1.0,
        first_sequence: int = 0,
        agent_context: str = "cc-agents",
    ) -> None:
        plan = dialplan_module.load(dialplan_path or dialplan_module.SAMPLE)
        self.model = Model(plan, agi_address=agi_address, seed=seed, first_sequence=first_sequence)
        self.clock = clock
        self.phones = phones or Phones()
        self.prompt_seconds = prompt_seconds
        self.timeout_scale = timeout_scale
        self.agent_context = agent_context
        # Every PJSIPNotify received: (endpoint or channel, its Variable headers).
        self.notifies: list[tuple[str, list[str]]] = []
        # The PJSIP endpoints configured (pjsip.conf), lower case; None: any name is one.
        self.endpoints: set[str] | None = None
        self.ami = AmiServer(
            self,
            host=ami_host,
            port=ami_port,
            username=username,
            secret=secret,
            auth_fail_delay=auth_fail_delay,
            clock=clock,
        )
        self.calls: dict[str, SimCall] = {}  # by the caller channel's Uniqueid
        self.agi_sessions: dict[str, AgiSession] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._patience: dict[str, asyncio.TimerHandle] = {}
        self._running = False

    # --- life cycle --------------------------------------------------------------------

    @property
    def ami_port(self) -> int:
        """The AMI port (the real one once started with port 0)."""
        return self.ami.port

    def set_agi_address(self, host: str, port: int) -> None:
        """Where AGI() connects from now on (the daemon's FastAGI port)."""
        self.model.agi_address = (host, port)

    async def start(self) -> None:
        """Listen for AMI."""
        self._running = True
        await self.ami.start()

    async def stop(self) -> None:
        """Stop timers and sessions, close AMI."""
        self._running = False
        for handle in [*self._timers, *self._patience.values()]:
            handle.cancel()
        self._timers.clear()
        self._patience.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.ami.stop()

    async def drop_ami_connections(self) -> None:
        """Cut every AMI session (the daemon must reconnect and resync)."""
        await self.ami.drop_all()

    def set_phone(self, device: str, policy: PhonePolicy) -> None:
        """Give a device a policy (answer after, busy, never, talk time)."""
        self.phones.set(device, policy)

    # --- calls -------------------------------------------------------------------------

    def place_call(
        self,
        number: str,
        did: str = "5000",
        *,
        name: str = "",
        digits: list[str] | tuple[str, ...] = (),
        patience: float | None = None,
        talk_seconds: float | None = None,
        hangup_by: str | None = None,
        agi_script: str | None = None,
    ) -> SimCall:
        """A call from `number` to `did` arrives on the trunk.

        digits: what the caller keys, one entry per GET DATA ("hangup" hangs up there);
        patience: seconds after which a caller not yet talking to an agent hangs up;
        talk_seconds / hangup_by: override the answering phone's policy for this call;
        agi_script: the FastAGI script its AGI() runs instead of the dialplan's.
        """
        now = self.clock()
        call = SimCall(
            number, did, name, list(digits), patience, talk_seconds, hangup_by, placed_at=now
        )
        call.agi_script = agi_script
        channel, outcome = self.model.inbound(number, name, did, now)
        call.uniqueid, call.channel = channel.uniqueid, channel.name
        self.calls[call.uniqueid] = call
        if patience is not None:
            loop = asyncio.get_running_loop()
            self._patience[call.uniqueid] = loop.call_later(patience, self._give_up, call)
        self.apply(outcome)
        return call

    def hang_up_caller(self, call: SimCall) -> None:
        """The caller hangs up now."""
        self.apply(self.model.remote_hangup(call.uniqueid, self.clock()))

    def live_calls(self) -> list[SimCall]:
        """Calls whose caller channel still exists."""
        return [c for c in self.calls.values() if c.ended_at is None]

    def _give_up(self, call: SimCall) -> None:
        self._patience.pop(call.uniqueid, None)
        if call.ended_at is None and call.connected_at is None:
            call.abandoned = True
            self.hang_up_caller(call)

    # --- the model's effects -----------------------------------------------------------

    def apply(self, outcome: Outcome) -> None:
        """Send the events, then carry out the effects, in order."""
        self.ami.broadcast(outcome.events)
        for effect in outcome.effects:
            if isinstance(effect, StartAgi):
                self._start_agi(effect)
            elif isinstance(effect, AgiHangup):
                session = self.agi_sessions.get(effect.uniqueid)
                if session is not None:
                    session.caller_hung_up()
            elif isinstance(effect, Timer):
                self._later(effect.seconds, self._timer, effect.uniqueid, effect.token)
            elif isinstance(effect, Ring):
                self._ring(effect)
            elif isinstance(effect, Connected):
                self._connected(effect)
            elif isinstance(effect, Gone):
                self._gone(effect)

    def _later(self, seconds: float, fn: Callable[..., None], *args: object) -> None:
        if not self._running:
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            fn(*args)

        handle = loop.call_later(max(0.0, seconds), fire)
        self._timers.add(handle)

    def _timer(self, uniqueid: str, token: int) -> None:
        self.apply(self.model.timer(uniqueid, token, self.clock()))

    def _start_agi(self, effect: StartAgi) -> None:
        call = self.calls.get(effect.uniqueid)
        keys = call.digits if call is not None else []
        if call is not None and call.agi_script is not None:
            effect = _with_script(effect, call.agi_script)
        session = AgiSession(
            self,
            effect,
            keys,
            prompt_seconds=self.prompt_seconds,
            timeout_scale=self.timeout_scale,
        )
        if call is not None:
            session.commands = call.agi_commands
        self.agi_sessions[effect.uniqueid] = session
        task = asyncio.ensure_future(self._run_agi(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_agi(self, session: AgiSession) -> None:
        try:
            await session.run()
        except Exception:
            log.exception("simulated AGI session of %s failed", session.uniqueid)
        finally:
            if self.agi_sessions.get(session.uniqueid) is session:
                del self.agi_sessions[session.uniqueid]
            call = self.calls.get(session.uniqueid)
            if call is not None and not call.left_ivr.is_set():
                call.ivr_outcome = _ivr_outcome(session, call.interaction_id)
                call.left_ivr.set()

    def variable_set(self, uniqueid: str, name: str, value: str) -> None:
        """The daemon set a variable on a channel (AGI SET VARIABLE or AMI Setvar)."""
        call = self.calls.get(uniqueid)
        if call is not None and name == INTERACTION_VAR and value.isdigit():
            call.interaction_id = int(value)

    def _ring(self, effect: Ring) -> None:
        agent = bool(effect.context) and effect.context == self.agent_context
        policy = self.phones.rang(effect.device, agent=agent)
        uid = effect.uniqueid
        self._later(policy.ring_delay, lambda: self.apply(self.model.ringing(uid, self.clock())))
        if policy.busy:
            self._later(
                policy.ring_delay, lambda: self.apply(self.model.reject(uid, 17, self.clock()))
            )
        elif policy.answer_after is not None:
            self._later(
                policy.ring_delay + policy.answer_after,
                lambda: self.apply(self.model.answer(uid, self.clock())),
            )

    def _connected(self, effect: Connected) -> None:
        call = self.calls.get(effect.caller)
        policy = self.phones.policy(effect.device)
        if call is None:
            self._originated_connected(effect)
            return
        call.connected_at, call.device, call.agent_leg = self.clock(), effect.device, effect.leg
        handle = self._patience.pop(call.uniqueid, None)
        if handle is not None:
            handle.cancel()
        leg = self.model.get(effect.leg)
        # A Local device has no phone policy: its `;2` half's dialplan talks and hangs
        # up; only the call's own talk time applies, and its user hanging up is that
        # `;2` half going.
        phone = local_channels.partner_of(self.model, leg) if leg is not None else None
        local = leg is not None and local_channels.is_local(leg)
        talk = call.talk_seconds
        if talk is None and not local:
            talk = policy.talk_seconds
        if talk is None:
            return
        by = call.hangup_by or policy.hangup_by
        agent_side = phone.uniqueid if phone is not None else effect.leg
        target = call.uniqueid if by == CALLER else agent_side
        self._later(talk, lambda: self.apply(self.model.remote_hangup(target, self.clock())))

    def _originated_connected(self, effect: Connected) -> None:
        # A click-to-dial: the phone that was originated talks for its policy's time,
        # then its user hangs up.
        dialer = self.model.get(effect.caller)
        if dialer is None or local_channels.is_local(dialer):
            # A Local device's `;2` half runs its dialplan: that is its user.
            return
        talk = self.phones.policy(dialer.device).talk_seconds
        if talk is not None:
            uid = dialer.uniqueid
            self._later(talk, lambda: self.apply(self.model.remote_hangup(uid, self.clock())))

    def _gone(self, effect: Gone) -> None:
        call = self.calls.get(effect.uniqueid)
        if call is None or call.ended_at is not None:
            return
        call.ended_at, call.cause = self.clock(), effect.cause
        handle = self._patience.pop(call.uniqueid, None)
        if handle is not None:
            handle.cancel()
        call.ended.set()

    # --- AMI actions -------------------------------------------------------------------

    async def run_action(self, action: Action) -> ActionResult | None:
        """Carry out a call action for the AMI listener; None if it is not one."""
        name = action.name.lower()
        now = self.clock()
        model = self.model
        try:
            if name == "coreshowchannels":
                reply = response(action, EventList="start", Message="Channels will follow")
                return ActionResult(reply, model.core_show_channels(action.action_id, now))
            if name == "setvar":
                outcome = model.setvar(
                    action.get("Channel"), action.get("Variable"), action.get("Value")
                )
                found = model.by_name(action.get("Channel")) if action.get("Channel") else None
                if found is not None:
                    self.variable_set(found.uniqueid, action.get("Variable"), action.get("Value"))
                return ActionResult(response(action, Message="Variable Set"), outcome=outcome)
            if name == "getvar":
                channel = action.get("Channel")
                found = model.by_name(channel) if channel else None
                if channel and found is None:
                    return ActionResult(error(action, "No such channel"))
                variable = action.get("Variable")
                if not variable:
                    return ActionResult(error(action, "No variable specified"))
                value = model.getvar(found, variable)
                return ActionResult(response(action, Variable=variable, Value=value))
            if name == "redirect":
                return self._redirect(action, now)
            if name == "bridge":
                outcome = model.bridge(action.get("Channel1"), action.get("Channel2"), now)
                return ActionResult(
                    response(action, Message="Channels have been bridged"), outcome=outcome
                )
            if name == "hangup":
                cause = action.get("Cause")
                outcome = model.ami_hangup(
                    action.get("Channel"), now, int(cause) if cause.isdigit() else 16
                )
                return ActionResult(response(action, Message="Channel Hungup"), outcome=outcome)
            if name == "originate":
                return await self._originate(action, now)
            if name == "pjsipnotify":
                return self._notify(action, now)
        except ModelError as exc:
            return ActionResult(error(action, str(exc)))
        return None

    def _redirect(self, action: Action, now: float) -> ActionResult:
        channel = action.get("Channel")
        if not channel:
            return ActionResult(error(action, "Channel not specified"))
        moves = [
            (channel, action.get("Context"), action.get("Exten"), action.get("Priority") or "1")
        ]
        extra = action.get("ExtraChannel")
        if extra:
            moves.append(
                (
                    extra,
                    action.get("ExtraContext") or action.get("Context"),
                    action.get("ExtraExten") or action.get("Exten"),
                    action.get("ExtraPriority") or action.get("Priority") or "1",
                )
            )
        outcome = self.model.redirect(moves, now)
        message = "Dual Redirect successful" if extra else "Redirect successful"
        return ActionResult(response(action, Message=message), outcome=outcome)

    def _notify(self, action: Action, now: float) -> ActionResult:
        """PJSIPNotify (res_pjsip_notify): a NOTIFY to an endpoint, a URI or inside a
        channel's dialog. Every phone here honours `Event: talk` (remote answer): the
        one ringing picks up; a phone that is not ringing ignores it, as a real one does."""
        endpoint, uri, channel = action.get("Endpoint"), action.get("URI"), action.get("Channel")
        if sum(1 for target in (endpoint, uri, channel) if target) != 1:
            return ActionResult(
                error(action, "PJSIPNotify requires an endpoint name, a SIP URI or a channel.")
            )
        variables = action.all("Variable") or [v for v in [action.get("Variable")] if v]
        if not variables and not action.get("Option"):
            return ActionResult(error(action, "PJSIPNotify requires an Option or a Variable."))
        legs = []
        if channel:
            found = self.model.by_name(channel)
            if found is None or found.tech.upper() != "PJSIP":
                return ActionResult(error(action, f"Unable to find channel {channel}"))
            legs = [found]
        elif endpoint:
            name = endpoint.split("/", 1)[1] if "/" in endpoint else endpoint
            if self.endpoints is not None and name.lower() not in self.endpoints:
                return ActionResult(error(action, f"Unable to retrieve endpoint {name}"))
            device = f"pjsip/{name}".lower()
            legs = [c for c in self.model.channels.values() if c.device.lower() == device]
        self.notifies.append((endpoint or uri or channel, list(variables)))
        outcome = None
        talk = any(
            key.strip().lower() == "event" and value.strip().lower() == "talk"
            for key, _, value in (v.partition("=") for v in variables)
        )
        ringing = [c for c in legs if c.state != 6 and (c.dialed_by or c.originate)]
        if talk and ringing:
            outcome = self.model.answer(ringing[0].uniqueid, now)
        return ActionResult(response(action, Message="NOTIFY sent"), outcome=outcome)

    async def _originate(self, action: Action, now: float) -> ActionResult:
        variables: dict[str, str] = {}
        for item in action.all("Variable"):
            for pair in item.split(","):
                key, _, value = pair.partition("=")
                if key:
                    variables[key.strip()] = value
        caller_id = None
        if action.get("CallerID"):
            text = action.get("CallerID")
            if "<" in text:
                name, _, rest = text.partition("<")
                name = name.strip()
                if len(name) >= 2 and name[0] == name[-1] == '"':
                    # Asterisk's callerid parser: inside quotes, `\x` is `x`.
                    name = re.sub(r"\\(.)", r"\1", name[1:-1])
                caller_id = (rest.rstrip(">").strip(), name)
            else:
                caller_id = (text, "")
        timeout_ms = action.get("Timeout")
        is_async = action.get("Async").lower() in ("true", "yes", "1")
        channel, outcome = self.model.originate(
            action.get("Channel"),
            now,
            action_id=action.action_id,
            context=action.get("Context"),
            exten=action.get("Exten"),
            priority=int(action.get("Priority") or "1"),
            application=action.get("Application"),
            data=action.get("Data"),
            variables=variables,
            caller_id=caller_id,
            timeout=int(timeout_ms) / 1000 if timeout_ms.isdigit() else 30.0,
            respond=is_async,
            channel_id=action.get("ChannelId") or None,
        )
        if is_async:
            return ActionResult(
                response(action, Message="Originate successfully queued"), outcome=outcome
            )
        # A synchronous Originate: the reply waits for the call's fate (after the events
        # it caused, as PROTOCOL-NOTES says), and no OriginateResponse is sent.
        if channel is None:
            return ActionResult(error(action, "Originate failed"), outcome=outcome)
        self.apply(outcome)
        # A Local device's dialplan may have answered it already (originate cleared).
        pending = channel.originate
        if pending is None or await self._wait_answered(channel.uniqueid, pending.timeout):
            return ActionResult(response(action, Message="Originate successfully queued"))
        return ActionResult(error(action, "Originate failed"))

    async def _wait_answered(self, uniqueid: str, within: float) -> bool:
        deadline = self.clock() + within + 1
        while self.clock() < deadline:
            ch = self.model.get(uniqueid)
            if ch is None:
                return False
            if ch.originate is None:
                return True
            await asyncio.sleep(0.05)
        return False


def _ivr_outcome(session: AgiSession, interaction_id: int | None) -> str | None:
    """How the daemon's IVR ended, from what it did to the channel."""
    if interaction_id is None:
        return None
    if OUTCOME_VAR in session.variables:
        return session.variables[OUTCOME_VAR]
    return "caller_hangup" if session.caller_left else "queued"


def _with_script(effect: StartAgi, script: str) -> StartAgi:
    """The same AGI() with another FastAGI script (path and query)."""
    env = []
    for key, value in effect.env:
        if key == "agi_network_script":
            value = script
        elif key == "agi_request":
            value = f"agi://{urlsplit(value).netloc}/{script}"
        env.append((key, value))
    return StartAgi(effect.uniqueid, effect.host, effect.port, env)
