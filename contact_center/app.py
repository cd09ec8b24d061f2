"""Composition root: builds every component and wires the bus, top to bottom.

Reading this file should tell a newcomer what runs and in which order. Each
component is an aiohttp cleanup context: the code before `yield` starts it, the
code after stops it, and aiohttp stops them in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from adapters.asterisk.channel import VOICE
from adapters.asterisk.pbx import AsteriskPbx
from adapters.asterisk.settings import AgiConfig, AmiConfig, PbxConfig
from adapters.channels import CHANNEL_SPECS
from adapters.messaging.delivery import MessageDelivery
from adapters.messaging.intake import MessageIntake
from adapters.simasterisk import SimulatedAsterisk
from adapters.simasterisk.controls import AGENT_PHONE, SimulatorControls, generate_calls
from adapters.simasterisk.phones import Phones
from adapters.simasterisk.traffic import TrafficModel
from adapters.webchat import WebChat
from contact_center import chat_wiring, heap, roster_sync, sms_wiring, text_channels
from contact_center.auth import revocation
from contact_center.auth.passwords import LoginGate
from contact_center.auth.ratelimit import LoginRateLimiter
from contact_center.auth.sessions import MemorySessionStore, SessionStore
from contact_center.auth.stored_sessions import StoreSessionStore
from contact_center.bus import EventBus
from contact_center.config import Config
from contact_center.flows import load_configured_flows
from contact_center.health import HealthRegistry, State, watch_store_writer
from contact_center.keys import DAEMON
from contact_center.metrics import Metrics
from contact_center.notifier import BrowserNotifier
from contact_center.web import (
    api_customers,
    api_interactions,
    api_routing,
    api_screen_pop,
    api_service_requests,
    api_users,
    auth,
    home,
    openapi,
    pages,
    system,
    ws,
)
from contact_center.web.errors import error_middleware
from contact_center.web.hub import Hub
from contact_center.web.routes import add_routes
from crm_store import migrate
from crm_store.database import describe_database, is_sqlite, make_engine, make_sessionmaker
from crm_store.fast_intake import SqliteIntake
from crm_store.models import ContactPoint
from crm_store.screen_pop import ScreenPopReader
from ivr_flows.model import Flow
from routing.channels import ChannelPort, Channels
from routing.events import (
    ContactAnswered,
    ContactEnded,
    ContactHeld,
    ContactQueued,
    ContactRingFailed,
    ContactTransferred,
    ContactUnheld,
)
from routing.intake import StoreOutbox
from routing.service import RoutingService
from routing.telephony import Telephony

log = logging.getLogger(__name__)


class DatabaseBehind(Exception):
    """The database has an older schema than this release; upgrading is the operator's call."""


@dataclass
class Daemon:
    """Everything the running daemon holds, reachable from handlers via `app[DAEMON]`."""

    config: Config
    health: HealthRegistry = field(default_factory=HealthRegistry)
    bus: EventBus = field(default_factory=EventBus)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    engine: AsyncEngine | None = None
    sessionmaker: async_sessionmaker[AsyncSession] | None = None
    database_detail: str = ""
    screen_pops: ScreenPopReader | None = None
    fast_intake: SqliteIntake | None = None
    # Contacts the store could not take yet (locked, down): stored when it is back.
    outbox: StoreOutbox | None = None
    telephony: Telephony | None = None
    # The simulator's controls (place a call, the caller hangs up), when the PBX is one.
    simulator: SimulatorControls | None = None
    routing: RoutingService | None = None
    # Text channels: customers' messages in, agents' messages out (None: none running).
    messages: MessageIntake | None = None
    delivery: MessageDelivery | None = None
    webchat: WebChat | None = None
    # Mails a chat's transcript (interaction id, address), when email runs.
    transcripts: Callable[[int, str], Awaitable[None]] | None = None
    flows: dict[str, Flow] = field(default_factory=dict)
    metrics: Metrics = field(init=False)
    sessions: SessionStore = field(init=False)
    login_limiter: LoginRateLimiter = field(init=False)
    login_gate: LoginGate = field(default_factory=LoginGate)
    hub: Hub = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.health, self.bus)
        self.sessions = _session_store(self)
        self.login_limiter = LoginRateLimiter(self.config.auth.login_attempts_per_minute)
        self.hub = Hub(
            queue_bytes=self.config.web.websocket_queue_bytes,
            sockets_per_user=self.config.web.websocket_sockets_per_user,
        )


