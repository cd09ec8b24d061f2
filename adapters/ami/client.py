"""The AMI connection: log in, keep alive, reconnect with back-off, send actions safely.

panoramisk's Manager handles the socket and matches responses to actions; this module
adds what a contact center needs from it: a Ping whose reply is checked (a half-open
connection is noticed and dropped), a timeout on every action, exponential back-off with
jitter and a cap instead of a fixed retry delay, no replay of unanswered actions, a
`/status` entry that says connected or not and why, and a hook run after every login so
the caller can resync what happened while the link was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from panoramisk import Manager
from panoramisk.message import Message

from adapters.ami.framing import AmiMessage, UnsafeAmiAction
from adapters.ami.protocol import AmiConnectionLost, CtiAmiProtocol

log = logging.getLogger(__name__)

NEVER = 10**9  # seconds: disables panoramisk's own pinger, which ignores the reply


class AmiError(Exception):
    """An action failed: not connected, no reply in time, lost connection, or refused."""


class AmiNotConnected(AmiError):
    """Asterisk is not connected right now; nothing was sent."""


class AmiActionRefused(AmiError):
    """The action held a line break or NUL (an injection attempt); nothing was sent."""


class AmiTimeout(AmiError):
    """No reply within the action timeout (the action may or may not have run)."""


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager with the client deciding when to reconnect."""

    client: AmiClient

    def connection_made(self, future: asyncio.Future[Any]) -> None:
        try:
            future.result()
        except OSError as exc:
            self._connected = False
            self.client._connect_failed(exc)
            return
        super().connection_made(future)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._connected = False
        self.authenticated = False
        self.client._connection_lost(exc)

    async def send_awaiting_actions(self, *_: Any) -> None:
        """Never re-send: unanswered actions already failed when the link dropped."""

    def on_ami_event(self, message: AmiMessage) -> None:
        self.client._event(message)


