"""The FastAGI server: accept Asterisk's AGI(agi://...) connections and run a handler each.

Written instead of panoramisk's, whose read loop spins forever when a client closes
before the blank line ending the environment. Here every read is bounded in time and
length, EOF is always seen, and nothing a client sends or fails to send can stop the
server: a bad session is counted, logged and closed. A handler exception is logged, the
socket is closed, and Asterisk goes on with the dialplan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace

from adapters.agi import codec
from adapters.agi.channel import (
    DEFAULT_MEDIA_TIMEOUT,
    AgiChannel,
    AgiError,
    AgiTimeout,
    CallerHungUp,
    read_line,
)
from adapters.agi.codec import AgiEnvironment, AgiProtocolError
from crm_store.errors import ContactCenterError

log = logging.getLogger(__name__)

AgiHandler = Callable[[AgiEnvironment, AgiChannel], Awaitable[None]]
MAX_ENV_LINES = 256  # a real environment has about 25 lines plus one per argument
STOP_TIMEOUT = 5.0  # seconds stop() waits for cancelled sessions to end


class ListenError(ContactCenterError):
    """The FastAGI port cannot be opened (in use, not allowed)."""

    error_id = "listen.failed"


@dataclass(slots=True)
class AgiServerStats:
    """Counters since start; `active` is the number of sessions open now."""

    connections: int = 0  # accepted connections
    sessions_served: int = 0  # environment read and a handler run (or unknown script)
    early_closes: int = 0  # closed by the client before the end of the environment
    timeouts: int = 0  # stalled environment, or a command reply not in time
    protocol_errors: int = 0  # garbage, over-long lines, endless environment
    unknown_scripts: int = 0  # no route for agi_network_script
    handler_errors: int = 0  # the handler raised something other than the above
    caller_hangups: int = 0  # CallerHungUp reached the server
    active: int = 0


def resolve_route(routes: Mapping[str, AgiHandler], script: str) -> tuple[str, AgiHandler] | None:
    """The longest route that is the script path or a `/`-separated prefix of it."""
    script = script.strip("/")
    best: tuple[str, AgiHandler] | None = None
    for prefix, handler in routes.items():
        key = prefix.strip("/")
        if (script == key or key == "" or script.startswith(key + "/")) and (
            best is None or len(key) > len(best[0])
        ):
            best = (key, handler)
    return best


class FastAgiServer:
    """Listens for FastAGI connections and runs the handler the script path selects."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: AgiHandler | Mapping[str, AgiHandler],
        *,
        read_timeout: float,
        env_timeout: float | None = None,
        media_timeout: float = DEFAULT_MEDIA_TIMEOUT,
        backlog: int = 1024,
        max_line: int = 8192,
    ) -> None:
        self.host = host
        self.port = port
        # A single handler serves every script; a mapping routes by path prefix.
        self._routes: Mapping[str, AgiHandler] | None = (
            handler if isinstance(handler, Mapping) else None
        )
        self._handler: AgiHandler | None = None if isinstance(handler, Mapping) else handler
        self.read_timeout = read_timeout
        self.env_timeout = read_timeout if env_timeout is None else env_timeout
        self.media_timeout = media_timeout
        self.backlog = backlog
        self.max_line = max_line
        self._server: asyncio.Server | None = None
        self._sessions: dict[asyncio.Task[None], AgiChannel | None] = {}
        self._writers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._stats = AgiServerStats()

    @property
    def stats(self) -> AgiServerStats:
        """A snapshot of the counters."""
        return replace(self._stats, active=len(self._sessions))

    @property
    def active_sessions(self) -> int:
        """Connections open now."""
        return len(self._sessions)

    @property
    def serving(self) -> bool:
        """True while the listening socket is open."""
        return self._server is not None and self._server.is_serving()

    async def start(self) -> None:
        """Open the listening socket; `port` becomes the bound port (useful with 0)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._on_connect,
            self.host,
            self.port,
            backlog=self.backlog,
            limit=self.max_line,
        )
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("FastAGI server listening on %s:%d", self.host, self.port)

    async def stop(self, grace: float = 0.0) -> None:
        """Stop listening, give sessions `grace` seconds, then close and cancel the rest."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if grace > 0 and self._sessions:
            await asyncio.wait(list(self._sessions), timeout=grace)
        # Closing the socket lets Asterisk go on with the dialplan (queue fallback).
        for task, writer in list(self._writers.items()):
            writer.close()
            task.cancel()
        if self._sessions:
            # Bounded: a handler that swallows its cancellation must not hang shutdown.
            _, stuck = await asyncio.wait(list(self._sessions), timeout=STOP_TIMEOUT)
            if stuck:
                log.warning("FastAGI: %d session(s) ignored cancellation", len(stuck))
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        log.info("FastAGI server stopped")

    async def __aenter__(self) -> FastAgiServer:
        """Start on entering."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop on leaving."""
        await self.stop()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection, start to end; never raises (asyncio would only log it)."""
        task = asyncio.current_task()
        assert task is not None  # a client callback always runs in a task
        self._sessions[task] = None
        self._writers[task] = writer
        self._stats.connections += 1
        peer = _peer(writer)
        try:
            await self._session(task, reader, writer, peer)
        except asyncio.CancelledError:
            log.info("FastAGI session %s cancelled (server stopping)", peer)
        except Exception:
            # A bug here must not escape: the session is closed below and that is all.
            log.exception("FastAGI session %s failed", peer)
        finally:
            channel = self._sessions.pop(task, None)
            self._writers.pop(task, None)
            if channel is not None:
                await channel.close()
            else:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _session(
        self,
        task: asyncio.Task[None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        """Read the environment, pick the handler, run it."""
        env = await self._read_environment(reader, peer)
        if env is None:
            return
        name = f"{env.channel or peer} ({env.uniqueid})"
        channel = AgiChannel(
            reader,
            writer,
            read_timeout=self.read_timeout,
            media_timeout=self.media_timeout,
            name=name,
        )
        self._sessions[task] = channel
        self._stats.sessions_served += 1
        handler, env = self._route(env)
        try:
            if handler is None:
                await self._reject(env, channel)
            else:
                log.info("FastAGI %s: script %r", name, env.network_script)
                await handler(env, channel)
        except CallerHungUp as exc:
            self._stats.caller_hangups += 1
            log.info("FastAGI %s: caller hung up (%s)", name, exc)
        except AgiTimeout as exc:
            self._stats.timeouts += 1
            log.warning("FastAGI %s: %s", name, exc)
        except AgiProtocolError as exc:
            self._stats.protocol_errors += 1
            log.warning("FastAGI %s: protocol error: %s", name, exc)
        except AgiError as exc:
            self._stats.handler_errors += 1
            log.warning("FastAGI %s: AGI command failed: %s", name, exc)
        except Exception:
            self._stats.handler_errors += 1
            log.exception("FastAGI %s: handler for %r raised", name, env.network_script)

    async def _read_environment(
        self, reader: asyncio.StreamReader, peer: str
    ) -> AgiEnvironment | None:
        """The agi_* block up to its blank line, or None (counted) if it never comes."""
        pairs: list[tuple[str, str]] = []
        try:
            async with asyncio.timeout(self.env_timeout):
                while True:
                    line = await read_line(reader)
                    if line is None:
                        self._stats.early_closes += 1
                        log.info("FastAGI %s closed before the end of the environment", peer)
                        return None
                    if line in ("", "\r"):
                        break
                    if len(pairs) >= MAX_ENV_LINES:
                        raise AgiProtocolError("environment has too many lines")
                    pairs.append(codec.parse_env_line(line))
        except TimeoutError:
            self._stats.timeouts += 1
            log.warning("FastAGI %s sent no complete environment in %ss", peer, self.env_timeout)
            return None
        except AgiProtocolError as exc:
            self._stats.protocol_errors += 1
            log.warning("FastAGI %s: bad environment: %s", peer, exc)
            return None
        except (ConnectionError, OSError) as exc:
            self._stats.early_closes += 1
            log.info("FastAGI %s: connection lost during the environment: %s", peer, exc)
            return None
        return codec.build_environment(pairs)

    def _route(self, env: AgiEnvironment) -> tuple[AgiHandler | None, AgiEnvironment]:
        """The handler for the script path, and the environment carrying the route."""
        if self._routes is None:
            return self._handler, env
        found = resolve_route(self._routes, env.script)
        if found is None:
            return None, env
        prefix, handler = found
        return handler, replace(env, route=prefix)

    async def _reject(self, env: AgiEnvironment, channel: AgiChannel) -> None:
        """No handler for this script: say so on the console, hang up, close."""
        self._stats.unknown_scripts += 1
        log.warning("FastAGI %s: no handler for script %r", channel.name, env.network_script)
        await channel.verbose(f"FastAGI: no handler for script {env.script}", 1)
        await channel.hangup()


def _peer(writer: asyncio.StreamWriter) -> str:
    """host:port of the client, for logs."""
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
