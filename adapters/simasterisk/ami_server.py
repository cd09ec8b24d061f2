"""The simulated Asterisk's AMI listener: the wire protocol, sessions and login.

What it says and when follows the recorded Asterisk 22 sessions
(tests/fixtures/asterisk-traces): the banner line, `Response` then `ActionID` then the
body, FullyBooted and SuccessfulAuth after a good Login, "Permission denied" before one,
"Authentication failed" about a second after a bad one and then the socket closed, a Ping
without ActionID answered without one, `Response: Goodbye` then EOF on Logoff. Actions
that touch calls are handed to an `ActionRunner` (the simulator), whose reply goes out
before the events the action caused, as on a real Asterisk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from adapters.simasterisk.model import Event, Outcome

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
MAX_ACTION_BYTES = 64 * 1024


@dataclass(slots=True)
class Action:
    """One action block: headers in order; a repeated header (Variable) keeps all."""

    headers: dict[str, str]
    repeated: dict[str, list[str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The action's name, as sent."""
        return self.headers.get("Action", "")

    @property
    def action_id(self) -> str | None:
        """The client's ActionID, if it sent one."""
        return self.headers.get("ActionID")

    def get(self, key: str, default: str = "") -> str:
        """A header by name, case-insensitively (Asterisk's astman_get_header)."""
        for name, value in self.headers.items():
            if name.lower() == key.lower():
                return value
        return default

    def all(self, key: str) -> list[str]:
        """Every value of a repeated header."""
        for name, values in self.repeated.items():
            if name.lower() == key.lower():
                return values
        return []


@dataclass(slots=True)
class ActionResult:
    """A reply for the client, list items for it only, and what the action caused."""

    reply: Event
    items: list[Event] = field(default_factory=list)
    outcome: Outcome | None = None


class ActionRunner(Protocol):
    """Who carries out the call actions (the simulator)."""

    async def run_action(self, action: Action) -> ActionResult | None:
        """The result, or None when the action is unknown."""

    def apply(self, outcome: Outcome) -> None:
        """Send an outcome's events to every session and carry out its effects."""


def parse_action(block: bytes) -> Action:
    """An action block (without its blank line) as an Action."""
    action = Action({})
    for line in block.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.lstrip(" ")
        action.repeated.setdefault(key, []).append(value)
        action.headers.setdefault(key, value)
    return action


def encode(message: Event) -> bytes:
    """A message as bytes: `Key: value` CRLF lines, one per list item, then a blank line."""
    lines: list[str] = []
    for key, value in message.items():
        if isinstance(value, list):
            lines.extend(f"{key}: {item}" for item in value)
        else:
            lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def response(action: Action, status: str = "Success", **body: str) -> Event:
    """`Response`, then the client's ActionID (if any), then the body, in that order."""
    reply: Event = {"Response": status}
    if action.action_id is not None:
        reply["ActionID"] = action.action_id
    reply.update(body)
    return reply


def error(action: Action, message: str) -> Event:
    """`Response: Error` with Asterisk's message."""
    return response(action, "Error", Message=message)


def _tv(now: float) -> str:
    stamp = datetime.fromtimestamp(now, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}+0000"


class AmiSession:
    """One client connection."""

    def __init__(self, writer: asyncio.StreamWriter, number: int) -> None:
        self.writer = writer
        self.number = number
        self.authenticated = False
        self.events = True
        self.closed = False
        self.username = ""

    def send(self, messages: Iterable[Event]) -> int:
        """Queue messages on the socket; how many were written."""
        if self.closed or self.writer.is_closing():
            return 0
        data = b"".join(encode(m) for m in messages)
        if data:
            self.writer.write(data)
        return 1 if data else 0


