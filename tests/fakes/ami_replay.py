"""A loopback AMI server that answers with bytes recorded from a real Asterisk 22.

It reads a scenario's `.timeline.tsv`: each action the client sends is matched, in
order and by Action name, to the next recorded action, and answered with the bytes
Asterisk sent after it until the next recorded action, with the recorded ActionID
rewritten to the client's. So the client under test meets real framing, real field
order and the real interleaving of responses and events. Tests can also drop the
connection, refuse logins, or push extra recorded events.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-traces"
_ACTION = re.compile(rb"^Action: *(.+?)\r$", re.MULTILINE | re.IGNORECASE)
_ACTION_ID = re.compile(rb"^ActionID: *(.+?)\r$", re.MULTILINE | re.IGNORECASE)


@dataclass
class Step:
    """One recorded action and what Asterisk sent after it."""

    action: str
    action_id: bytes
    reply: bytes
    ends_with_eof: bool = False


@dataclass
class Scenario:
    """A recorded AMI session split into the banner and steps."""

    name: str
    banner: bytes
    steps: list[Step]

    @classmethod
    def load(cls, name: str, traces: Path = TRACES) -> Scenario:
        """Read `<name>.ami.txt`, `.actions.txt` and `.timeline.tsv`."""
        received = (traces / f"{name}.ami.txt").read_bytes()
        sent = (traces / f"{name}.actions.txt").read_bytes()
        banner = b""
        steps: list[Step] = []
        for line in (traces / f"{name}.timeline.tsv").read_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            _t, direction, offset, length, *_ = line.split("\t")
            start, size = int(offset), int(length)
            if direction == "recv":
                chunk = received[start : start + size]
                if not steps:
                    banner += chunk
                else:
                    steps[-1].reply += chunk
            elif direction == "send":
                block = sent[start : start + size]
                action = _ACTION.search(block)
                action_id = _ACTION_ID.search(block)
                steps.append(
                    Step(
                        action=action.group(1).decode().lower() if action else "",
                        action_id=action_id.group(1) if action_id else b"",
                        reply=b"",
                    )
                )
            elif direction == "eof" and steps:
                steps[-1].ends_with_eof = True
        return cls(name, banner, steps)


@dataclass
class ReplayServer:
    """Serves a scenario on 127.0.0.1; one script per connection, restarted on reconnect."""

    scenario: Scenario
    host: str = "127.0.0.1"
    port: int = 0
    accept_logins: bool = True
    # Actions swallowed without a reply (a stuck Asterisk, a half-open connection).
    silent_actions: set[str] = field(default_factory=set)
    # Answer actions the recording does not have with a plain Success (instead of Error).
    answer_unknown: bool = False
    # Every action received, as its header lines.
    received_blocks: list[str] = field(default_factory=list)
    connections: int = 0
    received_actions: list[str] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> ReplayServer:
        """Listen; `port` is set to the real port."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close the listener and every connection."""
        await self.drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def drop_all(self) -> None:
        """Cut every client connection (Asterisk restarting, a network loss)."""
        for writer in self._writers:
            writer.close()
        for writer in self._writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        self._writers.clear()

    async def push(self, data: bytes) -> None:
        """Send extra bytes (recorded events) to every connected client."""
        for writer in self._writers:
            writer.write(data)
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        pending = list(self.scenario.steps)
        try:
            writer.write(self.scenario.banner)
            await writer.drain()
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                action = _ACTION.search(block)
                name = action.group(1).decode().lower() if action else ""
                self.received_actions.append(name)
                self.received_blocks.append(block.decode("utf-8", "replace"))
                client_id = _ACTION_ID.search(block)
                if name in self.silent_actions:
                    continue
                if name == "login" and not self.accept_logins:
                    writer.write(_auth_failed(client_id.group(1) if client_id else None))
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    break
                step = next((s for s in pending if s.action == name), None)
                if step is None and self.answer_unknown:
                    ok = b"Response: Success\r\n"
                    if client_id:
                        ok += b"ActionID: " + client_id.group(1) + b"\r\n"
                    writer.write(ok + b"Message: OK\r\n\r\n")
                    await writer.drain()
                    continue
                if step is None:
                    writer.write(_error(client_id.group(1) if client_id else None, name))
                    await writer.drain()
                    continue
                pending = pending[pending.index(step) + 1 :]
                reply = step.reply
                if client_id and step.action_id:
                    reply = reply.replace(
                        b"ActionID: " + step.action_id + b"\r\n",
                        b"ActionID: " + client_id.group(1) + b"\r\n",
                    )
                writer.write(reply)
                await writer.drain()
                if step.ends_with_eof:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if writer in self._writers:
                self._writers.remove(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _auth_failed(action_id: bytes | None) -> bytes:
    head = b"Response: Error\r\n"
    if action_id:
        head += b"ActionID: " + action_id + b"\r\n"
    return head + b"Message: Authentication failed\r\n\r\n"


def _error(action_id: bytes | None, name: str) -> bytes:
    head = b"Response: Error\r\n"
    if action_id:
        head += b"ActionID: " + action_id + b"\r\n"
    return head + f"Message: Invalid/unknown command: {name}\r\n\r\n".encode()
