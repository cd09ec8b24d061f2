"""What agents and supervisors ask of contacts: accept, decline, hold, transfer, hang up,
dial, listen in. Each is checked against what the contact's channel declares it can do,
then done through the life cycle and the channel's port."""

from __future__ import annotations

import logging

from crm_store import audit, interactions
from crm_store.actors import Actor
from crm_store.phones import try_normalize_phone
from routing.channels import Capability
from routing.dialing import dial_string, transfer_target
from routing.events import ContactEnded
from routing.intake import open_contact
from routing.router import RoutingError
from routing.service_base import ServiceBase
from routing.telephony import TelephonyError

log = logging.getLogger(__name__)

# Each contact action and the capability its channel must declare for it.
_ACTIONS = {
    "hangup": Capability.HANGUP,
    "hold": Capability.HOLD,
    "unhold": Capability.HOLD,
    "transfer": Capability.TRANSFER,
}


class AgentRequests(ServiceBase):
    """Agents' and supervisors' requests about contacts."""

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
            address_kind=self.channels.spec(channel).address_kind,
            outbox=self.outbox,
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
