"""The routing service: the pure router wired to the bus, the store, the PBX and browsers.

Every contact on every channel comes in as a `ContactQueued` event and goes through the
same router. Each decision is carried out here, in this order for an offer: record the
explanation on the interaction, pop the agent's screen, then ring the phone (voice).
The router's deadlines (offer timeouts, wrap-up ends, relaxation steps, maximum waits)
are driven by one timer task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_store import agent_states, audit, interactions
from crm_store.actors import Actor
from crm_store.models import Customer, Interaction, User
from crm_store.phones import bounded_caller_id, try_normalize_phone
from crm_store.screen_pop import ScreenPopReader
from routing import contact_request
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
from routing.intake import open_contact, outbox_for, store_unavailable
from routing.model import (
    Agent,
    Channel,
    Contact,
    Decision,
    MaxWaitReached,
    Offer,
    OfferExpired,
    WrapUpEnded,
)
from routing.ports import EventPublisher, Notifier
from routing.router import Router, RoutingError
from routing.settings import RoutingSource
from routing.stats import LifeCycleEvent, Statistics, Tally, live_queue_figures
from routing.telephony import Telephony, TelephonyError
from routing.writer import InteractionWriter, as_stored, load_events

log = logging.getLogger(__name__)

DIGITAL: tuple[Channel, ...] = ("chat", "email", "sms")
HISTORY_SECONDS = 3600
HISTORY_STEP_SECONDS = 30
PBX_RETRY_SECONDS = 2.0  # how soon voice offers are tried again after an unreachable PBX
# Who sets an unconfirmed agent offline after a restart, in the audit log.
RESTART_CHECK = Actor(None, "system", "admin")


@dataclass
class ContactInfo:
    """What the service knows about a contact beyond the router's view."""

    interaction_id: int
    channel: Channel
    queue: str | None
    address: str | None
    customer_id: int | None
    enqueued_at: float
    queue_entered_at: float
    ivr_path: list[Any] = field(default_factory=list)
    ivr_inputs: dict[str, Any] = field(default_factory=dict)
    # What the IVR asked of routing: kept for a re-queue (a transfer to a queue).
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    state: str = "waiting"  # waiting, offered, talking, held, wrap_up, closed
    agent_id: int | None = None
    offer_expires_at: float | None = None
    explanation: dict[str, Any] | None = None
    answered_at: float | None = None
    held_since: float | None = None
    hold_total: float = 0.0
    ended_at: float | None = None

    def public(self) -> dict[str, Any]:
        """As the desktop shows it."""
        return {
            "interaction_id": self.interaction_id,
            "channel": self.channel,
            "queue": self.queue,
            "address": self.address,
            "customer_id": self.customer_id,
            "state": self.state,
        }


@dataclass
class AgentInfo:
    """Who an agent is, beyond the router's view."""

    user_id: int
    username: str
    display_name: str
    role: str
    device: str | None


