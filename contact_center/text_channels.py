"""Email, SMS and web chat in the daemon: the message intake and delivery loop, each
enabled channel's adapter, and what the agents' desktops hear of their conversations.

Each channel is switched on in config (`channels.<name>.enabled`); an enabled channel
whose adapter cannot start (no IMAP server, say) shows `down` with the reason on /status
and retries on its own, while the others run.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.channels import CHANNEL_SPECS
from adapters.messaging.delivery import MessageDelivery
from adapters.messaging.events import CustomerTyping, MessageReceived, MessageStatusChanged
from adapters.messaging.intake import MessageIntake, TextChannelRoute
from adapters.messaging.model import InboundMessage, MessageSender, Received
from adapters.messaging.store_sinks import StoreOptOuts, StoreReceipts
from adapters.sms.sender import TwilioSender
from adapters.sms.webhooks import sms_routes
from contact_center.config import ChatChannelConfig, EmailChannelConfig, SmsChannelConfig
from contact_center.notifier import conversation_message, customer_typing_message
from contact_center.web.routes import PUBLIC, RouteSpec
from contact_center.web.serialize import message_json
from crm_store.models import Message
from routing.outbox import StoreUnavailable

if TYPE_CHECKING:
    from contact_center.app import Daemon

log = logging.getLogger(__name__)

TEXT_CHANNELS = ("email", "sms", "chat")


@dataclass
class RunningChannel:
    """A started channel adapter: its way out, and how it stops."""

    sender: MessageSender
    stop: Callable[[], Awaitable[None]]


AdapterStart = Callable[["Daemon", MessageIntake], Awaitable[RunningChannel]]


class _Late:
    """The ports webhooks write to, before the components they reach have started (routes
    are fixed before start-up): a request that comes too early gets 503, is retried."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _store(self) -> async_sessionmaker[AsyncSession]:
        if self.daemon.sessionmaker is None or self.daemon.messages is None:
            raise StoreUnavailable("the daemon is starting; try again shortly")
        return self.daemon.sessionmaker

    async def receive(self, message: InboundMessage) -> Received:
        self._store()
        assert self.daemon.messages is not None
        return await self.daemon.messages.receive(message)

    async def message_status(
        self, provider_id: str, status: str, error: str | None, at: float
    ) -> None:
        receipts = StoreReceipts(self._store(), self.daemon.bus, "sms")
        await receipts.message_status(provider_id, status, error, at)

    async def set_opted_out(
        self, channel: str, address: str, opted_out: bool, at: float, word: str
    ) -> None:
        await StoreOptOuts(self._store()).set_opted_out(channel, address, opted_out, at, word)

    async def is_opted_out(self, channel: str, address: str) -> bool:
        return await StoreOptOuts(self._store()).is_opted_out(channel, address)


async def start_sms(daemon: Daemon, _intake: MessageIntake) -> RunningChannel:
    """SMS over Twilio: webhooks in (routes from `web_routes`), the REST API out."""
    assert daemon.sessionmaker is not None
    config = daemon.config.channels.sms
    sender = TwilioSender(config, StoreOptOuts(daemon.sessionmaker), daemon.config.web.public_url)
    daemon.health.set(
        "channel.sms", "up", f"Twilio {config.api_base_url}, from {config.from_number}"
    )
    return RunningChannel(sender, sender.close)


# Each channel's adapter, started with the intake when the channel is enabled.
ADAPTERS: dict[str, AdapterStart] = {"sms": start_sms}


def web_routes(daemon: Daemon) -> list[RouteSpec]:
    """The public routes of the enabled channels (providers' webhooks, the chat widget)."""
    late = _Late(daemon)
    specs: list[RouteSpec] = []
    if daemon.config.channels.sms.enabled:
        routes = sms_routes(
            late, late, late, daemon.config.channels.sms, daemon.config.web.public_url
        )
        # Public: Twilio's signature, checked by each handler, is the authentication.
        specs += [RouteSpec(r.method, r.path, r.handler, PUBLIC, "Twilio webhook") for r in routes]
    return specs


