"""Email, SMS and web chat in the daemon: the message intake and delivery loop, each
enabled channel's adapter, and what the agents' desktops hear of their conversations.

Each channel is switched on in config (`channels.<name>.enabled`); an enabled channel
whose adapter cannot start (no IMAP server, say) shows `down` with the reason on /status
and retries on its own, while the others run.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
from adapters.webchat import ChatLimits, WebChat
from contact_center.config import ChatChannelConfig, EmailChannelConfig, SmsChannelConfig
from contact_center.keys import DAEMON
from contact_center.notifier import conversation_message, customer_typing_message
from contact_center.web.errors import ApiError
from contact_center.web.pages import SECURITY_HEADERS
from contact_center.web.routes import ANY_USER, PUBLIC, RouteSpec
from contact_center.web.serialize import message_json
from contact_center.web.ws import WsContext, WsMessageSpec
from crm_store import interactions, users
from crm_store.csat import record_contact_csat
from crm_store.models import Message
from routing.contact_state import ContactInfo
from routing.events import ContactEnded
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


class StoreChatHistory:
    """A chat's messages as the widget shows them to a visitor who comes back."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def history(self, interaction_id: int) -> list[dict[str, Any]]:
        assert self.daemon.sessionmaker is not None
        async with self.daemon.sessionmaker() as session:
            rows = await interactions.list_messages(session, interaction_id)
            names = {
                user.id: user.display_name
                for user in await users.users_by_ids(
                    session, {r.author_id for r in rows if r.author_id is not None}
                )
            }
        return [
            {
                "id": row.provider_id if row.direction == "inbound" else str(row.id),
                "from": "visitor" if row.direction == "inbound" else "agent",
                "text": row.body,
                "at": row.created_at.timestamp(),
                **(
                    {"agent_name": names.get(row.author_id)}
                    if row.direction == "outbound" and row.author_id in names
                    else {}
                ),
            }
            for row in rows
        ]


class ChatSideEvents:
    """What chat visitors do, for the agent's side: typing, the end and its stars."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def visitor_typing(self, interaction_id: int) -> None:
        self.daemon.bus.publish(CustomerTyping(interaction_id, time.time()))

    async def visitor_ended(
        self, interaction_id: int, csat: int | None, transcript_to: str | None
    ) -> None:
        now = time.time()
        routing = self.daemon.routing
        if routing is not None and routing.life.contacts.get(interaction_id) is not None:
            info = routing.life.contacts[interaction_id]
            if info.state not in ("ended", "wrap_up", "closed"):
                # The visitor left or ended it: the contact ends as a call hung up would.
                self.daemon.bus.publish(ContactEnded(interaction_id, now, "customer_ended"))
        if csat is not None:
            assert self.daemon.sessionmaker is not None
            async with self.daemon.sessionmaker.begin() as session:
                moved = await record_contact_csat(session, interaction_id, csat)
            log.info("chat %s rated %s (service requests moved: %s)", interaction_id, csat, moved)
        if transcript_to:
            await send_transcript(self.daemon, interaction_id, transcript_to)


async def send_transcript(daemon: Daemon, interaction_id: int, to: str) -> None:
    """Mail the chat's transcript to the visitor, where email runs; said in the log
    otherwise (the visitor asked for it: it must not vanish silently)."""
    mailer = daemon.transcripts
    if mailer is None:
        log.warning(
            "chat %s: the visitor asked for the transcript at %s, but email is not running",
            interaction_id,
            to,
        )
        return
    await mailer(interaction_id, to)


def chat_contact_listener(daemon: Daemon) -> Callable[[int, ContactInfo], None]:
    """Tells the chat's visitor when an agent joins and when the agent ends it."""
    joined: set[int] = set()
    tasks: set[asyncio.Task[Any]] = set()

    def later(work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_contact(agent_id: int, contact: ContactInfo) -> None:
        webchat = daemon.webchat
        if webchat is None or contact.channel != "chat":
            return
        id_ = contact.interaction_id
        if contact.state == "talking" and id_ not in joined:
            joined.add(id_)
            name = _agent_name(daemon, agent_id)
            later(webchat.sender.agent_joined(id_, name))
        elif contact.state in ("ended", "wrap_up", "closed") and id_ in joined:
            joined.discard(id_)
            later(webchat.sender.chat_ended_by_agent(id_))

    return on_contact


def _agent_name(daemon: Daemon, agent_id: int) -> str:
    routing = daemon.routing
    if routing is None:
        return "Agent"
    try:
        return str(routing.agent_state(agent_id).get("display_name") or "Agent")
    except Exception:
        return "Agent"


async def start_chat(daemon: Daemon, _intake: MessageIntake) -> RunningChannel:
    """Web chat: the widget's socket (routes from `web_routes`), agents' messages back."""
    webchat = daemon.webchat
    assert webchat is not None, "web_routes makes the chat channel when it is enabled"
    webchat.start()
    daemon.health.set("channel.chat", "up", "widget at /chat/widget.js, demo at /chat/demo")
    return RunningChannel(webchat.sender, webchat.stop)


# Each channel's adapter, started with the intake when the channel is enabled.
ADAPTERS: dict[str, AdapterStart] = {"sms": start_sms, "chat": start_chat}


async def agent_typing(context: WsContext, message: dict[str, Any]) -> dict[str, Any]:
    """{"interaction_id"}: the agent is typing in a chat (the visitor sees it)."""
    daemon = context.app[DAEMON]
    interaction_id = message.get("interaction_id")
    if not isinstance(interaction_id, int) or isinstance(interaction_id, bool):
        raise ApiError(400, "request.invalid", "interaction_id: expected an integer")
    routing = daemon.routing
    if routing is None or routing.agent_on(interaction_id) != context.client.user_id:
        raise ApiError(403, "auth.forbidden", "an agent types only in their own contacts")
    shown = False
    if daemon.webchat is not None:
        name = _agent_name(daemon, context.client.user_id)
        shown = await daemon.webchat.sender.agent_typing(interaction_id, name)
    return {"shown": shown}


WS_MESSAGES = [WsMessageSpec("typing", ANY_USER, agent_typing, "I am typing (web chat)")]


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
    chat = daemon.config.channels.chat
    if chat.enabled:
        daemon.webchat = WebChat(
            sink=late,
            history=StoreChatHistory(daemon),
            events=ChatSideEvents(daemon),
            topics=chat.topics,
            queue=chat.queue,
            limits=ChatLimits(
                max_message_chars=chat.max_message_chars,
                messages_per_minute=chat.messages_per_minute,
                chats_per_address=chat.chats_per_address,
                resume_seconds=chat.resume_minutes * 60.0,
            ),
            allowed_origins=chat.allowed_origins,
            public_url=daemon.config.web.public_url,
        )
        # Public: visitors have no login; the socket checks origins and limits itself.
        specs += [
            RouteSpec(r.method, r.path, r.handler, PUBLIC, r.summary)
            for r in daemon.webchat.routes(SECURITY_HEADERS)
        ]
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
