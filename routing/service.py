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
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_store import agent_states
from crm_store.models import Customer, Interaction, User
from crm_store.screen_pop import ScreenPopReader
from routing import contact_request
from routing.agent_requests import AgentRequests
from routing.channels import Channels
from routing.contact_state import ContactInfo
from routing.definitions import policy_from_config, queues_from_config
from routing.effects import (
    AgentChanged,
    ContactChanged,
    Decided,
    Deliver,
    Effect,
    LeaveQueue,
    OfferClosed,
    Persist,
    Record,
    Requeue,
    StatusSaved,
)
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
from routing.intake import StoreOutbox, store_unavailable
from routing.lifecycle import ContactLifeCycle, stored_time
from routing.model import Offer
from routing.ports import EventPublisher, Notifier
from routing.roster import AgentRoster
from routing.router import Router, RoutingError
from routing.settings import RoutingSource
from routing.stats import Statistics, Tally
from routing.telephony import Telephony, TelephonyError
from routing.writer import InteractionWriter, load_events

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0  # how soon a channel's offers are tried again after it was unreachable


class RoutingService(AgentRoster, AgentRequests):
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
        outbox: StoreOutbox | None = None,
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
        self.router = Router(
            queues_from_config(config), policy_from_config(config, channels.specs.values())
        )
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
        # Where writes wait while the store cannot take them (the daemon's one outbox).
        self.outbox = outbox
        self.writer = InteractionWriter(sessionmaker, outbox)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._supervisors_dirty = True
        # Agents restored "ready" whose desktop has not connected yet: until when.
        self._unconfirmed: dict[int, float] = {}
        # Offers being delivered (pop read, then the ring), by contact.
        self._deliveries: dict[int, asyncio.Task[None]] = {}
        # Channels whose offers are paused (their side was unreachable): when to retry.
        self._retry_at: dict[str, float] = {}

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
        """Stop the timers (state is already in the store); offers under way are
        delivered first."""
        await self.settle()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.writer.stop()

    # --- agents -------------------------------------------------------------------

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
            # The pop read and the ring take round trips: done beside the next events
            # (decisions stay in order; only the carrying out of this one runs apart).
            task = asyncio.create_task(self._deliver(effect), name="routing-deliver")
            self._deliveries[effect.contact.interaction_id] = task
            task.add_done_callback(
                functools.partial(self._delivered, effect.contact.interaction_id)
            )
        elif isinstance(effect, OfferClosed):
            # What was delivered is taken back only once its delivery is done: a take-back
            # sent while the ring's actions are on their way would be overtaken by them.
            await self._delivery_done(effect.interaction_id)
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

    def _delivered(self, interaction_id: int, task: asyncio.Task[None]) -> None:
        if self._deliveries.get(interaction_id) is task:
            del self._deliveries[interaction_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("could not deliver offer %s", interaction_id, exc_info=task.exception())

    async def _delivery_done(self, interaction_id: int) -> None:
        task = self._deliveries.get(interaction_id)
        if task is not None and task is not asyncio.current_task():
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def settle(self) -> None:
        """Wait until every offer under way is delivered (tests, shutdown)."""
        while self._deliveries:
            await asyncio.gather(*self._deliveries.values(), return_exceptions=True)

    async def _deliver(self, deliver: Deliver) -> None:
        offer, info = deliver.offer, deliver.contact
        # The screen first, then the channel: the agent sees who it is before answering.
        pop = await self._pop(info)
        if not _still_offered(info, offer):
            return  # taken back, answered elsewhere or gone while the pop was read
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
            if exc.error_id == "telephony.no_call":
                # The call is gone; its end, on the bus already, closes the offer: not the
                # agent declining.
                log.warning("cannot ring for %s, the call is gone: %s", info.interaction_id, exc)
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
            await self.advance(now)
            for channel, at in list(self._retry_at.items()):
                if now >= at:
                    # An offer that still cannot be sent pauses the channel again.
                    del self._retry_at[channel]
                    await self._carry_out(self.life.resume(channel, now))
                    self._changed()
            if self._unconfirmed:
                await self._unconfirmed_due(now)

    async def advance(self, now: float) -> None:
        """Carry out what the router's deadlines due by `now` bring (offer timeouts,
        wrap-up ends, relaxation, maximum waits): the timer's step, at `now`."""
        effects = self.life.tick(now)
        if effects:
            await self._carry_out(effects)
            self._changed()

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

    def agent_on(self, interaction_id: int) -> int | None:
        """The agent the contact is offered to or handled by now, if any."""
        info = self.life.contacts.get(interaction_id)
        return None if info is None else info.agent_id

    # --- helpers ------------------------------------------------------------------

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
        if info.customer_id is not None:
            pop = await self.screen_pops.by_customer_id(info.customer_id)
        else:
            kind = self.channels.spec(info.channel).address_kind
            pop = await self.screen_pops.by_contact(kind, info.address)
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


def _requeued(ix: Interaction, now: float) -> ContactQueued:
    """A stored waiting contact queued again after a restart, keeping its place."""
    priority, skills = contact_request.from_routing(ix.routing)
    return ContactQueued(
        interaction_id=ix.id,
        channel=ix.channel,
        queue=ix.queue or "",
        at=now,
        address=ix.address,
        address_name=ix.address_name,
        customer_id=ix.customer_id,
        ivr_path=list(ix.ivr_path or []),
        ivr_inputs=dict(ix.ivr_inputs or {}),
        priority=priority,
        skills=skills,
        enqueued_at=ix.started_at.timestamp(),
    )


def _still_offered(info: ContactInfo, offer: Offer) -> bool:
    """Is `offer` still the contact's current offer?"""
    return (
        info.state == "offered"
        and info.agent_id == offer.agent_id
        and info.offer_expires_at == offer.expires_at
    )
