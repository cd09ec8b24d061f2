"""The routing service: the contact life cycle wired to the bus, the store, the channels and
browsers.

Every contact on every channel comes in as a `ContactQueued` event and goes through the
same router. The life cycle (`routing.lifecycle`, pure) decides; this shell carries out
its effects in order: for an offer, record the explanation on the interaction, pop the
agent's screen, then deliver it on the channel (ring the phone). The router's deadlines
(offer timeouts, wrap-up ends, relaxation steps, maximum waits) are driven by one timer
task. Agents' requests (status, accept, call actions) come in as method calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_store import agent_states, audit, interactions
from crm_store.actors import Actor
from crm_store.models import Customer, Interaction, User
from crm_store.phones import try_normalize_phone
from crm_store.screen_pop import ScreenPopReader
from routing import contact_request
from routing.channels import Capability, ChannelPort, Channels
from routing.definitions import policy_from_config, queues_from_config
from routing.dialing import dial_string, transfer_target
from routing.events import (
    ContactAnswered,
    ContactEnded,
    ContactHeld,
    ContactQueued,
    ContactRingFailed,
    ContactTransferred,
    ContactUnheld,
)
from routing.floor_view import AgentInfo, FloorView
from routing.intake import open_contact, outbox_for, store_unavailable
from routing.lifecycle import (
    AgentChanged,
    ContactChanged,
    ContactInfo,
    ContactLifeCycle,
    Decided,
    Deliver,
    Effect,
    LeaveQueue,
    OfferClosed,
    Persist,
    Record,
    Requeue,
    StatusSaved,
    stored_time,
)
from routing.model import Agent
from routing.ports import EventPublisher, Notifier
from routing.router import Router, RoutingError
from routing.settings import RoutingSource
from routing.stats import LifeCycleEvent, Statistics, Tally
from routing.telephony import Telephony, TelephonyError
from routing.writer import InteractionWriter, as_stored, load_events

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0  # how soon a channel's offers are tried again after it was unreachable
# Who sets an unconfirmed agent offline after a restart, in the audit log.
RESTART_CHECK = Actor(None, "system", "admin")
ADMIN_CHANGE = Actor(None, "system", "admin")


class RoutingService:
    """Owns the life cycle and the statistics; reacts to events and to agents' requests."""

    def __init__(
        self,
        config: RoutingSource,
        *,
        bus: EventPublisher,
        sessionmaker: async_sessionmaker[AsyncSession],
        notifier: Notifier,
        screen_pops: ScreenPopReader,
        channels: Channels,
        telephony: Telephony | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.notifier = notifier
        self.screen_pops = screen_pops
        self.channels = channels
        # Click-to-dial and spy: the PBX's own commands, beyond the channel port.
        self.telephony = telephony
        self.clock = clock
        self.router = Router(queues_from_config(config), policy_from_config(config))
        self.life = ContactLifeCycle(self.router, channels)
        self.stats = Statistics(
            {q.name: q.sla_seconds for q in config.queues},
            short_abandon_seconds=config.routing.short_abandon_seconds,
            windows_minutes=config.routing.stats_windows_minutes,
            timezone=config.routing.timezone,
        )
        # Every figure comes from life-cycle events, fed here live and from the store's
        # contact-event log at start-up.
        self.tally = Tally(self.stats)
        self.agents: dict[int, AgentInfo] = {}
        self.view = FloorView(self.life, self.stats, self.agents)
        self.writer = InteractionWriter(sessionmaker, outbox_for(sessionmaker))
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._supervisors_dirty = True
        # Agents restored "ready" whose desktop has not connected yet: until when.
        self._unconfirmed: dict[int, float] = {}
        # Channels whose offers are paused (their side was unreachable): when to retry.
        self._retry_at: dict[str, float] = {}

    @property
    def contacts(self) -> dict[int, ContactInfo]:
        """The contacts in the life cycle, by interaction id."""
        return self.life.contacts

    # --- start and stop -----------------------------------------------------------

    async def start(self) -> None:
        """Rebuild the day's figures from the stored contact events, load agents and their
        statuses, restore waiting contacts of channels routing restores, start timers."""
        now = self.clock()
        for stored in await load_events(
            self.sessionmaker, self.stats.history_start(now), ("status",)
        ):
            self.tally.apply(stored)
        async with self.sessionmaker() as session:
            users = (
                await session.scalars(
                    select(User).where(
                        User.is_active.is_(True), User.role.in_(("agent", "supervisor"))
                    )
                )
            ).all()
            states = await agent_states.load_agent_states(session)
            waiting = (
                await session.scalars(
                    select(Interaction)
                    .where(
                        Interaction.channel.in_(self.channels.restored_from_store()),
                        Interaction.answered_at.is_(None),
                        Interaction.ended_at.is_(None),
                        Interaction.queue.is_not(None),
                    )
                    .order_by(Interaction.started_at, Interaction.id)
                )
            ).all()
        grace = self.config.routing.restore_grace_seconds
        for user in users:
            self._add_agent(user, now)
            state = states.get(user.id)
            if state is not None and state.status != "offline":
                if state.status == "ready" and grace > 0:
                    # Set before the status, so the router never counts them available.
                    self.router.agents[user.id].confirm_by = now + grace
                    self._unconfirmed[user.id] = now + grace
                # Nothing waits yet: a status brings no offer here.
                self.router.set_status(
                    user.id,
                    state.status,  # type: ignore[arg-type]
                    state.since.timestamp(),
                    state.reason,
                )
                self.stats.record_status(user.id, state.status, state.reason, now)
        for ix in waiting:
            if ix.queue in self.router.queues:
                await self.on_queued(_requeued(ix, now))
        if waiting:
            log.info("restored %d waiting contacts from the store", len(waiting))
        if self._unconfirmed:
            log.info(
                "%d agents restored ready: no offers until their desktop connects (%g s)",
                len(self._unconfirmed),
                grace,
            )
        self.writer.start()
        self._tasks = [
            asyncio.create_task(self._timer(), name="routing-timer"),
            asyncio.create_task(self._supervisor_feed(), name="routing-wallboard"),
        ]

    async def stop(self) -> None:
        """Stop the timers (state is already in the store)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.writer.stop()

    # --- agents -------------------------------------------------------------------

    async def sync_user(self, user_id: int) -> None:
        """Bring the router up to date with a user an admin created or changed."""
        async with self.sessionmaker() as session:
            user = await session.get(User, user_id)
        now = self.clock()
        routable = user is not None and user.is_active and user.role in ("agent", "supervisor")
        if user_id not in self.agents:
            if routable:
                assert user is not None
                self._add_agent(user, now)
                self._changed()
            return
        if not routable:
            await self.set_status(user_id, "offline", None, actor=ADMIN_CHANGE)
            if user is None or not user.is_active:
                return
        assert user is not None
        info = self.agents[user_id]
        info.display_name, info.role, info.device = user.display_name, user.role, user.device
        self.life.devices[user_id] = user.device
        self.router.agents[user_id].capacity = self._capacity(user)
        await self._carry_out(
            self.life.decide(self.router.update_skills(user_id, dict(user.skills), now), now)
        )
        self._push_agent(user_id)
        self._changed()

    def _capacity(self, user: User) -> dict[Any, int]:
        """The user's capacity per channel; none on a channel that needs a device they do
        not have (nothing could ring: an accepted contact would never connect)."""
        policy = self.router.policy
        capacity = {
            c: int(user.capacities.get(c, policy.capacity.get(c, 0))) for c in policy.capacity
        }
        for name, spec in self.channels.specs.items():
            if spec.needs_device and not user.device and name in capacity:
                capacity[name] = 0
        return capacity

    def _add_agent(self, user: User, now: float) -> None:
        agent = Agent(
            user.id,
            user.username,
            dict(user.skills),
            self._capacity(user),
            status_since=now,
            idle_since=now,
            activity_since=now,
        )
        self.router.add_agent(agent, now)
        self.life.devices[user.id] = user.device
        self.agents[user.id] = AgentInfo(
            user.id, user.username, user.display_name, user.role, user.device
        )

    # --- bus handlers -------------------------------------------------------------

    async def on_queued(self, event: ContactQueued) -> None:
        """A contact waits for an agent."""
        tier_bonus = 0
        if event.tier is not None:
            tier_bonus = int(self.router.policy.tier_priority.get(event.tier, 0))
        elif event.customer_id is not None:
            tier_bonus = await self._tier_priority(event.customer_id)
        try:
            effects = self.life.queued(event, tier_bonus, self.clock())
        except RoutingError as exc:
            log.warning("cannot queue contact %s: %s", event.interaction_id, exc.message)
            return
        await self._carry_out(effects)
        self._changed()

    async def on_answered(self, event: ContactAnswered) -> None:
        """The contact was answered (a phone picked up, a digital contact accepted)."""
        await self._carry_out(
            self.life.answered(
                event.interaction_id, event.agent_id, event.at, device=event.device, leg=event.leg
            )
        )
        self._changed()

    async def on_ring_failed(self, event: ContactRingFailed) -> None:
        """The agent's device did not take the offer: the next agent is tried now, and the
        miss counts as a timed-out offer (not ready after the configured number in a row)."""
        log.info("agent %s did not take %s: %s", event.agent_id, event.interaction_id, event.reason)
        await self._carry_out(self.life.ring_failed(event.interaction_id, event.agent_id, event.at))
        self._changed()

    async def on_held(self, event: ContactHeld) -> None:
        """Hold starts: its time counts into the handle time."""
        await self._carry_out(self.life.held(event.interaction_id, event.at))

    async def on_unheld(self, event: ContactUnheld) -> None:
        """Hold ends."""
        await self._carry_out(self.life.unheld(event.interaction_id, event.at))

    async def on_transferred(self, event: ContactTransferred) -> None:
        """Recorded on the interaction; the end of the agent's part follows."""
        await self._carry_out(self.life.transferred(event.interaction_id, event.target, event.at))

    async def on_ended(self, event: ContactEnded) -> None:
        """The contact is over, or the customer left before an agent answered."""
        await self._carry_out(self.life.ended(event.interaction_id, event.at, event.cause))
        self._changed()

    # --- what agents and supervisors ask ------------------------------------------

    async def agent_present(self, agent_id: int) -> None:
        """A desktop of the agent connected: a "ready" restored after a restart is theirs
        again, and waiting contacts may be offered to them now."""
        if self._unconfirmed.pop(agent_id, None) is None:
            return
        agent = self.router.agents[agent_id]
        agent.confirm_by = None
        log.info("agent %s is back at a desktop: ready confirmed", agent.name)
        # Same status again: the router keeps its "since" and looks for work for them.
        now = self.clock()
        await self._carry_out(
            self.life.decide(self.router.set_status(agent_id, agent.status, now, agent.reason), now)
        )
        self._push_agent(agent_id)
        self._changed()

    async def set_status(
        self,
        agent_id: int,
        status: str,
        reason: str | None,
        *,
        actor: Actor,
        why: str | None = None,
    ) -> dict[str, Any]:
        """Ready / not ready (with a configured reason) / offline; `why` goes in the audit."""
        if status not in ("ready", "not_ready", "offline"):
            raise RoutingError("routing.bad_status", f"unknown status {status!r}")
        if status == "not_ready" and reason not in self._reasons():
            raise RoutingError(
                "routing.bad_reason",
                f"reason must be one of {', '.join(self._reasons())}, got {reason!r}",
            )
        self._agent_info(agent_id)
        now = self.clock()
        # A status someone chose replaces one restored after a restart.
        self._unconfirmed.pop(agent_id, None)
        self.router.agents[agent_id].confirm_by = None
        decisions = self.router.set_status(agent_id, status, now, reason)  # type: ignore[arg-type]
        self._record_status(agent_id, status, reason, now)
        async with self.sessionmaker.begin() as session:
            await agent_states.save_agent_state(
                session,
                agent_id,
                status,
                reason if status == "not_ready" else None,
                stored_time(now),
            )
            if actor.user_id != agent_id:
                await audit.record(
                    session,
                    actor,
                    "agent.status_set",
                    "user",
                    agent_id,
                    {"status": status, "reason": reason, **({"why": why} if why else {})},
                )
        await self._carry_out(self.life.decide(decisions, now))
        self._push_agent(agent_id)
        self._changed()
        return self.view.agent(agent_id, self.clock())

    async def accept(self, agent_id: int, interaction_id: int) -> None:
        """The agent accepts an offer: a contact the desktop answers is theirs at once; on
        a channel that rings a device, the device is answered for them where it can be,
        otherwise the desktop shows "pick up your phone" until they do."""
        info = self.life.offered_to(agent_id, interaction_id)
        now = self.clock()
        if not self.channels.can(info.channel, Capability.RING):
            await self._carry_out(self.life.accepted(agent_id, interaction_id, now))
            return
        port = self._port(info.channel)
        device = self.agents[agent_id].device or ""
        try:
            answered = await port.answer_for_agent(interaction_id, device)
        except TelephonyError as exc:
            raise RoutingError(exc.error_id, exc.message) from None
        if not answered:
            await self._carry_out(self.life.awaiting_pickup(agent_id, interaction_id, now))

    async def reject(self, agent_id: int, interaction_id: int) -> None:
        """The agent declines an offer: it goes to someone else."""
        await self._carry_out(self.life.rejected(agent_id, interaction_id, self.clock()))
        self._changed()

    async def call_action(
        self, agent_id: int, interaction_id: int, action: str, target: str | None
    ) -> None:
        """Hang up, hold, unhold or transfer the agent's current contact, as far as its
        channel declares it can."""
        info = self.contacts.get(interaction_id)
        if info is None or info.agent_id != agent_id or info.state not in ("talking", "held"):
            raise RoutingError(
                "routing.no_such_contact", f"you have no contact {interaction_id} in progress"
            )
        needed = _ACTIONS.get(action)
        if needed is None:
            raise RoutingError("routing.bad_action", f"unknown contact action {action!r}")
        spec = self.channels.spec(info.channel)
        if not spec.can(needed):
            raise RoutingError(
                "routing.not_supported", f"{action} is not something a {spec.name} contact does"
            )
        port = self.channels.port(info.channel)
        if port is None and action == "hangup":
            # The desktop is the channel: closing it there ends it.
            await self.on_ended(ContactEnded(interaction_id, self.clock(), "closed by agent"))
            return
        port = self._port(info.channel)
        try:
            if action == "hangup":
                await port.hangup(interaction_id)
            elif action == "hold":
                await port.hold(interaction_id)
            elif action == "unhold":
                await port.unhold(interaction_id)
            else:
                if not target:
                    raise RoutingError("routing.no_target", "transfer to which extension or queue?")
                target, is_queue = transfer_target(target, self.router.queues)
                if is_queue:
                    await port.return_to_waiting(interaction_id)
                    await self._carry_out(self.life.to_queue(info, target, self.clock()))
                    self._changed()
                    log.info("agent %s sent %s to queue %s", agent_id, interaction_id, target)
                else:
                    await port.transfer(interaction_id, target)
        except TelephonyError as exc:
            raise RoutingError(exc.error_id, exc.message) from None

    async def dial(self, agent_id: int, number: str) -> int:
        """Click-to-dial from the agent's device; the call counts against their capacity."""
        agent = self._agent_info(agent_id)
        dialers = self.channels.with_capability(Capability.DIAL)
        if self.telephony is None or not dialers:
            raise RoutingError("routing.no_pbx", "no PBX is connected")
        if not agent.device:
            raise RoutingError("routing.no_device", "you have no phone device; ask an admin")
        router_agent = self.router.agents[agent_id]
        if router_agent.active or router_agent.offered:
            raise RoutingError("routing.busy", "finish your current contact first")
        # Only phone keys reach the PBX: the number becomes an `Exten:` of an Originate.
        number = dial_string(number)
        if try_normalize_phone(number, self.config.database.default_region) is None:
            raise RoutingError("routing.bad_number", f"{number!r} is not a phone number")
        now = self.clock()
        channel = dialers[0]
        opened = await open_contact(
            self.sessionmaker,
            channel=channel,
            address=number,
            region=self.config.database.default_region,
            direction="outbound",
            at=now,
        )
        iid = opened.interaction_id
        await self._carry_out(
            self.life.dialing(iid, agent_id, channel, number, opened.customer_id, now)
        )
        try:
            await self.telephony.dial(iid, agent_id, agent.device, number)
        except TelephonyError as exc:
            await self._carry_out(self.life.dial_failed(iid, agent_id, now))
            raise RoutingError(exc.error_id, exc.message) from None
        return iid

    async def finish_wrap_up(self, agent_id: int) -> None:
        """The agent is done with wrap-up before the timer."""
        await self._carry_out(self.life.finish_wrap_up(agent_id, self.clock()))
        self._push_agent(agent_id)
        self._changed()

    async def link_customer(self, agent_id: int, interaction_id: int, customer_id: int) -> None:
        """Attach the agent's current contact to a customer (unknown caller identified)."""
        info = self.contacts.get(interaction_id)
        if info is None or info.agent_id != agent_id:
            raise RoutingError("routing.no_such_contact", f"you have no contact {interaction_id}")
        async with self.sessionmaker.begin() as session:
            await interactions.update_interaction(session, interaction_id, customer_id=customer_id)
        info.customer_id = customer_id

    async def spy(self, supervisor: Actor, agent_id: int, mode: str) -> None:
        """Listen, whisper or barge on an agent's call (audited)."""
        if mode not in ("listen", "whisper", "barge"):
            raise RoutingError(
                "routing.bad_mode", f"mode must be listen, whisper or barge, not {mode!r}"
            )
        if self.telephony is None or not self.channels.with_capability(Capability.LISTEN):
            raise RoutingError("routing.no_pbx", "no PBX is connected")
        target = self._agent_info(agent_id)
        own = self.agents.get(supervisor.user_id or 0)
        if own is None or not own.device:
            raise RoutingError("routing.no_device", "you have no phone device to listen on")
        if not target.device:
            raise RoutingError("routing.no_device", f"{target.username} has no phone device")
        try:
            await self.telephony.spy(own.device, target.device, mode)
        except TelephonyError as exc:
            raise RoutingError(exc.error_id, exc.message) from None
        async with self.sessionmaker.begin() as session:
            await audit.record(
                session, supervisor, f"agent.{mode}", "user", agent_id, {"mode": mode}
            )

    # --- carrying out the life cycle's effects ------------------------------------

    async def _carry_out(self, effects: list[Effect]) -> None:
        for effect in effects:
            try:
                await self._effect(effect)
            except Exception:
                log.exception("could not carry out %r", effect)
        self._wake.set()

    async def _effect(self, effect: Effect) -> None:
        if isinstance(effect, Record):
            self._record_event(effect.event)
        elif isinstance(effect, Persist):
            self.writer.write(effect.interaction_id, **effect.fields)
        elif isinstance(effect, Deliver):
            await self._deliver(effect)
        elif isinstance(effect, OfferClosed):
            if effect.take_back is not None:
                port = self.channels.port(effect.take_back)
                if port is not None:
                    with contextlib.suppress(TelephonyError):
                        await port.return_to_waiting(effect.interaction_id)
            self.notifier.offer_ended(effect.agent_id, effect.interaction_id, effect.outcome)
        elif isinstance(effect, AgentChanged):
            self._push_agent(effect.agent_id)
        elif isinstance(effect, ContactChanged):
            if effect.contact.agent_id is not None:
                self.notifier.contact_changed(effect.contact.agent_id, effect.contact)
        elif isinstance(effect, StatusSaved):
            async with self.sessionmaker.begin() as session:
                await agent_states.save_agent_state(
                    session, effect.agent_id, effect.status, effect.reason, stored_time(effect.at)
                )
        elif isinstance(effect, LeaveQueue):
            port = self.channels.port(effect.channel)
            if port is not None:
                with contextlib.suppress(TelephonyError):
                    await port.end_waiting(effect.interaction_id, effect.action)
        elif isinstance(effect, Requeue):
            self.bus.publish(effect.event)
        elif isinstance(effect, Decided):
            pass  # the router's own record, for traces; its consequences follow

    async def _deliver(self, deliver: Deliver) -> None:
        offer, info = deliver.offer, deliver.contact
        # The screen first, then the channel: the agent sees who it is before answering.
        pop = await self._pop(info)
        self.notifier.offer(offer.agent_id, info, offer, pop)
        self._push_agent(offer.agent_id)
        port = self.channels.port(info.channel) if deliver.ring else None
        if port is None:
            return
        agent = self.agents[offer.agent_id]
        try:
            await port.ring_agent(
                info.interaction_id,
                offer.agent_id,
                agent.device or "",
                offer.expires_at - self.clock(),
            )
        except TelephonyError as exc:
            if exc.error_id == "telephony.unavailable":
                # Not the agent's doing: nothing rang. The channel's offers wait for it.
                log.warning("cannot ring for %s, unreachable: %s", info.interaction_id, exc)
                self._retry_at.setdefault(info.channel, self.clock() + RETRY_SECONDS)
                await self._carry_out(
                    self.life.unsent(offer.agent_id, info.interaction_id, self.clock())
                )
                self._changed()
                return
            log.warning("cannot ring %s for %s: %s", agent.username, info.interaction_id, exc)
            await self.reject(offer.agent_id, info.interaction_id)

    # --- timers and feeds -----------------------------------------------------------

    async def _timer(self) -> None:
        while True:
            deadlines = [
                d
                for d in (
                    self.router.next_deadline(),
                    min(self._retry_at.values(), default=None),
                    min(self._unconfirmed.values(), default=None),
                )
                if d is not None
            ]
            delay = max(0.0, min(deadlines) - self.clock()) if deadlines else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            now = self.clock()
            effects = self.life.tick(now)
            if effects:
                await self._carry_out(effects)
                self._changed()
            for channel, at in list(self._retry_at.items()):
                if now >= at:
                    # An offer that still cannot be sent pauses the channel again.
                    del self._retry_at[channel]
                    await self._carry_out(self.life.resume(channel, now))
                    self._changed()
            if self._unconfirmed:
                await self._unconfirmed_due(now)

    async def _unconfirmed_due(self, now: float) -> None:
        """Restored agents whose desktop never came back go offline (stored, audited)."""
        grace = self.config.routing.restore_grace_seconds
        for agent_id in [a for a, until in self._unconfirmed.items() if until <= now]:
            log.warning(
                "agent %s was ready before the restart but no desktop connected within"
                " %g s: set offline",
                self.agents[agent_id].username,
                grace,
            )
            try:
                await self.set_status(
                    agent_id,
                    "offline",
                    None,
                    actor=RESTART_CHECK,
                    why=f"not confirmed by a desktop within {grace:g} s of a restart",
                )
            except Exception:
                # Offline in memory all the same: no offer goes to someone who is not there.
                log.exception("could not store agent %s offline", agent_id)

    async def _supervisor_feed(self) -> None:
        while True:
            now = self.clock()
            self.view.sample(now)
            waiting = any(self.router.waiting(q) for q in self.router.queues)
            if (self._supervisors_dirty or waiting) and self.notifier.supervisors_connected():
                self._supervisors_dirty = False
                self.notifier.floor(now, self.view.queues(now), self.view.all_agents(now))
            await asyncio.sleep(1.0)

    # --- reading (the API's) ------------------------------------------------------

    def history(self) -> dict[str, list[dict[str, Any]]]:
        """The last hour's samples per queue, for the wallboard's chart."""
        return self.view.history()

    def queue_snapshot(self, now: float) -> list[dict[str, Any]]:
        """Live figures per queue."""
        return self.view.queues(now)

    def agent_snapshot(self, now: float) -> list[dict[str, Any]]:
        """Live state of every agent."""
        return self.view.all_agents(now)

    def agent_state(self, agent_id: int, now: float | None = None) -> dict[str, Any]:
        """One agent as the desktop and the wallboard show them."""
        return self.view.agent(agent_id, self.clock() if now is None else now)

    # --- helpers ------------------------------------------------------------------

    def _changed(self) -> None:
        self._supervisors_dirty = True
        self._wake.set()

    def _push_agent(self, agent_id: int) -> None:
        if agent_id in self.agents:
            self.notifier.agent_changed(agent_id, self.view.agent(agent_id, self.clock()))

    def _port(self, channel: str) -> ChannelPort:
        port = self.channels.port(channel)
        if port is None:
            raise RoutingError("routing.no_pbx", f"the {channel} channel is not connected")
        return port

    async def _pop(self, info: ContactInfo) -> dict[str, Any]:
        try:
            return await self._read_pop(info)
        except Exception as exc:
            if not store_unavailable(exc):
                raise
            # The store cannot be read: the offer goes out all the same, without history.
            log.warning("screen pop for %s without the store: %s", info.interaction_id, exc)
            return {"customer": None, "interactions": [], "unavailable": True}

    async def _read_pop(self, info: ContactInfo) -> dict[str, Any]:
        kind = self.channels.spec(info.channel).address_kind
        if info.customer_id is not None:
            pop = await self.screen_pops.by_customer_id(info.customer_id)
        elif kind == "email" and info.address:
            pop = await self.screen_pops.by_email(info.address)
        else:
            pop = await self.screen_pops.by_phone(info.address or "")
        data = pop.to_json()
        # The timeline is the customer's past: not the contact being offered.
        data["interactions"] = [
            i for i in data.get("interactions", []) if i.get("id") != info.interaction_id
        ]
        return data

    async def _tier_priority(self, customer_id: int) -> int:
        try:
            async with self.sessionmaker() as session:
                tier = await session.scalar(select(Customer.tier).where(Customer.id == customer_id))
        except Exception as exc:
            if not store_unavailable(exc):
                raise
            return 0  # routed without the tier's bonus rather than not at all
        return int(self.router.policy.tier_priority.get(tier or "", 0))

    def _record_status(self, agent_id: int, status: str, reason: str | None, at: float) -> None:
        why = {"status": status, "reason": reason if status == "not_ready" else None}
        self._record_event(LifeCycleEvent("status", as_stored(at), agent_id=agent_id, details=why))

    def _record_event(self, event: LifeCycleEvent) -> None:
        # The same event feeds the figures now and, read back, after a restart.
        self.tally.apply(event)
        self.writer.record(event)

    def _reasons(self) -> list[str]:
        # "supervisor" and "missed-offer" are the daemon's own reasons, always valid.
        configured = list(self.config.routing.reason_codes)
        return configured + [r for r in ("supervisor", "missed-offer") if r not in configured]

    def _agent_info(self, agent_id: int) -> AgentInfo:
        info = self.agents.get(agent_id)
        if info is None:
            raise RoutingError("routing.unknown_agent", "you are not set up as an agent")
        return info


# Each contact action and the capability its channel must declare for it.
_ACTIONS = {
    "hangup": Capability.HANGUP,
    "hold": Capability.HOLD,
    "unhold": Capability.HOLD,
    "transfer": Capability.TRANSFER,
}


def _requeued(ix: Interaction, now: float) -> ContactQueued:
    """A stored waiting contact queued again after a restart, keeping its place."""
    priority, skills = contact_request.from_routing(ix.routing)
    return ContactQueued(
        interaction_id=ix.id,
        channel=ix.channel,
        queue=ix.queue or "",
        at=now,
        address=ix.address,
        customer_id=ix.customer_id,
        ivr_path=list(ix.ivr_path or []),
        ivr_inputs=dict(ix.ivr_inputs or {}),
        priority=priority,
        skills=skills,
        enqueued_at=ix.started_at.timestamp(),
    )
