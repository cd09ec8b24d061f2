"""Email, SMS and web chat in the daemon: the message intake and delivery loop, each
enabled channel's adapter, and what the agents' desktops hear of their conversations.

Each channel is switched on in config (`channels.<name>.enabled`); an enabled channel
whose adapter cannot start (no IMAP server, say) shows `down` with the reason on /status
and retries on its own, while the others run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from adapters.channels import CHANNEL_SPECS
from adapters.messaging.delivery import MessageDelivery
from adapters.messaging.events import CustomerTyping, MessageReceived, MessageStatusChanged
from adapters.messaging.intake import MessageIntake, TextChannelRoute
from adapters.messaging.model import MessageSender
from adapters.messaging.survey import Survey
from contact_center.channel_runtime import AdapterStart, LatePorts
from contact_center.chat_wiring import chat_web_routes, start_chat
from contact_center.config import ChatChannelConfig, EmailChannelConfig, SmsChannelConfig
from contact_center.email_wiring import start_email
from contact_center.notifier import conversation_message, customer_typing_message
from contact_center.sms_wiring import sms_web_routes, start_sms
from contact_center.web.routes import RouteSpec
from contact_center.web.serialize import message_json
from crm_store.models import Message

if TYPE_CHECKING:
    from contact_center.app import Daemon

log = logging.getLogger(__name__)

TEXT_CHANNELS = ("email", "sms", "chat")

# Each channel's adapter, started with the intake when the channel is enabled.
ADAPTERS: dict[str, AdapterStart] = {"email": start_email, "sms": start_sms, "chat": start_chat}


def surveys(daemon: Daemon) -> dict[str, Survey]:
    """The channels that ask "how did we do?" when a contact ends."""
    sms = daemon.config.channels.sms
    if not sms.enabled or not sms.csat_question:
        return {}
    return {"sms": Survey(sms.csat_question, sms.csat_window_hours * 3600.0)}


def web_routes(daemon: Daemon) -> list[RouteSpec]:
    """The public routes of the enabled channels (providers' webhooks, the chat widget)."""
    late = LatePorts(daemon)
    specs: list[RouteSpec] = []
    if daemon.config.channels.sms.enabled:
        specs += sms_web_routes(daemon, late)
    if daemon.config.channels.chat.enabled:
        specs += chat_web_routes(daemon, late)
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
        self._slots = asyncio.Semaphore(4)  # store reads at once, of the pool's connections
        self._tasks: set[asyncio.Task[None]] = set()

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

    # Off the bus: each push reads the message back from the store, and the bus must
    # not wait for that (it carries every contact's events, one at a time).
    def _later(self, interaction_id: int, message_id: int, kind: str) -> None:
        async def push() -> None:
            async with self._slots:
                try:
                    await self._push(interaction_id, message_id, kind)
                except Exception:
                    log.exception("message %s: not pushed to the desktop", message_id)

        task = asyncio.create_task(push())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def on_received(self, event: MessageReceived) -> None:
        routing = self.daemon.routing
        if routing is not None and routing.agent_on(event.interaction_id) is None:
            return  # waiting for an agent: whoever takes it reads the conversation then
        self._later(event.interaction_id, event.message_id, "message")

    async def on_status(self, event: MessageStatusChanged) -> None:
        self._later(event.interaction_id, event.message_id, "message_status")

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
            surveys=surveys(daemon),
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
