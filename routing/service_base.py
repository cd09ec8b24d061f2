"""What the routing service's parts share: its state, and the small steps each uses.

The service (`routing.service`) is one object made of parts: the roster of agents
(`routing.roster`), what agents ask of their contacts (`routing.agent_requests`), and the
shell that carries out the life cycle's effects. This base declares the state they share
and the helpers they all call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_store.screen_pop import ScreenPopReader
from routing.channels import ChannelPort, Channels
from routing.contact_state import ContactInfo
from routing.effects import Effect
from routing.events import ContactEnded
from routing.floor_view import AgentInfo, FloorView
from routing.lifecycle import ContactLifeCycle
from routing.outbox import StoreOutbox
from routing.ports import EventPublisher, Notifier
from routing.router import Router, RoutingError
from routing.settings import RoutingSource
from routing.stats import LifeCycleEvent, Statistics, Tally
from routing.telephony import Telephony
from routing.writer import InteractionWriter, as_stored


class ServiceBase:
    """The routing service's shared state and helpers."""

    config: RoutingSource
    bus: EventPublisher
    sessionmaker: async_sessionmaker[AsyncSession]
    notifier: Notifier
    screen_pops: ScreenPopReader
    channels: Channels
    # Click-to-dial and spy: the PBX's own commands, beyond the channel port.
    telephony: Telephony | None
    clock: Callable[[], float]
    router: Router
    life: ContactLifeCycle
    stats: Statistics
    tally: Tally
    agents: dict[int, AgentInfo]
    view: FloorView
    writer: InteractionWriter
    outbox: StoreOutbox | None
    _wake: asyncio.Event
    _supervisors_dirty: bool
    # Agents restored "ready" whose desktop has not connected yet: until when.
    _unconfirmed: dict[int, float]

    @property
    def contacts(self) -> dict[int, ContactInfo]:
        """The contacts in the life cycle, by interaction id."""
        return self.life.contacts

    async def _carry_out(self, effects: list[Effect]) -> None:
        """Carry out the life cycle's effects, in order (the service's shell)."""
        raise NotImplementedError

    async def on_ended(self, event: ContactEnded) -> None:
        """The contact is over (the service's bus handler)."""
        raise NotImplementedError

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
