"""SMS over Twilio in the daemon: the signed webhooks (public routes) and the sender."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.messaging.intake import MessageIntake
from adapters.messaging.store_sinks import StoreOptOuts
from adapters.sms.sender import TwilioSender
from adapters.sms.webhooks import sms_routes
from contact_center.channel_runtime import LatePorts, RunningChannel
from contact_center.web.routes import PUBLIC, RouteSpec

if TYPE_CHECKING:
    from contact_center.app import Daemon


async def start_sms(daemon: Daemon, _intake: MessageIntake) -> RunningChannel:
    """SMS over Twilio: webhooks in (routes from `web_routes`), the REST API out."""
    assert daemon.sessionmaker is not None
    config = daemon.config.channels.sms
    sender = TwilioSender(config, StoreOptOuts(daemon.sessionmaker), daemon.config.web.public_url)
    daemon.health.set(
        "channel.sms", "up", f"Twilio {config.api_base_url}, from {config.from_number}"
    )
    return RunningChannel(sender, sender.close)


def sms_web_routes(daemon: Daemon, late: LatePorts) -> list[RouteSpec]:
    """Twilio's webhooks; public: Twilio's signature, checked by each handler, is the auth."""
    sms = daemon.config.channels.sms
    routes = sms_routes(late, late, late, sms, daemon.config.web.public_url)
    return [RouteSpec(r.method, r.path, r.handler, PUBLIC, "Twilio webhook") for r in routes]
