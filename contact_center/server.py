"""Running the daemon: serve the app until SIGTERM/SIGINT, then shut down in order."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from contact_center.app import make_app
from contact_center.config import Config
from contact_center.keys import DAEMON

log = logging.getLogger(__name__)


def public_url(config: Config, port: int) -> str:
    """Where a person should point a browser."""
    if config.web.public_url:
        return config.web.public_url
    host = config.web.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


async def serve(config: Config, *, ready: asyncio.Event | None = None) -> int:
    """Run until a stop signal; returns the process exit code."""
    app = make_app(config)
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=config.web.shutdown_timeout_seconds
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.setup()  # starts every component (database, bus, pbx, channels)
        site = web.TCPSite(runner, config.web.host, config.web.port, backlog=1024)
        await site.start()
        port = _bound_port(site) or config.web.port
        daemon = app[DAEMON]
        log.info(
            "contact center listening on %s (database: %s, pbx: %s)",
            public_url(config, port),
            daemon.database_detail,
            config.pbx.mode,
        )
        # stdout, not the log: this is the line a person starting the daemon looks for.
        print(
            f"Contact center is up: open {public_url(config, port)}/login in a browser "
            "(Ctrl+C to stop)",
            flush=True,
        )
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("stop requested: finishing in-flight work")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        # Stops accepting, waits for in-flight requests, then runs component
        # tear-down in reverse order: channels, pbx, bus (drained), database.
        await runner.cleanup()
    log.info("stopped cleanly")
    return 0


def _bound_port(site: web.TCPSite) -> int | None:
    server = site._server  # aiohttp keeps the asyncio server here; port 0 needs it
    sockets = getattr(server, "sockets", None) or []
    for sock in sockets:
        return int(sock.getsockname()[1])
    return None