class AmiClient:
    """One AMI session to Asterisk, kept up for as long as the client runs."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        secret: str,
        on_event: Callable[[AmiMessage], None],
        on_login: Callable[[], Awaitable[None]] | None = None,
        on_state: Callable[[str, str | None], None] | None = None,
        wanted_events: frozenset[str] | None = None,
        ping_interval: float = 10.0,
        action_timeout: float = 5.0,
        reconnect_base: float = 0.5,
        reconnect_max: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.on_event = on_event
        self.on_login = on_login
        self.on_state = on_state
        self.ping_interval = ping_interval
        self.action_timeout = action_timeout
        self.reconnect_base = reconnect_base
        self.reconnect_max = reconnect_max
        self.connected = False
        self._up = asyncio.Event()
        self.last_error: str | None = None
        self.logins = 0
        self._attempt = 0
        self._running = False
        self._reconnect: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._manager = _Manager(
            host=host,
            port=port,
            username=username,
            secret=secret,
            protocol_factory=functools.partial(CtiAmiProtocol, wanted_events=wanted_events),
            ping_delay=NEVER,
            ping_interval=NEVER,
            on_login=self._logged_in,
            forgetable_actions=(),
        )
        self._manager.client = self

    # --- life cycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting (returns at once; the connection comes up in the background)."""
        self._running = True
        self._manager.loop = asyncio.get_running_loop()
        self._state("connecting", None)
        self._manager.connect()
        self._watchdog = asyncio.create_task(self._ping_forever(), name="ami-ping")

    async def stop(self) -> None:
        """Log off and close; no reconnection afterwards."""
        self._running = False
        if self._reconnect is not None:
            self._reconnect.cancel()
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self.connected:
            with contextlib.suppress(AmiError):
                await self.send({"Action": "Logoff"}, reply_within=1.0)
        self._manager.close()
        for task in list(self._tasks):
            task.cancel()
        self.connected = False
        self._state("stopped", None)

    async def wait_connected(self, within: float) -> None:
        """Wait until logged in (tests and start-up checks)."""
        async with asyncio.timeout(within):
            await self._up.wait()

    # --- actions ------------------------------------------------------------------

    async def send(
        self, action: dict[str, Any], *, reply_within: float | None = None, as_list: bool = False
    ) -> Any:
        """Send an action and wait for its reply (a list when `as_list`: EventList actions).

        Raises AmiActionRefused or AmiNotConnected (nothing sent), AmiTimeout (sent, no
        reply: it may have run; never retried here), or AmiError for a lost connection or
        an Error reply.
        """
        protocol = self._manager.protocol
        if not self.connected or protocol is None or protocol.closed:
            raise AmiNotConnected(f"not connected to Asterisk at {self.host}:{self.port}")
        try:
            # Always say whether a list is wanted: left to guess (None), panoramisk takes
            # an async Originate's "successfully queued" for the start of a list and waits
            # for its OriginateResponse (when the phone answers, or fails: often longer
            # than the action timeout), and a PlayDTMF's "DTMF successfully queued" makes
            # it raise inside the protocol, which drops the connection.
            future = self._manager.send_action(dict(action), as_list=bool(as_list))
        except UnsafeAmiAction as exc:
            log.warning("refused to send an AMI %s action: %s", action.get("Action"), exc)
            raise AmiActionRefused(str(exc)) from None
        limit = self.action_timeout if reply_within is None else reply_within
        try:
            async with asyncio.timeout(limit):
                reply = await future
        except TimeoutError:
            # A late reply must not complete anything: forget the action.
            for key in [k for k, v in protocol.responses.items() if v.future is future]:
                protocol.responses.pop(key, None)
            raise AmiTimeout(
                f"{action.get('Action')} got no reply from Asterisk within {limit:g} s"
            ) from None
        except AmiConnectionLost as exc:
            raise AmiError(str(exc)) from None
        first = reply[0] if isinstance(reply, list) else reply
        if isinstance(first, Message) and first.get("Response") == "Error":
            raise AmiError(f"{action.get('Action')} refused: {first.get('Message', 'error')}")
        return reply

    # --- panoramisk callbacks ---------------------------------------------------------

    def _logged_in(self, manager: Any) -> None:
        self._attempt = 0
        self.connected = True
        self._up.set()
        self.logins += 1
        self._state("up", None)
        if self.on_login is not None:
            task = asyncio.ensure_future(self._run_login_hook())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_login_hook(self) -> None:
        assert self.on_login is not None
        try:
            await self.on_login()
        except Exception as exc:
            log.exception("AMI resync after login failed")
            self.last_error = f"resync failed: {exc}"

    def _connect_failed(self, exc: BaseException) -> None:
        self._state("down", f"cannot connect: {exc}")
        self._schedule_reconnect()

    def _connection_lost(self, exc: BaseException | None) -> None:
        was_connected = self.connected
        self.connected = False
        self._up.clear()
        if not self._running:
            return
        reason = "authentication failed" if self.logins == 0 and not was_connected else None
        detail = f"connection lost: {exc}" if exc else "connection closed by Asterisk"
        self._state("down", reason or self.last_error if not was_connected else detail)
        self._schedule_reconnect()

    def _event(self, message: AmiMessage) -> None:
        if message.response is None and message.event is None:
            return
        try:
            self.on_event(message)
        except Exception:
            # One bad handler must not take the connection down with it.
            log.exception("AMI event handler failed on %s", message.event)

    # --- helpers ------------------------------------------------------------------

    def _schedule_reconnect(self) -> None:
        if not self._running:
            return
        ceiling = min(self.reconnect_max, self.reconnect_base * 2**self._attempt)
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # equal jitter: no herd
        self._attempt += 1
        loop = asyncio.get_running_loop()
        if self._reconnect is not None:
            self._reconnect.cancel()
        self._reconnect = loop.call_later(delay, self._connect_again)

    def _connect_again(self) -> None:
        if self._running:
            self._manager.connect()

    async def _ping_forever(self) -> None:
        while self._running:
            await asyncio.sleep(self.ping_interval)
            if not self.connected:
                continue
            try:
                await self.send(
                    {"Action": "Ping"}, reply_within=min(self.action_timeout, self.ping_interval)
                )
            except AmiTimeout:
                # Half-open: TCP thinks it is up, Asterisk does not answer. Drop it.
                log.warning("no reply to AMI Ping: dropping the connection to reconnect")
                protocol = self._manager.protocol
                if protocol is not None and not protocol.closed:
                    protocol.transport.abort()
            except AmiError:
                pass

    def _state(self, state: str, error: str | None) -> None:
        if error:
            self.last_error = error
        if self.on_state is not None:
            self.on_state(state, error)