class RoutingService:
    """Owns the router and the statistics; reacts to events and to agents' requests."""

    def __init__(
        self,
        config: RoutingSource,
        *,
        bus: EventPublisher,
        sessionmaker: async_sessionmaker[AsyncSession],
        hub: Notifier,
        screen_pops: ScreenPopReader,
        telephony: Telephony | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.hub = hub
        self.screen_pops = screen_pops
        self.telephony = telephony
        self.clock = clock
        self.router = Router(queues_from_config(config), policy_from_config(config))
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
        self.contacts: dict[int, ContactInfo] = {}
        self._wrapping: dict[int, list[ContactInfo]] = {}
        self._history: dict[str, deque[dict[str, Any]]] = {
            q.name: deque(maxlen=HISTORY_SECONDS // HISTORY_STEP_SECONDS) for q in config.queues
        }
        self.writer = InteractionWriter(sessionmaker, outbox_for(sessionmaker))
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._supervisors_dirty = True
        # Agents restored "ready" whose desktop has not connected yet: until when.
        self._unconfirmed: dict[int, float] = {}
        # Voice offers are paused (the PBX was unreachable): when to try again.
        self._voice_retry_at: float | None = None

    # --- life cycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild the day's figures from the stored contact events, load agents and their
        statuses, restore waiting digital contacts, start timers."""
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
                        Interaction.channel.in_(DIGITAL),
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
                since = state.since.timestamp()
                if state.status == "ready" and grace > 0:
                    # Set before the status, so the router never counts them available.
                    self.router.agents[user.id].confirm_by = now + grace
                    self._unconfirmed[user.id] = now + grace
                self._apply(
                    self.router.set_status(user.id, state.status, since, state.reason)  # type: ignore[arg-type]
                )
                self.stats.record_status(user.id, state.status, state.reason, now)
        restored = 0
        for ix in waiting:
            if ix.queue not in self.router.queues:
                continue
            started = ix.started_at.timestamp()
            priority, skills = contact_request.from_routing(ix.routing)
            await self.on_queued(
                ContactQueued(
                    interaction_id=ix.id,
                    channel=ix.channel,
                    queue=ix.queue,
                    at=now,
                    address=ix.address,
                    customer_id=ix.customer_id,
                    ivr_path=list(ix.ivr_path or []),
                    ivr_inputs=dict(ix.ivr_inputs or {}),
                    priority=priority,
                    skills=skills,
                    enqueued_at=started,
                )
            )
            restored += 1
        if restored:
            log.info("restored %d waiting digital contacts", restored)
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
            await self.set_status(user_id, "offline", None, actor=Actor(None, "system", "admin"))
            if user is None or not user.is_active:
                return
        assert user is not None
        info = self.agents[user_id]
        info.display_name, info.role, info.device = user.display_name, user.role, user.device
        router_agent = self.router.agents[user_id]
        router_agent.capacity = self._capacity(user)
        await self._carry_out(self.router.update_skills(user_id, dict(user.skills), now))
        self._push_agent(user_id)
        self._changed()

    def _capacity(self, user: User) -> dict[Channel, int]:
        """The user's capacity per channel; none for voice without a phone device
        (nothing could ring: an accepted call would never connect)."""
        policy = self.router.policy
        capacity = {
            c: int(user.capacities.get(c, policy.capacity.get(c, 0))) for c in policy.capacity
        }
        if not user.device and "voice" in capacity:
            capacity["voice"] = 0
        return capacity

    def _add_agent(self, user: User, now: float) -> None:
        self.router.add_agent(
            Agent(
                user.id,
                user.username,
                dict(user.skills),
                self._capacity(user),
                status_since=now,
                idle_since=now,
                activity_since=now,
            ),
            now,
        )
        self.agents[user.id] = AgentInfo(
            user.id, user.username, user.display_name, user.role, user.device
        )

    # --- bus handlers -------------------------------------------------------------

    async def on_queued(self, event: ContactQueued) -> None:
        """A contact waits for an agent."""
        if event.queue not in self.router.queues:
            log.warning(
                "contact %s for unknown queue %r: ignored", event.interaction_id, event.queue
            )
            return
        tier_bonus = 0
        if event.tier is not None:
            tier_bonus = int(self.router.policy.tier_priority.get(event.tier, 0))
        elif event.customer_id is not None:
            tier_bonus = await self._tier_priority(event.customer_id)
        queue = self.router.queues[event.queue]
        # A caller id is whatever the network sent: bounded before it is shown or looked up.
        address = bounded_caller_id(event.address) if event.channel == "voice" else event.address
        enqueued_at = event.enqueued_at if event.enqueued_at is not None else event.at
        info = ContactInfo(
            interaction_id=event.interaction_id,
            channel=event.channel,  # type: ignore[arg-type]
            queue=event.queue,
            address=address,
            customer_id=event.customer_id,
            enqueued_at=enqueued_at,
            queue_entered_at=event.at,
            ivr_path=list(event.ivr_path),
            ivr_inputs=dict(event.ivr_inputs),
            priority=event.priority,
            skills=dict(event.skills),
        )
        self.contacts[event.interaction_id] = info
        contact = Contact(
            id=str(event.interaction_id),
            channel=info.channel,
            queue=event.queue,
            enqueued_at=enqueued_at,
            priority=queue.priority + tier_bonus + event.priority,
            extra_skills=dict(event.skills),
            queue_entered_at=event.at,
        )
        try:
            decisions = self.router.enqueue(contact, self.clock())
        except RoutingError as exc:
            log.warning("cannot queue contact %s: %s", event.interaction_id, exc.message)
            self.contacts.pop(event.interaction_id, None)
            return
        self._record("queued", info, event.at)
        await self._carry_out(decisions)
        self._changed()

    async def on_answered(self, event: ContactAnswered) -> None:
        """The agent's phone was answered (or a digital contact accepted)."""
        info = self.contacts.get(event.interaction_id)
        if info is None:
            return
        if info.state == "offered":
            try:
                self.router.accept(str(event.interaction_id), event.agent_id, event.at)
            except RoutingError as exc:
                log.warning("answer for %s not matching its offer: %s", event.interaction_id, exc)
                return
        info.state, info.agent_id, info.answered_at = "talking", event.agent_id, event.at
        self._record("answered", info, event.at)
        self._persist(event.interaction_id, answered_at=_dt(event.at), agent_id=event.agent_id)
        self._push_contact(info)
        self._push_agent(event.agent_id)
        self._changed()

    async def on_ring_failed(self, event: ContactRingFailed) -> None:
        """The agent's phone did not answer: the next agent is tried now, and the miss
        counts as a timed-out offer (not ready after the configured number in a row)."""
        info = self.contacts.get(event.interaction_id)
        if info is None or info.state != "offered" or info.agent_id != event.agent_id:
            return
        log.info(
            "agent %s did not take call %s: %s", event.agent_id, event.interaction_id, event.reason
        )
        decisions = self.router.ring_failed(str(event.interaction_id), event.agent_id, event.at)
        await self._carry_out(decisions)
        self._changed()

    async def on_held(self, event: ContactHeld) -> None:
        """Hold starts: its time counts into the handle time."""
        info = self.contacts.get(event.interaction_id)
        if info is not None and info.state == "talking":
            info.state, info.held_since = "held", event.at
            self._record("held", info, event.at)
            self._push_contact(info)

    async def on_unheld(self, event: ContactUnheld) -> None:
        """Hold ends."""
        info = self.contacts.get(event.interaction_id)
        if info is not None and info.state == "held" and info.held_since is not None:
            info.hold_total += event.at - info.held_since
            info.state, info.held_since = "talking", None
            self._record("unheld", info, event.at)
            self._push_contact(info)

    async def on_transferred(self, event: ContactTransferred) -> None:
        """Recorded on the interaction; the end of the agent's part follows."""
        self._persist(event.interaction_id, end_cause=f"transferred to {event.target}")
        info = self.contacts.get(event.interaction_id)
        if info is not None:
            self._record("transferred", info, event.at, target=event.target)

    async def on_ended(self, event: ContactEnded) -> None:
        """The contact is over, or the customer left before an agent answered."""
        info = self.contacts.get(event.interaction_id)
        if info is None:
            return
        now = event.at
        if info.state in ("waiting", "offered"):
            offered_to = info.agent_id if info.state == "offered" else None
            decisions = self.router.remove_contact(str(event.interaction_id), now)
            self._record("abandoned", info, now, cause=event.cause)
            info.state, info.ended_at = "closed", now
            self.contacts.pop(event.interaction_id, None)
            self._persist(event.interaction_id, ended_at=_dt(now), end_cause=event.cause)
            if offered_to is not None:
                self.hub.to_agent(
                    offered_to,
                    {
                        "type": "offer_ended",
                        "offer_id": info.interaction_id,
                        "outcome": "abandoned",
                    },
                )
                self._push_agent(offered_to)
            await self._carry_out(decisions)
        elif info.state in ("talking", "held", "dialing") and info.agent_id is not None:
            # "dialing": a click-to-dial that ended before anyone answered; the agent
            # was busy with it all the same.
            if info.held_since is not None:
                info.hold_total += now - info.held_since
                info.held_since = None
            info.ended_at = now
            info.state = "wrap_up"
            agent_id = info.agent_id
            self._record("ended", info, now, cause=event.cause)
            try:
                decisions = self.router.end_contact(str(event.interaction_id), agent_id, now)
            except RoutingError:
                decisions = []
            self._wrapping.setdefault(agent_id, []).append(info)
            self._persist(event.interaction_id, ended_at=_dt(now), end_cause=event.cause)
            self._push_contact(info)
            self._push_agent(agent_id)
            if self.router.agents[agent_id].wrap_up_until is None:
                self._close_wrap_up(agent_id, now)
            await self._carry_out(decisions)
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
        decisions = self.router.set_status(agent_id, agent.status, self.clock(), agent.reason)
        await self._carry_out(decisions)
        self._push_agent(agent_id)
        self._changed()

    async def _unconfirmed_due(self, now: float) -> None:
        """Restored agents whose desktop never came back go offline (stored, audited)."""
        due = [agent_id for agent_id, until in self._unconfirmed.items() if until <= now]
        for agent_id in due:
            grace = self.config.routing.restore_grace_seconds
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
                session, agent_id, status, reason if status == "not_ready" else None, _dt(now)
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
        await self._carry_out(decisions)
        self._push_agent(agent_id)
        self._changed()
        return self.agent_state(agent_id)

    async def accept(self, agent_id: int, interaction_id: int) -> None:
        """The agent accepts an offer: a digital contact is theirs; a call is answered."""
        info = self._offered_to(agent_id, interaction_id)
        if info.channel == "voice":
            if self.telephony is None:
                raise RoutingError("routing.no_pbx", "no PBX is connected")
            device = self.agents[agent_id].device or ""
            try:
                await self.telephony.answer_for_agent(interaction_id, device)
            except TelephonyError as exc:
                raise RoutingError(exc.error_id, exc.message) from None
            return  # ContactAnswered follows from the PBX
        await self.on_answered(ContactAnswered(interaction_id, agent_id, self.clock()))

    async def reject(self, agent_id: int, interaction_id: int) -> None:
        """The agent declines an offer: it goes to someone else."""
        info = self._offered_to(agent_id, interaction_id)
        now = self.clock()
        decisions = self.router.reject(str(interaction_id), agent_id, now)
        self._record("offer_declined", info, now)
        info.state, info.agent_id = "waiting", None
        if info.channel == "voice" and self.telephony is not None:
            with contextlib.suppress(TelephonyError):
                await self.telephony.return_to_waiting(interaction_id)
        self.hub.to_agent(
            agent_id, {"type": "offer_ended", "offer_id": interaction_id, "outcome": "rejected"}
        )
        await self._carry_out(decisions)
        self._push_agent(agent_id)
        self._changed()

    async def call_action(
        self, agent_id: int, interaction_id: int, action: str, target: str | None
    ) -> None:
        """Hang up, hold, unhold or transfer the agent's current contact."""
        info = self.contacts.get(interaction_id)
        if info is None or info.agent_id != agent_id or info.state not in ("talking", "held"):
            raise RoutingError(
                "routing.no_such_contact", f"you have no contact {interaction_id} in progress"
            )
        if info.channel != "voice":
            if action != "hangup":
                raise RoutingError("routing.voice_only", f"{action} is for calls")
            await self.on_ended(ContactEnded(interaction_id, self.clock(), "closed by agent"))
            return
        if self.telephony is None:
            raise RoutingError("routing.no_pbx", "no PBX is connected")
        try:
            if action == "hangup":
                await self.telephony.hangup(interaction_id)
            elif action == "hold":
                await self.telephony.hold(interaction_id)
            elif action == "unhold":
                await self.telephony.unhold(interaction_id)
            elif action == "transfer":
                if not target:
                    raise RoutingError("routing.no_target", "transfer to which extension or queue?")
                target, is_queue = transfer_target(target, self.router.queues)
                if is_queue:
                    await self._transfer_to_queue(info, target)
                else:
                    await self.telephony.transfer(interaction_id, target)
            else:
                raise RoutingError("routing.bad_action", f"unknown call action {action!r}")
        except TelephonyError as exc:
            raise RoutingError(exc.error_id, exc.message) from None

    async def dial(self, agent_id: int, number: str) -> int:
        """Click-to-dial from the agent's device; the call counts against their capacity."""

        agent = self._agent_info(agent_id)
        if self.telephony is None:
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
        opened = await open_contact(
            self.sessionmaker,
            channel="voice",
            address=number,
            region=self.config.database.default_region,
            direction="outbound",
            at=now,
        )
        info = ContactInfo(
            opened.interaction_id,
            "voice",
            None,
            number,
            opened.customer_id,
            now,
            now,
            state="dialing",
        )
        info.agent_id = agent_id
        self.contacts[opened.interaction_id] = info
        self.router.start_direct(str(opened.interaction_id), agent_id, "voice", now)
        self._record("dialing", info, now)
        self._persist(opened.interaction_id, agent_id=agent_id)
        try:
            await self.telephony.dial(opened.interaction_id, agent_id, agent.device, number)
        except TelephonyError as exc:
            self.contacts.pop(opened.interaction_id, None)
            self._record("dial_failed", info, now)
            self.router.end_contact(str(opened.interaction_id), agent_id, now)
            self.router.finish_wrap_up(agent_id, now)
            self._persist(opened.interaction_id, ended_at=_dt(now), end_cause="dial failed")
            raise RoutingError(exc.error_id, exc.message) from None
        return opened.interaction_id

    async def finish_wrap_up(self, agent_id: int) -> None:
        """The agent is done with wrap-up before the timer."""
        now = self.clock()
        self._close_wrap_up(agent_id, now)
        await self._carry_out(self.router.finish_wrap_up(agent_id, now))
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
        if self.telephony is None:
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

    # --- decisions ----------------------------------------------------------------

    def _apply(self, decisions: list[Decision]) -> None:
        # Start-up only: nothing is waiting yet, so there is nothing to carry out.
        assert not [d for d in decisions if isinstance(d, Offer)], decisions

    async def _carry_out(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            try:
                if isinstance(decision, Offer):
                    await self._offer(decision)
                elif isinstance(decision, OfferExpired):
                    await self._offer_expired(decision)
                elif isinstance(decision, MaxWaitReached):
                    await self._max_wait(decision)
                elif isinstance(decision, WrapUpEnded):
                    self._close_wrap_up(decision.agent_id, self.clock())
                    self._push_agent(decision.agent_id)
            except Exception:
                log.exception("could not carry out %r", decision)
        self._wake.set()

    async def _offer(self, offer: Offer) -> None:
        interaction_id = int(offer.contact_id)
        info = self.contacts[interaction_id]
        info.state, info.agent_id = "offered", offer.agent_id
        info.offer_expires_at = offer.expires_at
        info.explanation = dict(offer.explanation)
        offered_at = self.clock()
        # Why this agent (skills matched, step, wait, idle time), kept for every offer.
        self._record("offered", info, offered_at, explanation=dict(offer.explanation))
        # The screen first, then the phone: the agent sees who it is before answering.
        pop = await self._pop(info)
        self.hub.to_agent(
            offer.agent_id,
            {
                "type": "offer",
                "offer_id": interaction_id,
                "interaction_id": interaction_id,
                "channel": offer.channel,
                "queue": offer.queue,
                "address": info.address,
                "expires_at": offer.expires_at,
                "explanation": dict(offer.explanation),
                "ivr": {"path": info.ivr_path, "inputs": info.ivr_inputs},
                "pop": pop,
            },
        )
        self._push_agent(offer.agent_id)
        if offer.channel == "voice" and self.telephony is not None:
            agent = self.agents[offer.agent_id]
            try:
                await self.telephony.ring_agent(
                    interaction_id,
                    offer.agent_id,
                    agent.device or "",
                    offer.expires_at - self.clock(),
                )
            except TelephonyError as exc:
                if exc.error_id == "telephony.unavailable":
                    # Not the agent's doing: nothing rang. Voice offers wait for the PBX.
                    await self._ring_unsent(offer.agent_id, interaction_id, exc)
                    return
                log.warning("cannot ring %s for %s: %s", agent.username, interaction_id, exc)
                await self.reject(offer.agent_id, interaction_id)
        # The request is kept beside the explanation: a re-queue after a restart reads it.
        routing = {**offer.explanation, **contact_request.as_routing(info.priority, info.skills)}
        self._persist(interaction_id, offered_at=_dt(offered_at), routing=routing)

    async def _ring_unsent(self, agent_id: int, interaction_id: int, exc: TelephonyError) -> None:
        """The ring could not be sent (PBX unreachable): the offer is withdrawn, no miss and
        nobody excluded; voice offers stop, and are tried again every few seconds."""
        log.warning("cannot ring for %s, the PBX is unreachable: %s", interaction_id, exc)
        now = self.clock()
        self.router.pause("voice")
        if self._voice_retry_at is None:
            self._voice_retry_at = now + PBX_RETRY_SECONDS
        info = self.contacts.get(interaction_id)
        if info is not None:
            info.state, info.agent_id = "waiting", None
        self.hub.to_agent(
            agent_id, {"type": "offer_ended", "offer_id": interaction_id, "outcome": "withdrawn"}
        )
        await self._carry_out(self.router.withdraw(str(interaction_id), agent_id, now))
        self._push_agent(agent_id)
        self._changed()

    async def _offer_expired(self, expired: OfferExpired) -> None:
        interaction_id = int(expired.contact_id)
        info = self.contacts.get(interaction_id)
        if info is not None:
            info.state, info.agent_id = "waiting", None
            if info.channel == "voice" and self.telephony is not None:
                with contextlib.suppress(TelephonyError):
                    await self.telephony.return_to_waiting(interaction_id)
        now = self.clock()
        self._record_event(
            LifeCycleEvent(
                "offer_timeout",
                as_stored(now),
                interaction_id,
                info.channel if info is not None else None,
                info.queue if info is not None else None,
                expired.agent_id,
                {"agent_set_not_ready": expired.agent_set_not_ready},
            )
        )
        self.hub.to_agent(
            expired.agent_id,
            {"type": "offer_ended", "offer_id": interaction_id, "outcome": "timeout"},
        )
        if expired.agent_set_not_ready:
            agent = self.router.agents[expired.agent_id]
            self._record_status(agent.id, agent.status, agent.reason, now)
            async with self.sessionmaker.begin() as session:
                await agent_states.save_agent_state(
                    session, agent.id, agent.status, agent.reason, _dt(now)
                )
        self._push_agent(expired.agent_id)

    async def _max_wait(self, reached: MaxWaitReached) -> None:
        interaction_id = int(reached.contact_id)
        info = self.contacts.get(interaction_id)
        if info is None:
            return
        now = self.clock()
        if reached.target:
            self._record(reached.action, info, now, target=reached.target)
        else:
            self._record(reached.action, info, now)
        if reached.action == "overflow" and reached.target:
            info.queue, info.queue_entered_at = reached.target, now
            self._persist(interaction_id, queue=reached.target)
            return
        self.contacts.pop(interaction_id, None)
        if info.channel == "voice" and self.telephony is not None:
            with contextlib.suppress(TelephonyError):
                await self.telephony.end_waiting(interaction_id, reached.action)
        self._persist(interaction_id, ended_at=_dt(now), end_cause=f"max wait: {reached.action}")

    async def _transfer_to_queue(self, info: ContactInfo, queue: str) -> None:
        assert self.telephony is not None and info.agent_id is not None
        await self.telephony.return_to_waiting(info.interaction_id)
        now = self.clock()
        agent_id = info.agent_id
        await self.on_ended(ContactEnded(info.interaction_id, now, f"transferred to queue {queue}"))
        self._persist(info.interaction_id, ended_at=None, queue=queue)
        self.bus.publish(
            ContactQueued(
                interaction_id=info.interaction_id,
                channel=info.channel,
                queue=queue,
                at=now,
                address=info.address,
                customer_id=info.customer_id,
                ivr_path=info.ivr_path,
                ivr_inputs=info.ivr_inputs,
                priority=info.priority,
                skills=dict(info.skills),
            )
        )
        log.info("agent %s sent %s to queue %s", agent_id, info.interaction_id, queue)

    def _close_wrap_up(self, agent_id: int, now: float) -> None:
        for info in self._wrapping.pop(agent_id, []):
            self._record("wrap_up_ended", info, now, agent_id=agent_id)
            info.state = "closed"
            if self.contacts.get(info.interaction_id) is info:
                # Not when the same interaction is waiting again (transferred to a queue).
                del self.contacts[info.interaction_id]
            self._push_contact(info)

    # --- timers and feeds -----------------------------------------------------------

    async def _timer(self) -> None:
        while True:
            deadline = self.router.next_deadline()
            if self._voice_retry_at is not None:
                retry = self._voice_retry_at
                deadline = retry if deadline is None else min(deadline, retry)
            if self._unconfirmed:
                first = min(self._unconfirmed.values())
                deadline = first if deadline is None else min(deadline, first)
            delay = None if deadline is None else max(0.0, deadline - self.clock())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            now = self.clock()
            decisions = self.router.tick(now)
            if decisions:
                await self._carry_out(decisions)
                self._changed()
            if self._voice_retry_at is not None and now >= self._voice_retry_at:
                # A ring that still cannot be sent pauses voice again (_ring_unsent).
                self._voice_retry_at = None
                await self._carry_out(self.router.resume("voice", now))
                self._changed()
            if self._unconfirmed:
                await self._unconfirmed_due(now)

    async def _supervisor_feed(self) -> None:
        last_sample = 0.0
        while True:
            now = self.clock()
            if now - last_sample >= HISTORY_STEP_SECONDS:
                last_sample = now
                for queue in self.queue_snapshot(now):
                    self._history[queue["name"]].append(
                        {
                            "t": now,
                            "waiting": queue["waiting"],
                            "service_level": queue["service_level"],
                        }
                    )
            waiting = any(self.router.waiting(q) for q in self.router.queues)
            if (self._supervisors_dirty or waiting) and self.hub.supervisors_connected():
                self._supervisors_dirty = False
                self.hub.to_supervisors(
                    {"type": "queues", "at": now, "queues": self.queue_snapshot(now)}
                )
                self.hub.to_supervisors(
                    {"type": "agents", "at": now, "agents": self.agent_snapshot(now)}
                )
            await asyncio.sleep(1.0)

    def history(self) -> dict[str, list[dict[str, Any]]]:
        """The last hour's samples per queue, for the wallboard's chart."""
        return {name: list(points) for name, points in self._history.items()}

    # --- reading ------------------------------------------------------------------

    def queue_snapshot(self, now: float) -> list[dict[str, Any]]:
        """Live figures per queue."""
        members: dict[str, list[int]] = {q: [] for q in self.router.queues}
        for agent_id in self.router.agents:
            for queue_name in self.router.queues_for_agent(agent_id):
                members[queue_name].append(agent_id)
        result = []
        for name, queue in self.router.queues.items():
            agents = [self.router.agents[a] for a in members[name]]
            figures = self.stats.queue_figures(name, now)
            today = figures["today"]
            result.append(
                {
                    "name": name,
                    "channels": list(queue.channels),
                    "sla_seconds": queue.sla_seconds,
                    **live_queue_figures(self.router.queued(name), agents, now),
                    "service_level": today["service_level"],
                    "asa_seconds": today["asa_seconds"],
                    "abandoned": today["abandoned"],
                    "windows": figures,
                }
            )
        return result

    def agent_snapshot(self, now: float) -> list[dict[str, Any]]:
        """Live state of every agent."""
        current = self._current_contacts()
        return [
            self.agent_state(agent_id, now, current.get(agent_id))
            for agent_id in sorted(self.agents)
        ]

    def _current_contacts(self) -> dict[int, ContactInfo]:
        current: dict[int, ContactInfo] = {}
        for info in self.contacts.values():
            if info.agent_id is not None and info.state != "closed":
                current.setdefault(info.agent_id, info)
        return current

    def agent_state(
        self, agent_id: int, now: float | None = None, current: ContactInfo | None = None
    ) -> dict[str, Any]:
        """One agent as the desktop and the wallboard show them."""
        now = self.clock() if now is None else now
        info = self.agents[agent_id]
        agent = self.router.agents[agent_id]
        if current is None:
            current = self._contact_of(agent)
        return {
            "type": "agent_state",
            "user_id": agent_id,
            "username": info.username,
            "display_name": info.display_name,
            "status": agent.status,
            "reason": agent.reason,
            # Restored "ready" after a restart, waiting for a desktop: no offers yet.
            "awaiting_desktop": agent.confirm_by is not None,
            "activity": agent.activity(now),
            "since": max(agent.status_since, agent.activity_since),
            "wrap_up_until": agent.wrap_up_until,
            "queues": self.router.queues_for_agent(agent_id),
            "contact": current.public() if current else None,
            "today": self.stats.agent_figures(agent_id, now),
        }

    # --- helpers ------------------------------------------------------------------

    def _contact_of(self, agent: Agent) -> ContactInfo | None:
        # The router knows what the agent holds: look those up instead of scanning.
        for contact_id in (*agent.active, *agent.offered):
            info = self.contacts.get(int(contact_id)) if contact_id.isdigit() else None
            if info is not None and info.state != "closed":
                return info
        for pending in self._wrapping.get(agent.id, []):
            return pending
        return None

    def _changed(self) -> None:
        self._supervisors_dirty = True
        self._wake.set()

    def _push_agent(self, agent_id: int) -> None:
        if agent_id in self.agents:
            self.hub.to_agent(agent_id, self.agent_state(agent_id))

    def _push_contact(self, info: ContactInfo) -> None:
        if info.agent_id is not None:
            self.hub.to_agent(info.agent_id, {"type": "contact", **info.public()})

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
        elif info.channel == "email" and info.address:
            pop = await self.screen_pops.by_email(info.address)
        elif info.address:
            pop = await self.screen_pops.by_phone(info.address)
        else:
            pop = await self.screen_pops.by_phone("")
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

    def _persist(self, interaction_id: int, **fields: Any) -> None:
        self.writer.write(interaction_id, **fields)

    def _record(
        self, kind: str, info: ContactInfo, at: float, *, agent_id: int | None = None, **why: Any
    ) -> None:
        """A step of the contact's life cycle: counted, and logged in the store."""
        self._record_event(
            LifeCycleEvent(
                kind,
                as_stored(at),
                info.interaction_id,
                info.channel,
                info.queue,
                info.agent_id if agent_id is None else agent_id,
                why,
            )
        )

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

    def _offered_to(self, agent_id: int, interaction_id: int) -> ContactInfo:
        info = self.contacts.get(interaction_id)
        if info is None or info.state != "offered" or info.agent_id != agent_id:
            raise RoutingError(
                "routing.no_such_offer", f"contact {interaction_id} is not offered to you"
            )
        return info


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
