"""AMI framing: bytes in, messages out. Sans-IO, so it is exact and fast to test.

Asterisk sends a banner line, then messages of `Key: value` lines ending in a blank
line (CRLF CRLF). We split on bytes and decode each *complete* message, so a UTF-8
character cut between two TCP reads is never lost (panoramisk decodes each chunk with
errors="ignore" and loses it). Unwanted events are recognised from their first line
and dropped before any decoding: a busy PBX sends mostly VarSet, CEL and RTCP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_END = b"\r\n\r\n"
_EVENT = b"Event: "
_ACTION_ID = b"\r\nActionID: "
_BANNER = b"Asterisk Call Manager/"
# Far above any real message (a CoreShowChannel item is ~600 bytes): a peer that never
# sends a blank line must not make us buffer forever.
MAX_MESSAGE_BYTES = 1 << 20
# One regex pass finds every channel variable line: cheaper than a Python loop over
# the lines of a channel event.
_VARIABLE = re.compile(r"^(Dest)?ChanVariable(?:\([^)\r\n]*\))?: ([^=\r\n]*)=?([^\r\n]*)", re.M)


class AmiMessage:
    """One AMI message: an event, an action response, or a list item."""

    __slots__ = ("_chan_vars", "_dest_chan_vars", "headers", "output", "raw")

    def __init__(
        self,
        headers: dict[str, str],
        chan_vars: dict[str, str] | None = None,
        dest_chan_vars: dict[str, str] | None = None,
        output: list[str] | None = None,
        raw: str = "",
    ) -> None:
        # Dict view: one value per key (the last one when a key repeats).
        self.headers = headers
        # `Output:` lines of a Command action's response, in order.
        self.output = output if output is not None else []
        # The decoded message. Channel variables and `pairs` are derived from it on
        # first use: most messages are never asked for them, and a regex pass over
        # every message would cost more than the rest of the parse.
        self.raw = raw
        self._chan_vars = chan_vars
        self._dest_chan_vars = dest_chan_vars

    def __repr__(self) -> str:
        return f"AmiMessage({self.headers!r})"

    @property
    def chan_vars(self) -> dict[str, str]:
        """`ChanVariable: NAME=value` lines (manager.conf channelvars), by name.

        OriginateResponse spells them `ChanVariable(<channel>): NAME=value`; those
        land here too.
        """
        if self._chan_vars is None:
            self._split_variables()
        assert self._chan_vars is not None
        return self._chan_vars

    @property
    def dest_chan_vars(self) -> dict[str, str]:
        """`DestChanVariable` lines: the variables of an event's second channel."""
        if self._dest_chan_vars is None:
            self._split_variables()
        assert self._dest_chan_vars is not None
        return self._dest_chan_vars

    def _split_variables(self) -> None:
        own: dict[str, str] = {}
        dest: dict[str, str] = {}
        if "ChanVariable" in self.raw:
            for is_dest, name, value in _VARIABLE.findall(self.raw):
                (dest if is_dest else own)[name] = value
        if self._chan_vars is None:
            self._chan_vars = own
        if self._dest_chan_vars is None:
            self._dest_chan_vars = dest

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

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Every `Key: value` line in wire order, repeated keys included."""
        return _pairs(self.raw.split("\r\n")) if self.raw else list(self.headers.items())

    def get(self, key: str, default: str = "") -> str:
        """A header's value, or `default` when absent."""
        return self.headers.get(key, default)


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
        self.oversized = 0
        self._buffer = b""
        self._started = False

    def feed(self, data: bytes) -> list[AmiMessage]:
        """Parse what `data` completes; keep the rest for the next call."""
        buffer = self._buffer + data if self._buffer else data
        if not self._started:
            newline = buffer.find(b"\r\n")
            if newline < 0:
                self._buffer = self._bounded(buffer)
                return []
            first = buffer[:newline]
            if first.startswith(_BANNER):
                self.banner = first.decode("utf-8", "replace")
                buffer = buffer[newline + 2 :]
            self._started = True
        if self.wanted is None:
            blocks = buffer.split(_END)
            self._buffer = self._bounded(blocks.pop())
            return self._parse_all(blocks)
        return self._parse_wanted(buffer, self.wanted)

    def _parse_all(self, blocks: list[bytes]) -> list[AmiMessage]:
        messages: list[AmiMessage] = []
        for block in blocks:
            if block:
                message = parse_block(block)
                if message is None:
                    self.malformed += 1
                else:
                    messages.append(message)
        return messages

    def _parse_wanted(self, buffer: bytes, wanted: frozenset[bytes]) -> list[AmiMessage]:
        # Walk the buffer with find() instead of split(): a skipped event is never
        # even copied out of it.
        messages: list[AmiMessage] = []
        find, startswith = buffer.find, buffer.startswith
        pos = 0
        while (end := find(_END, pos)) >= 0:
            if end == pos:
                pos = end + 4
                continue
            # Events that carry an ActionID are list items or replies an action waits
            # for (CoreShowChannel, OriginateResponse): never filter those out.
            if startswith(_EVENT, pos):
                eol = find(b"\r\n", pos, end)
                name = buffer[pos + 7 : end if eol < 0 else eol]
                if name not in wanted and find(_ACTION_ID, pos, end) < 0:
                    self.skipped += 1
                    pos = end + 4
                    continue
            message = parse_block(buffer[pos:end])
            if message is None:
                self.malformed += 1
            else:
                messages.append(message)
            pos = end + 4
        self._buffer = self._bounded(buffer[pos:])
        return messages

    def _bounded(self, rest: bytes) -> bytes:
        if len(rest) <= MAX_MESSAGE_BYTES:
            return rest
        self.oversized += 1
        return b""


def parse_block(block: bytes) -> AmiMessage | None:
    """One message (without its blank line) as an AmiMessage; None if it is neither."""
    text = block.decode("utf-8", "replace")
    lines = text.split("\r\n")
    try:
        # Fast path: every real line is `Key: value` (empty values keep the space).
        headers = dict(line.split(": ", 1) for line in lines)
    except ValueError:
        headers = dict(_pairs(lines))
    if "Event" not in headers and "Response" not in headers:
        return None
    output = [v for k, v in _pairs(lines) if k == "Output"] if "Output" in headers else None
    return AmiMessage(headers, output=output, raw=text)


def _pairs(lines: list[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            pairs.append((key, value[1:] if value.startswith(" ") else value))
        elif line.strip():
            # Old-style command output without a key: keep it as output.
            pairs.append(("Output", line))
    return pairs


class UnsafeAmiAction(ValueError):
    """An action key or value that would break out of its header line; nothing was sent."""


# A key is one header name; a value is anything on one line. CR or LF would end the
# header (and a blank line the action) early, so the rest would be read by Asterisk as
# headers or a second action of the sender's choosing; NUL ends a C string early.
_KEY = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_LINE_BREAKERS = ("\r", "\n", "\0")


def encode_action(action: Mapping[str, object]) -> bytes:
    """An action as wire bytes; raises UnsafeAmiAction rather than let input inject headers.

    Every action this daemon sends goes through here (`CtiAmiProtocol.send`), login
    included. A list value repeats its key (one `Variable:` line each).
    """
    lines = []
    for key, value in action.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise UnsafeAmiAction(f"AMI header name {str(key)[:40]!r} is not a plain name")
        for item in value if isinstance(value, list | tuple) else [value]:
            text = str(item)
            if any(c in text for c in _LINE_BREAKERS):
                raise UnsafeAmiAction(
                    f"AMI header {key!r} contains a line break or NUL: {text[:40]!r}"
                )
            lines.append(f"{key}: {text}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