class AmiServer:
    """Listens on host:port; one AmiSession per client."""

    def __init__(
        self,
        runner: ActionRunner,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "cti",
        secret: str = "cti-secret",
        auth_fail_delay: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runner = runner
        self.host, self.port = host, port
        self.username, self.secret = username, secret
        self.auth_fail_delay = auth_fail_delay
        self.clock = clock
        self.sessions: list[AmiSession] = []
        self.events_sent = 0
        self.logins = 0
        self.connections = 0
        self.actions: list[Action] = []
        self._server: asyncio.Server | None = None
        self._started = clock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen; `port` becomes the real port."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every session."""
        if self._server is not None:
            self._server.close()
        await self.drop_all()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def drop_all(self) -> None:
        """Cut every client connection (Asterisk restarting, a network loss)."""
        sessions, self.sessions = self.sessions, []
        for session in sessions:
            session.closed = True
            session.writer.close()
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.writer.wait_closed()

    def broadcast(self, events: list[Event]) -> None:
        """Send events to every logged-in session that asked for them."""
        if not events:
            return
        data = b"".join(encode(e) for e in events)
        for session in self.sessions:
            live = not session.closed and not session.writer.is_closing()
            if session.authenticated and session.events and live:
                session.writer.write(data)
        self.events_sent += len(events)

    # --- one connection ----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        session = AmiSession(writer, self.connections)
        self.sessions.append(session)
        try:
            writer.write(BANNER)
            while not session.closed:
                try:
                    block = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    break
                action = parse_action(block[:-4])
                if not action.headers:
                    continue
                await self._handle(session, action)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            session.closed = True
            if session in self.sessions:
                self.sessions.remove(session)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, session: AmiSession, action: Action) -> None:
        self.actions.append(action)
        name = action.name.lower()
        if name == "login":
            await self._login(session, action)
            return
        if name == "logoff":
            session.send([response(action, "Goodbye", Message="Thanks for all the fish.")])
            session.closed = True
            return
        if not session.authenticated:
            session.send([error(action, "Permission denied")])
            return
        if name == "ping":
            stamp = f"{self.clock():.6f}"
            session.send([response(action, Ping="Pong", Timestamp=stamp)])
            return
        if name == "events":
            session.events = action.get("EventMask", "on").lower() not in ("off", "none")
            session.send([response(action, Events="On" if session.events else "Off")])
            return
        try:
            result = await self.runner.run_action(action)
        except Exception:
            log.exception("simulated Asterisk failed on %s", action.name)
            result = ActionResult(error(action, "Internal error"))
        if result is None:
            session.send(
                [
                    error(
                        action,
                        f"Invalid/unknown command: {action.name}. "
                        "Use Action: ListCommands to show available commands.",
                    )
                ]
            )
            return
        session.send([result.reply, *result.items])
        if result.outcome is not None:
            self.runner.apply(result.outcome)

    async def _login(self, session: AmiSession, action: Action) -> None:
        if action.get("Username") != self.username or action.get("Secret") != self.secret:
            # Asterisk answers a bad login after about a second, then hangs up.
            await asyncio.sleep(self.auth_fail_delay)
            session.send([error(action, "Authentication failed")])
            session.closed = True
            return
        session.authenticated = True
        session.username = self.username
        session.events = action.get("Events", "on").lower() not in ("off", "none")
        self.logins += 1
        now = self.clock()
        uptime = str(int(now - self._started))
        peer = session.writer.get_extra_info("peername") or ("127.0.0.1", 0)
        session.send(
            [
                response(action, Message="Authentication accepted"),
                {
                    "Event": "FullyBooted",
                    "Privilege": "system,all",
                    "Uptime": uptime,
                    "LastReload": uptime,
                    "Status": "Fully Booted",
                },
                {
                    "Event": "SuccessfulAuth",
                    "Privilege": "security,all",
                    "EventTV": _tv(now),
                    "Severity": "Informational",
                    "Service": "AMI",
                    "EventVersion": "1",
                    "AccountID": self.username,
                    "SessionID": f"0x{0x7F807C00FB40 + session.number:x}",
                    "LocalAddress": f"IPV4/TCP/{self.host}/{self.port}",
                    "RemoteAddress": f"IPV4/TCP/{peer[0]}/{peer[1]}",
                    "UsingPassword": "0",
                    "SessionTV": _tv(now),
                },
            ]
        )