def _session_store(daemon: Daemon) -> SessionStore:
    """`web.sessions`: in the CRM store (shared by the daemons on it) or in memory."""
    auth = daemon.config.auth
    lifetime = auth.session_hours * 3600.0
    idle = None if auth.session_idle_minutes is None else auth.session_idle_minutes * 60.0
    if daemon.config.web.sessions == "memory":
        return MemorySessionStore(lifetime, idle)
    return StoreSessionStore(lambda: daemon.sessionmaker, lifetime, idle)


# --- components ---------------------------------------------------------------


def database_component(daemon: Daemon) -> Callable[[web.Application], AsyncIterator[None]]:
    """Open the CRM store; migrate a new database; refuse an out-of-date one."""

    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        url = daemon.config.database.url
        daemon.database_detail = describe_database(url)
        daemon.health.set("database", "starting", daemon.database_detail)
        revision = await migrate.current_revision(url)
        if revision is None:
            log.info("new database at %s: creating the schema", daemon.database_detail)
            await migrate.upgrade(url)
        elif not await migrate.is_up_to_date(url):
            raise DatabaseBehind(
                f"the database at {daemon.database_detail} has schema {revision}, older than "
                "this release: back it up, then run `contact-center db upgrade`"
            )
        daemon.engine = make_engine(url, echo=daemon.config.database.echo)
        daemon.sessionmaker = make_sessionmaker(daemon.engine)
        # The hot read path of every offered contact: its own connection (see screen_pop).
        daemon.screen_pops = await ScreenPopReader.open(
            url, daemon.engine, default_region=daemon.config.database.default_region
        )
        if is_sqlite(url):
            daemon.fast_intake = await SqliteIntake.open(url)
        # One writer per database: every hot-path write queues here (bounded; callers
        # wait when it is full) and is retried while the store is busy or down.
        daemon.outbox = StoreOutbox(
            daemon.sessionmaker,
            fast=daemon.fast_intake,
            limit=daemon.config.database.write_queue_limit,
        )
        await daemon.outbox.start()
        watch_store_writer(daemon.health, daemon.outbox)
        daemon.metrics.watch_store_writer(daemon.outbox)
        daemon.health.set("database", "up", daemon.database_detail)
        yield
        # Everything else has stopped: what is still held gets its last chance.
        await daemon.outbox.stop()
        await daemon.screen_pops.close()
        if daemon.fast_intake is not None:
            await daemon.fast_intake.close()
        # Runs after the web server has stopped taking requests and finished the
        # in-flight ones, so no write is cut in half.
        await daemon.engine.dispose()
        daemon.health.set("database", "down", daemon.database_detail, error="stopped")

    return ctx


def bus_component(daemon: Daemon) -> Callable[[web.Application], AsyncIterator[None]]:
    """Start the event bus; on stop, deliver everything already published."""

    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        daemon.bus.start()
        for event_name, handler in daemon.bus.subscriptions():
            log.debug("bus: %s -> %s", event_name, handler)
        yield
        await daemon.bus.stop()

    return ctx


