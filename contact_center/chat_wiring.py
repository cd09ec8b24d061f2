"""Web chat in the daemon: the widget's socket and pages (public routes), the chat's
history and visitor events on the store and the bus, and what the visitor hears of the
agent (joined, typing, ended)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from adapters.messaging.events import CustomerTyping
from adapters.messaging.intake import MessageIntake
from adapters.webchat import ChatLimits, WebChat
from contact_center.channel_runtime import LatePorts, RunningChannel
from contact_center.keys import DAEMON
from contact_center.web.errors import ApiError
from contact_center.web.pages import SECURITY_HEADERS
from contact_center.web.routes import ANY_USER, PUBLIC, RouteSpec
from contact_center.web.ws import WsContext, WsMessageSpec
from crm_store import interactions, users
from crm_store.csat import record_contact_csat
from routing.contact_state import ContactInfo
from routing.events import ContactEnded

if TYPE_CHECKING:
    from contact_center.app import Daemon

log = logging.getLogger(__name__)


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
    try:
        await mailer(interaction_id, to)
    except Exception:
        # Said, not retried: the chat is over and the visitor can ask again.
        log.exception("chat %s: the transcript for %s could not be sent", interaction_id, to)


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


def chat_web_routes(daemon: Daemon, late: LatePorts) -> list[RouteSpec]:
    """The widget, its socket and the demo page; makes the daemon's web chat."""
    chat = daemon.config.channels.chat
    webchat = daemon.webchat = WebChat(
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
    return [
        RouteSpec(r.method, r.path, r.handler, PUBLIC, r.summary)
        for r in webchat.routes(SECURITY_HEADERS)
    ]
