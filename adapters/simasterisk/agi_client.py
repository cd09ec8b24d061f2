"""The AGI() application's side of FastAGI: connect, send the environment, answer commands.

Replies are Asterisk 22's (tests/fixtures/asterisk-traces/h*_fastagi_*): lines end in a
bare LF; STREAM FILE -> `200 result=0 endpos=N`; GET DATA -> `200 result=<digits>`, or
`200 result=<digits> (timeout)`; SET VARIABLE -> `200 result=1`; SET CONTEXT / EXTENSION
/ PRIORITY -> `200 result=0`; HANGUP -> `200 result=1`, then a separate `HANGUP` line,
and the socket stays open until the server closes it; an unknown command -> `510 Invalid
or unknown command`. When the caller hangs up, a playing command ends with
`200 result=-1`, `HANGUP` is sent, and later commands get 511. When the server closes
the socket the dialplan goes on (AGISTATUS=SUCCESS); if nobody listens, AGISTATUS=FAILURE
and it goes on too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from adapters.simasterisk.dialplan import substitute
from adapters.simasterisk.model import Model, Outcome, StartAgi

log = logging.getLogger(__name__)

DEAD = "511 Command Not Permitted on a dead channel or intercepted"
UNKNOWN = "510 Invalid or unknown command"
HANGUP_KEY = "hangup"
BYTES_PER_SECOND = 8000  # endpos is in samples at 8 kHz


class AgiHost(Protocol):
    """What a session needs from the simulator."""

    model: Model
    clock: Callable[[], float]

    def apply(self, outcome: Outcome) -> None:
        """Send the outcome's events and carry out its effects."""

    def variable_set(self, uniqueid: str, name: str, value: str) -> None:
        """The server set a variable on the channel."""


def split_command(line: str) -> list[str]:
    """Words as Asterisk's parse_args reads them: blanks split, `"` groups, `\\` escapes."""
    words: list[str] = []
    current: list[str] = []
    quoted = escaped = started = False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = started = True
        elif ch == '"':
            quoted = not quoted
            started = True
        elif ch in " \t" and not quoted:
            if started:
                words.append("".join(current))
                current, started = [], False
        else:
            current.append(ch)
            started = True
    if started:
        words.append("".join(current))
    return words


