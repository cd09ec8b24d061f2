"""SMS over Twilio in the daemon: the signed webhooks (public routes) and the sender."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from adapters.messaging.delivery import queue_reply
from adapters.messaging.intake import MessageIntake
from adapters.messaging.store_sinks import StoreOptOuts
from adapters.sms.sender import TwilioSender
from adapters.sms.webhooks import sms_routes
from contact_center.channel_runtime import LatePorts, RunningChannel
from contact_center.web.routes import PUBLIC, RouteSpec
from crm_store import interactions, opt_outs
from routing.contact_state import ContactInfo

if TYPE_CHECKING:
    from contact_center.app import Daemon

log = logging.getLogger(__name__)


async def start_sms(daemon: Daemon, _intake: MessageIntake) -> RunningChannel:
    """SMS over Twilio: webhooks in (routes from `web_routes`), the REST API out."""
    assert daemon.sessionmaker is not None
    config = daemon.config.channels.sms
    sender = TwilioSender(config, StoreOptOuts(daemon.sessionmaker), daemon.config.web.public_url)
    daemon.health.set(
        "channel.sms", "up", f"Twilio {config.api_base_url}, from {config.from_number}"
    )
    return RunningChannel(sender, sender.close)


def survey_listener(daemon: Daemon) -> Callable[[int, ContactInfo], None]:
    """Texts the satisfaction question once, when an agent's SMS contact is over."""
    asked: set[int] = set()
    tasks: set[asyncio.Task[None]] = set()

    async def ask(interaction_id: int, question: str) -> None:
        delivery, sessionmaker = daemon.delivery, daemon.sessionmaker
        if delivery is None or sessionmaker is None or "sms" not in delivery.senders:
            return
        try:
            async with sessionmaker.begin() as session:
                if await opt_outs.is_opted_out(
                    session, "sms", await _address(session, interaction_id)
                ):
                    return
                await queue_reply(session, interaction_id, body=question, author_id=None)
        except Exception:
            log.exception("contact %s: the satisfaction question was not queued", interaction_id)
            return
        delivery.wake()

    def on_contact(_agent_id: int, contact: ContactInfo) -> None:
        question = daemon.config.channels.sms.csat_question
        if contact.channel != "sms" or not question or contact.interaction_id in asked:
            return
        if contact.state in ("ended", "wrap_up", "closed") and contact.answered_at is not None:
            asked.add(contact.interaction_id)
            task = asyncio.ensure_future(ask(contact.interaction_id, question))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    return on_contact


async def _address(session: AsyncSession, interaction_id: int) -> str:
    return (await interactions.get_interaction(session, interaction_id)).address or ""


def sms_web_routes(daemon: Daemon, late: LatePorts) -> list[RouteSpec]:
    """Twilio's webhooks; public: Twilio's signature, checked by each handler, is the auth."""
    sms = daemon.config.channels.sms
    routes = sms_routes(late, late, late, sms, daemon.config.web.public_url)
    return [RouteSpec(r.method, r.path, r.handler, PUBLIC, "Twilio webhook") for r in routes]