def pbx_component(daemon: Daemon) -> Callable[[web.Application], AsyncIterator[None]]:
    """The telephony side: a real Asterisk (AMI + FastAGI), the simulated Asterisk behind
    the same adapter, or none."""

    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        mode = daemon.config.pbx.mode
        if mode == "off":
            daemon.health.set("pbx", "disabled", "pbx.mode is off")
        elif mode == "simulated":
            # Agents' phones ring until the desktop's Accept answers them (remote answer).
            sim = SimulatedAsterisk(
                ami_port=0,
                secret=secrets.token_urlsafe(16),
                phones=Phones(agents=AGENT_PHONE),
                agent_context=daemon.config.pbx.agent_context,
            )
            await sim.start()
            pbx = daemon.config.pbx.model_copy(
                update={
                    "ami": AmiConfig(
                        host="127.0.0.1",
                        port=sim.ami_port,
                        username="cti",
                        secret=SecretStr(sim.ami.secret),
                        reconnect_max_seconds=1.0,
                    ),
                    "agi": AgiConfig(host="127.0.0.1", port=0),
                    "remote_answer": "pjsip-talk",
                }
            )
            asterisk = _asterisk(daemon, pbx)
            await asterisk.start()
            sim.set_agi_address("127.0.0.1", asterisk.agi.port)
            daemon.telephony = asterisk
            daemon.simulator = SimulatorControls(sim, daemon.flows)
            daemon.health.set(
                "pbx",
                "up",
                f"simulated Asterisk on loopback (AMI port {sim.ami_port},"
                f" FastAGI port {asterisk.agi.port})",
            )
            await asterisk.ami.wait_connected(10)
            traffic = await _simulated_traffic(daemon, sim)
            yield
            if traffic is not None:
                traffic.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await traffic
            await asterisk.stop()
            await sim.stop()
            return
        else:
            asterisk = _asterisk(daemon, daemon.config.pbx)
            await asterisk.start()
            daemon.telephony = asterisk
            yield
            await asterisk.stop()
            return
        yield

    return ctx


async def _simulated_traffic(daemon: Daemon, sim: SimulatedAsterisk) -> asyncio.Task[None] | None:
    """Calls the simulated PBX places by itself (`pbx.simulator.calls_per_hour`)."""
    settings = daemon.config.pbx.simulator
    if settings.calls_per_hour <= 0:
        return None
    assert daemon.sessionmaker is not None
    async with daemon.sessionmaker() as session:
        numbers = list(
            await session.scalars(
                select(ContactPoint.value).where(ContactPoint.kind == "phone").limit(1000)
            )
        )
    model = TrafficModel(
        rate=settings.calls_per_hour / 3600,
        known_numbers=numbers,
        unknown_share=settings.unknown_share if numbers else 1.0,
        menus=[dict(menu) for menu in settings.menus],
        talk_seconds=settings.talk_seconds,
        patience=settings.patience_seconds,
    )
    log.info(
        "the simulated PBX places about %g calls an hour (%d known callers)",
        settings.calls_per_hour,
        len(numbers),
    )
    return asyncio.create_task(
        generate_calls(sim, model, random.Random()), name="simulated-traffic"
    )


def _asterisk(daemon: Daemon, pbx: PbxConfig) -> AsteriskPbx:
    assert daemon.sessionmaker is not None
    details = {
        "ami": f"AMI {pbx.ami.host}:{pbx.ami.port}",
        "agi": f"FastAGI {pbx.agi.host}:{pbx.agi.port}",
    }
    states: dict[str, State] = {
        "connecting": "starting",
        "stopped": "down",
        "up": "up",
        "down": "down",
    }

    def report(component: str, state: str, error: str | None) -> None:
        daemon.health.set(
            f"pbx.{component}", states.get(state, "down"), details[component], error=error
        )

    return AsteriskPbx(
        pbx,
        bus=daemon.bus,
        sessionmaker=daemon.sessionmaker,
        flows=daemon.flows,
        default_flow=daemon.config.ivr.default_flow,
        region=daemon.config.database.default_region,
        on_state=report,
        fast_intake=daemon.fast_intake,
        outbox=daemon.outbox,
    )


