"""AMI framing: bytes in, messages out. Sans-IO, so it is exact and fast to test.

Asterisk sends a banner line, then messages of `Key: value` lines ending in a blank
line (CRLF CRLF). We split on bytes and decode each *complete* message, so a UTF-8
character cut between two TCP reads is never lost (panoramisk decodes each chunk with
errors="ignore" and loses it). Unwanted events are recognised from their first line
and dropped before any decoding: a busy PBX sends mostly VarSet, CEL and RTCP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_END = b"\r\n\r\n"
_EVENT = b"Event: "
_BANNER = b"Asterisk Call Manager/"


@dataclass(slots=True)
class AmiMessage:
    """One AMI message: an event, an action response, or a list item."""

    headers: dict[str, str]
    # Repeated `ChanVariable: NAME=value` lines (manager.conf channelvars), and the
    # `DestChanVariable` lines of events about a second channel.
    chan_vars: dict[str, str] = field(default_factory=dict)
    dest_chan_vars: dict[str, str] = field(default_factory=dict)
    # `Output:` lines of a Command action's response, in order.
    output: list[str] = field(default_factory=list)

    @property
    def event(self) -> str | None:
        """The event name, or None for a response."""
        return self.headers.get("Event")

    @property
    def response(self) -> str | None:
        """Success / Error / Goodbye / Follows, or None for an event."""
        return self.headers.get("Response")

    @property
    def action_id(self) -> str | None:
        """The ActionID this message answers, if any."""
        return self.headers.get("ActionID")


class AmiParser:
    """Incremental parser; `feed` returns the messages completed by the new bytes."""

    def __init__(self, wanted_events: frozenset[str] | None = None) -> None:
        # None: every event. Otherwise events not named here are skipped undecoded.
        self.wanted = (
            None if wanted_events is None else frozenset(e.encode() for e in wanted_events)
        )
        self.banner: str | None = None
        self.skipped = 0
        self.malformed = 0
        self._buffer = b""
        self._started = False

    def feed(self, data: bytes) -> list[AmiMessage]:
        """Parse what `data` completes; keep the rest for the next call."""
        buffer = self._buffer + data if self._buffer else data
        if not self._started:
            newline = buffer.find(b"\r\n")
            if newline < 0:
                self._buffer = buffer
                return []
            first = buffer[:newline]
            if first.startswith(_BANNER):
                self.banner = first.decode("utf-8", "replace")
                buffer = buffer[newline + 2 :]
            self._started = True
        blocks = buffer.split(_END)
        self._buffer = blocks.pop()
        messages: list[AmiMessage] = []
        wanted = self.wanted
        for block in blocks:
            if not block:
                continue
            if wanted is not None and block.startswith(_EVENT):
                end = block.find(b"\r\n")
                name = block[7:] if end < 0 else block[7:end]
                if name not in wanted:
                    self.skipped += 1
                    continue
            message = _parse(block)
            if message is None:
                self.malformed += 1
            else:
                messages.append(message)
        return messages


def _parse(block: bytes) -> AmiMessage | None:
    headers: dict[str, str] = {}
    message = AmiMessage(headers)
    for line in block.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if not sep:
            if line.strip():
                # Old-style command output without a key: keep it as output.
                message.output.append(line)
            continue
        value = value[1:] if value.startswith(" ") else value
        if key == "ChanVariable" or key == "DestChanVariable":
            name, _eq, var_value = value.partition("=")
            target = message.chan_vars if key == "ChanVariable" else message.dest_chan_vars
            target[name] = var_value
        elif key == "Output":
            message.output.append(value)
        else:
            headers[key] = value
    if "Event" not in headers and "Response" not in headers:
        return None
    return message


def encode_action(action: dict[str, str | list[str]]) -> bytes:
    """An action as bytes; refuses CR/LF in values (they would inject another header)."""
    lines = []
    for key, value in action.items():
        for item in value if isinstance(value, list) else [value]:
            text = str(item)
            if "\r" in text or "\n" in text or "\r" in key or "\n" in key:
                raise ValueError(f"AMI header {key!r} contains a line break")
            lines.append(f"{key}: {text}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