def enabled_channels(daemon: Daemon) -> dict[str, Any]:
    """The text channels switched on in config, with their config sections."""
    channels = daemon.config.channels
    sections: dict[str, EmailChannelConfig | SmsChannelConfig | ChatChannelConfig] = {
        "email": channels.email,
        "sms": channels.sms,
        "chat": channels.chat,
    }
    return {name: section for name, section in sections.items() if section.enabled}


class ConversationFeed:
    """Pushes each text contact's messages and their delivery states to the desktop of
    the agent on the contact (and the message's author, if that is someone else)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _recipients(self, interaction_id: int, author_id: int | None) -> set[int]:
        routing = self.daemon.routing
        agent = routing.agent_on(interaction_id) if routing is not None else None
        return {a for a in (agent, author_id) if a is not None}

    async def _push(self, interaction_id: int, message_id: int, kind: str) -> None:
        assert self.daemon.sessionmaker is not None
        async with self.daemon.sessionmaker() as session:
            row = await session.get(Message, message_id)
            if row is None:
                return
            payload = message_json(row)
        for agent_id in self._recipients(interaction_id, row.author_id):
            self.daemon.hub.to_agent(
                agent_id, conversation_message(interaction_id, payload, kind=kind)
            )

    async def on_received(self, event: MessageReceived) -> None:
        await self._push(event.interaction_id, event.message_id, "message")

    async def on_status(self, event: MessageStatusChanged) -> None:
        await self._push(event.interaction_id, event.message_id, "message_status")

    async def on_typing(self, event: CustomerTyping) -> None:
        for agent_id in self._recipients(event.interaction_id, None):
            self.daemon.hub.to_agent(agent_id, customer_typing_message(event.interaction_id))


def text_channels_component(
    daemon: Daemon,
    adapters: dict[str, AdapterStart] | None = None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Starts the intake, the delivery loop and each enabled channel's adapter."""

    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        assert daemon.sessionmaker is not None
        enabled = enabled_channels(daemon)
        for name in TEXT_CHANNELS:
            if name not in enabled:
                daemon.health.set(
                    f"channel.{name}", "disabled", f"channels.{name}.enabled is false"
                )
        specs = {spec.name: spec for spec in CHANNEL_SPECS if spec.name in TEXT_CHANNELS}
        routes = {name: TextChannelRoute(queue=section.queue) for name, section in enabled.items()}
        intake = MessageIntake(
            daemon.sessionmaker,
            daemon.bus,
            specs=specs,
            routes=routes,
            region=daemon.config.database.default_region,
            outbox=daemon.outbox,
        )
        senders: dict[str, MessageSender] = {}
        running: list[Any] = []
        for name in enabled:
            start = (adapters or {}).get(name)
            if start is None:
                daemon.health.set(
                    f"channel.{name}",
                    "down",
                    "enabled in config",
                    error=f"the {name} adapter is not part of this release yet",
                )
                continue
            try:
                adapter = await start(daemon, intake)
            except Exception as exc:
                # One channel that cannot start does not stop the others (nor the daemon).
                log.exception("the %s channel did not start", name)
                daemon.health.set(f"channel.{name}", "down", "enabled in config", error=str(exc))
                continue
            running.append(adapter)
            senders[name] = adapter.sender
        delivery = MessageDelivery(daemon.sessionmaker, daemon.bus, senders)
        feed = ConversationFeed(daemon)
        daemon.bus.subscribe(MessageReceived, feed.on_received)
        daemon.bus.subscribe(MessageStatusChanged, feed.on_status)
        daemon.bus.subscribe(CustomerTyping, feed.on_typing)
        daemon.messages, daemon.delivery = intake, delivery
        delivery.start()
        try:
            yield
        finally:
            await delivery.stop()
            for adapter in reversed(running):
                await adapter.stop()

    return ctx