def routing_component(daemon: Daemon) -> Callable[[web.Application], AsyncIterator[None]]:
    """The router: every contact on every channel goes through it."""

    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        assert daemon.sessionmaker is not None and daemon.screen_pops is not None
        # Each channel as it declares itself; the ones with their own side have a port.
        ports: dict[str, ChannelPort] = {}
        if daemon.telephony is not None:
            ports[VOICE.name] = daemon.telephony
        service = RoutingService(
            daemon.config,
            bus=daemon.bus,
            sessionmaker=daemon.sessionmaker,
            notifier=BrowserNotifier(
                daemon.hub,
                contact_listeners=[
                    chat_wiring.chat_contact_listener(daemon),
                    sms_wiring.survey_listener(daemon),
                ],
            ),
            screen_pops=daemon.screen_pops,
            channels=Channels(CHANNEL_SPECS, ports),
            telephony=daemon.telephony,
            outbox=daemon.outbox,
        )
        # The wiring diagram of a contact's life: who hears what.
        bus = daemon.bus
        bus.subscribe(ContactQueued, service.on_queued)
        bus.subscribe(ContactAnswered, service.on_answered)
        bus.subscribe(ContactRingFailed, service.on_ring_failed)
        bus.subscribe(ContactHeld, service.on_held)
        bus.subscribe(ContactUnheld, service.on_unheld)
        bus.subscribe(ContactTransferred, service.on_transferred)
        bus.subscribe(ContactEnded, service.on_ended)
        await service.start()
        daemon.routing = service
        yield
        await service.stop()
        await daemon.bus.drain()

    return ctx


# --- web ----------------------------------------------------------------------


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count and time requests by route template, not by raw path (bounded labels)."""
    started = time.perf_counter()
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics = request.app[DAEMON].metrics
        metrics.http_requests.labels(request.method, name, str(status)).inc()
        metrics.http_seconds.labels(name).observe(time.perf_counter() - started)


def make_app(config: Config) -> web.Application:
    """The daemon as an aiohttp application: components, routes, subscriptions."""
    daemon = Daemon(config)
    # IVR flows are checked before anything starts: a broken flow is a start-up error.
    daemon.flows = load_configured_flows(config)
    # Outermost first: every request is counted, errors become JSON, then roles are checked.
    app = web.Application(middlewares=[metrics_middleware, error_middleware, auth.auth_middleware])
    app[DAEMON] = daemon

    # Start order; aiohttp stops them in reverse (channels first, database last).
    app.cleanup_ctx.extend(
        [
            database_component(daemon),
            # Ends sessions voided by the CLI or another daemon; stops the hash threads.
            revocation.component(daemon),
            bus_component(daemon),
            pbx_component(daemon),
            routing_component(daemon),
            # Users changed by the CLI or another daemon reach this one's router.
            roster_sync.component(lambda: daemon.sessionmaker, lambda: daemon.routing),
            # Email, SMS and web chat (contact_center/text_channels.py).
            text_channels.text_channels_component(daemon, text_channels.ADAPTERS),
            # Last: freezes what start-up made, then keeps GC pauses short (heap.py).
            heap.component(config.gc),
        ]
    )

    # Bus subscriptions: the wiring diagram of the daemon. Each later feature adds
    # its lines here, e.g. `daemon.bus.subscribe(CallQueued, routing.on_call_queued)`.

    add_routes(app, home.ROUTES)
    add_routes(app, system.ROUTES)
    add_routes(app, auth.ROUTES)
    add_routes(app, api_customers.ROUTES)
    add_routes(app, api_interactions.ROUTES)
    add_routes(app, api_screen_pop.ROUTES)
    add_routes(app, api_service_requests.ROUTES)
    add_routes(app, api_users.ROUTES)
    add_routes(app, openapi.ROUTES)
    add_routes(app, ws.ROUTES)
    add_routes(app, api_routing.ROUTES)
    ws.add_ws_messages(app, api_routing.MESSAGES)
    ws.add_ws_messages(app, chat_wiring.WS_MESSAGES)
    ws.on_connect(app, api_routing.on_connect)
    add_routes(app, pages.ROUTES)
    add_routes(app, text_channels.web_routes(daemon))

    async def close_websockets(_app: web.Application) -> None:
        await daemon.hub.close_all()

    # Before the cleanup contexts: browsers are told to reconnect, then the store closes.
    app.on_shutdown.append(close_websockets)
    ws.add_ws_messages(app, ws.MESSAGES)
    return app