class AgiSession:
    """One AGI() run of one channel against the FastAGI server."""

    def __init__(
        self,
        host: AgiHost,
        start: StartAgi,
        keys: list[str],
        *,
        prompt_seconds: float = 0.0,
        timeout_scale: float = 1.0,
    ) -> None:
        self.host = host
        self.start = start
        self.uniqueid = start.uniqueid
        self.keys = keys  # one entry per GET DATA / WAIT FOR DIGIT; consumed
        self.prompt_seconds = prompt_seconds
        self.timeout_scale = timeout_scale
        self.commands: list[str] = []
        # What the server set with SET VARIABLE (CC_INTERACTION_ID, CC_IVR_OUTCOME...).
        self.variables: dict[str, str] = {}
        self.dead = False
        self.caller_left = False  # the caller hung up (not the server's HANGUP)
        self._gone = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._busy = False

    def caller_hung_up(self) -> None:
        """The channel hung up: tell the server now if it is between commands."""
        if self.dead:
            return
        self.dead = self.caller_left = True
        self._gone.set()
        if not self._busy:
            self._write("HANGUP")

    async def run(self) -> None:
        """Connect, talk until the server closes, then let the dialplan go on."""
        model = self.host.model
        try:
            reader, writer = await asyncio.open_connection(self.start.host, self.start.port)
        except OSError as exc:
            log.info("FastAGI %s:%s unreachable: %s", self.start.host, self.start.port, exc)
            model.agi_set_variable(self.uniqueid, "AGISTATUS", "FAILURE")
            self.host.apply(model.agi_done(self.uniqueid, self.host.clock()))
            return
        self._writer = writer
        try:
            env = "".join(f"{key}: {value}\n" for key, value in self.start.env)
            writer.write((env + "\n").encode())
            if self.dead:
                self._write("HANGUP")
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line.strip():
                    continue
                self.commands.append(line)
                self._busy = True
                try:
                    replies = await self._command(line)
                finally:
                    self._busy = False
                for reply in replies:
                    self._write(reply)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            status = "HANGUP" if self.dead else "SUCCESS"
            model.agi_set_variable(self.uniqueid, "AGISTATUS", status)
            self.host.apply(model.agi_done(self.uniqueid, self.host.clock()))

    def _write(self, line: str) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write((line + "\n").encode())

    async def _wait(self, seconds: float) -> bool:
        """Sleep like a prompt or a wait for keys; False if the caller hung up meanwhile."""
        if self.dead:
            return False
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gone.wait(), seconds)
        return not self.dead

    def _caller_hangs_up(self) -> None:
        self.caller_left = True
        model = self.host.model
        self.host.apply(model.remote_hangup(self.uniqueid, self.host.clock()))

    async def _command(self, line: str) -> list[str]:
        words = split_command(line)
        upper = [w.upper() for w in words]
        if self.dead:
            return [DEAD]
        model = self.host.model
        if upper[:1] == ["ANSWER"] or upper[:1] == ["NOOP"]:
            return ["200 result=0"]
        if upper[:2] == ["STREAM", "FILE"] and len(words) >= 3:
            if not await self._wait(self.prompt_seconds):
                return ["200 result=-1 endpos=0", "HANGUP"]
            endpos = int(BYTES_PER_SECOND * self.prompt_seconds) or 3520
            return [f"200 result=0 endpos={endpos}"]
        if upper[:2] == ["GET", "DATA"] and len(words) >= 3:
            return await self._get_data(words[3:])
        if upper[:3] == ["WAIT", "FOR", "DIGIT"] and len(words) >= 4:
            return await self._wait_for_digit(words[3])
        if upper[:2] == ["SAY", "DIGITS"] or upper[:2] == ["SAY", "NUMBER"]:
            return ["200 result=0"]
        if upper[:2] == ["SET", "VARIABLE"] and len(words) >= 4:
            self.variables[words[2]] = words[3]
            self.host.apply(model.agi_set_variable(self.uniqueid, words[2], words[3]))
            self.host.variable_set(self.uniqueid, words[2], words[3])
            return ["200 result=1"]
        if upper[:2] == ["GET", "VARIABLE"] and len(words) >= 3:
            value = model.getvar(model.get(self.uniqueid), words[2])
            return [f"200 result=1 ({value})"] if value else ["200 result=0"]
        if upper[:3] == ["GET", "FULL", "VARIABLE"] and len(words) >= 4:
            ch = model.get(self.uniqueid)
            value = substitute(words[3], lambda e: model.getvar(ch, e))
            return [f"200 result=1 ({value})"]
        if upper[:2] in (["SET", "CONTEXT"], ["SET", "EXTENSION"], ["SET", "PRIORITY"]):
            if len(words) < 3:
                return ["520 Invalid command syntax.  Proper usage not available."]
            key = upper[1].lower()
            where = {"context": "context", "extension": "exten", "priority": "priority"}[key]
            ok = model.agi_set_location(self.uniqueid, **{where: words[2]})
            return ["200 result=0" if ok else "200 result=-1"]
        if upper[:1] == ["VERBOSE"]:
            return ["200 result=1"]
        if upper[:1] == ["EXEC"]:
            return ["200 result=0"]
        if upper[:1] == ["HANGUP"]:
            self.host.apply(model.agi_hangup(self.uniqueid, self.host.clock()))
            self.dead = True
            return ["200 result=1", "HANGUP"]
        return [UNKNOWN]

    def _next_key(self) -> str | None:
        return self.keys.pop(0) if self.keys else None

    async def _get_data(self, args: list[str]) -> list[str]:
        timeout_ms = int(args[0]) if args and args[0].lstrip("-").isdigit() else 0
        max_digits = int(args[1]) if len(args) > 1 and args[1].isdigit() else 1024
        key = self._next_key()
        if key == HANGUP_KEY:
            self._caller_hangs_up()
            return ["200 result=-1", "HANGUP"] if self.dead else ["200 result=-1"]
        wait = (timeout_ms or 2000) / 1000 * self.timeout_scale
        if not await self._wait(self.prompt_seconds):
            return ["200 result=-1", "HANGUP"]
        if key is None:
            if not await self._wait(wait):
                return ["200 result=-1", "HANGUP"]
            return ["200 result= (timeout)"]
        digits, hashed, _ = key.partition("#")
        digits = digits[:max_digits]
        if hashed or len(digits) >= max_digits:
            return [f"200 result={digits}"]
        if not await self._wait(wait):
            return ["200 result=-1", "HANGUP"]
        return [f"200 result={digits} (timeout)"]

    async def _wait_for_digit(self, limit: str) -> list[str]:
        key = self._next_key()
        if key == HANGUP_KEY:
            self._caller_hangs_up()
            return ["200 result=-1", "HANGUP"]
        if key:
            return [f"200 result={ord(key[0])}"]
        millis = int(limit) if limit.lstrip("-").isdigit() else 0
        if not await self._wait(max(0, millis) / 1000 * self.timeout_scale):
            return ["200 result=-1", "HANGUP"]
        return ["200 result=0"]
