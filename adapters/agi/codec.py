"""FastAGI wire format, sans-IO: the agi_* environment, reply lines, and command lines.

What a real Asterisk 22 sends (see tests/fixtures/asterisk-traces/h*_fastagi_*): lines end
in a bare LF; the environment is `agi_key: value` lines closed by a blank line;
`agi_network_script` has no leading slash (`ivr`, `ivr/main`). Replies are
`200 result=<r> [(<data>)] [key=value ...]`, `510 Invalid or unknown command`,
`511 ...` on a dead channel, or a multi-line `520-...` block ending in `520 End of proper
usage.`; a bare `HANGUP` line arrives on its own once the channel has hung up.

Commands are quoted the way Asterisk's `parse_args` reads them: words split on blanks,
`"` groups, `\\` escapes the next character. A CR, LF or NUL in an argument would let
the caller of a command inject a second one, so it is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

ENV_PREFIX = "agi_"
HANGUP_LINE = "HANGUP"
ESCAPE_DIGITS = frozenset("0123456789*#ABCD")

# One `key=value` token after the result and its optional "(data)": endpos=3520, results=2.
_EXTRA = r" [A-Za-z_][A-Za-z0-9_]*=\S*"
# Greedy data: a GET VARIABLE value may itself contain ")" or " x=y", and the data is
# everything up to the last ")" that still leaves only key=value tokens after it.
_RESULT_RE = re.compile(rf"result=(?P<result>\S*)(?: \((?P<data>.*)\))?(?P<extras>(?:{_EXTRA})*)")
_CODE_RE = re.compile(r"(?P<code>[1-9][0-9]{2})(?P<sep>[ -]|$)(?P<rest>.*)", re.DOTALL)
_FORBIDDEN = ("\n", "\r", "\0")


class AgiProtocolError(Exception):
    """Asterisk (or whatever connected) sent something that is not FastAGI."""


class AgiArgumentError(ValueError):
    """A command argument cannot be sent safely (newline, bad digits, empty name)."""


# --- the environment ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgiEnvironment:
    """The agi_* variables of one FastAGI session, keys without the `agi_` prefix."""

    variables: Mapping[str, str]
    args: tuple[str, ...] = ()
    # The route prefix the server matched (`ivr`), so a handler can read `subpath`.
    route: str = ""

    def get(self, key: str, default: str = "") -> str:
        """One variable by name, with or without the `agi_` prefix."""
        key = key.removeprefix(ENV_PREFIX)
        return self.variables.get(key, default)

    @property
    def network_script(self) -> str:
        """agi_network_script as sent (`ivr`, `ivr/main?x=1`)."""
        return self.get("network_script")

    @property
    def script(self) -> str:
        """The script path without slashes at the ends or a query string (`ivr/main`)."""
        return self.network_script.partition("?")[0].strip("/")

    @property
    def query(self) -> str:
        """What followed `?` in the script, if anything."""
        return self.network_script.partition("?")[2]

    @property
    def subpath(self) -> str:
        """The script path after the matched route (`main` for `ivr/main` on `ivr`)."""
        if not self.route:
            return self.script
        return self.script.removeprefix(self.route).strip("/")

    @property
    def request(self) -> str:
        """agi_request: the full agi:// URL."""
        return self.get("request")

    @property
    def channel(self) -> str:
        """agi_channel: the channel name."""
        return self.get("channel")

    @property
    def uniqueid(self) -> str:
        """agi_uniqueid: the channel's Uniqueid."""
        return self.get("uniqueid")

    @property
    def callerid(self) -> str:
        """agi_callerid: the caller's number (`unknown` when absent)."""
        return self.get("callerid")

    @property
    def calleridname(self) -> str:
        """agi_calleridname: the caller's name."""
        return self.get("calleridname")

    @property
    def context(self) -> str:
        """agi_context: the dialplan context running AGI()."""
        return self.get("context")

    @property
    def extension(self) -> str:
        """agi_extension: the dialplan extension running AGI()."""
        return self.get("extension")

    @property
    def priority(self) -> str:
        """agi_priority: the dialplan priority running AGI()."""
        return self.get("priority")

    @property
    def language(self) -> str:
        """agi_language: the channel language."""
        return self.get("language")

    @property
    def version(self) -> str:
        """agi_version: the Asterisk version."""
        return self.get("version")


def parse_env_line(line: str) -> tuple[str, str]:
    """One `agi_key: value` line (LF already removed) -> (key without prefix, value)."""
    line = line.removesuffix("\r")
    key, sep, value = line.partition(":")
    if not sep or not key.startswith(ENV_PREFIX) or not key[len(ENV_PREFIX) :]:
        raise AgiProtocolError(f"not an agi_* environment line: {line[:80]!r}")
    if any(c.isspace() for c in key):
        raise AgiProtocolError(f"blank inside an environment key: {line[:80]!r}")
    # Asterisk writes "key: value"; an empty value is "agi_accountcode: " (trailing blank).
    return key[len(ENV_PREFIX) :], value.removeprefix(" ")


def build_environment(pairs: Iterable[tuple[str, str]]) -> AgiEnvironment:
    """The environment from parsed (key, value) pairs; agi_arg_N become `args` in order."""
    variables: dict[str, str] = {}
    numbered: dict[int, str] = {}
    for key, value in pairs:
        # Asterisk writes values such as the caller ID unescaped: one holding a line feed
        # could add an `agi_channel:` line of the caller's choosing after the real one.
        if key in variables:
            raise AgiProtocolError(f"environment key agi_{key} given twice")
        variables[key] = value
        if key.startswith("arg_") and key[4:].isdigit():
            numbered[int(key[4:])] = value
    args = tuple(numbered[n] for n in sorted(numbered))
    return AgiEnvironment(variables=MappingProxyType(variables), args=args)


def parse_environment(block: str) -> AgiEnvironment:
    """A whole environment block (up to its blank line; the rest is ignored)."""
    pairs: list[tuple[str, str]] = []
    # The last piece has no LF after it, so it cannot be the terminating blank line.
    for line in block.split("\n")[:-1]:
        if line in ("", "\r"):
            return build_environment(pairs)
        pairs.append(parse_env_line(line))
    raise AgiProtocolError("environment block has no terminating blank line")


# --- replies ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgiResponse:
    """One reply to a command: code, result, the "(data)" and any key=value extras."""

    code: int
    result: str | None = None
    data: str | None = None
    extras: tuple[tuple[str, str], ...] = ()
    text: str = ""  # every line of the reply as received, LF-joined (for logs and errors)
    usage: tuple[str, ...] = field(default=())  # the usage lines of a 520 block

    @property
    def ok(self) -> bool:
        """True for a 200 reply."""
        return self.code == 200

    @property
    def result_int(self) -> int | None:
        """The result as an integer, or None when it is not one (digits of GET DATA are)."""
        if self.result is None:
            return None
        try:
            return int(self.result)
        except ValueError:
            return None

    def extra(self, key: str) -> str | None:
        """A key=value extra such as `endpos`, or None."""
        for k, v in self.extras:
            if k == key:
                return v
        return None


@dataclass(frozen=True, slots=True)
class HangupNotice:
    """The bare `HANGUP` line: the channel has hung up."""


HANGUP_NOTICE = HangupNotice()


def parse_response_line(line: str) -> AgiResponse:
    """A single-line reply (`200 result=1 (timeout)`, `510 Invalid or unknown command`)."""
    line = line.removesuffix("\r")
    match = _CODE_RE.fullmatch(line)
    if match is None or match["sep"] == "-":
        raise AgiProtocolError(f"not a FastAGI reply line: {line[:80]!r}")
    code = int(match["code"])
    rest = match["rest"]
    if code == 200:
        found = _RESULT_RE.fullmatch(rest)
        if found is not None:
            extras = tuple(
                (k, v)
                for k, _, v in (tok.partition("=") for tok in found["extras"].split(" ") if tok)
            )
            return AgiResponse(
                code=code, result=found["result"], data=found["data"], extras=extras, text=line
            )
    return AgiResponse(code=code, text=line)


class ResponseReader:
    """Turns reply lines into replies, one line at a time (a 520 block spans several)."""

    def __init__(self, max_usage_lines: int = 200) -> None:
        self._block: list[str] | None = None
        self._max_usage_lines = max_usage_lines

    @property
    def in_block(self) -> bool:
        """True while inside a multi-line `520-` block."""
        return self._block is not None

    def feed(self, line: str) -> AgiResponse | HangupNotice | None:
        """One line (LF removed) -> a reply, the hang-up notice, or None if more must come."""
        line = line.removesuffix("\r")
        if self._block is not None:
            # Usage text is free-form; only "520 " (space) closes the block.
            self._block.append(line)
            if line.startswith("520 "):
                block, self._block = self._block, None
                return AgiResponse(code=520, text="\n".join(block), usage=tuple(block[1:-1]))
            if len(self._block) > self._max_usage_lines:
                raise AgiProtocolError("520 usage block does not end")
            return None
        if line == HANGUP_LINE:
            return HANGUP_NOTICE
        if line == "":
            return None  # stray blank line: nothing to act on
        if len(line) >= 4 and line[:3].isdigit() and line[3] == "-":
            self._block = [line]
            return None
        return parse_response_line(line)


# --- commands -----------------------------------------------------------------------


def _check(value: str) -> str:
    """Refuse characters that would end the command line early (injection)."""
    if any(c in value for c in _FORBIDDEN):
        raise AgiArgumentError(f"line break or NUL in an AGI argument: {value[:40]!r}")
    return value


def quote(value: str) -> str:
    """Always-quoted argument: `"..."` with `\\` and `"` escaped (`""` when empty)."""
    _check(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def word(value: str) -> str:
    """An argument left bare when Asterisk reads it as one word, quoted otherwise."""
    _check(value)
    if value and not any(c.isspace() or c in '"\\' for c in value):
        return value
    return quote(value)


def _name(value: str, what: str) -> str:
    """A name (file, variable, application, context) that must be one non-empty word."""
    _check(value)
    if not value or any(c.isspace() or c in '"\\' for c in value):
        raise AgiArgumentError(f"bad {what}: {value!r}")
    return value


def _digits(value: str) -> str:
    """Escape digits: quoted, limited to what a phone can send."""
    if not set(value) <= ESCAPE_DIGITS:
        raise AgiArgumentError(f"bad escape digits: {value!r}")
    return quote(value)


def _int(value: int, what: str) -> str:
    """A non-negative integer argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AgiArgumentError(f"bad {what}: {value!r}")
    return str(value)


def answer() -> str:
    """ANSWER."""
    return "ANSWER"


def hangup(channel: str | None = None) -> str:
    """HANGUP [channel]."""
    return "HANGUP" if channel is None else f"HANGUP {_name(channel, 'channel')}"


def channel_status() -> str:
    """CHANNEL STATUS (of the AGI's own channel)."""
    return "CHANNEL STATUS"


def stream_file(name: str, escape_digits: str = "", offset: int | None = None) -> str:
    """STREAM FILE name "escape digits" [offset]."""
    line = f"STREAM FILE {_name(name, 'file name')} {_digits(escape_digits)}"
    return line if offset is None else f"{line} {_int(offset, 'offset')}"


def get_data(name: str, timeout_ms: int | None = None, max_digits: int | None = None) -> str:
    """GET DATA file [timeout_ms [maxdigits]]."""
    line = f"GET DATA {_name(name, 'file name')}"
    if timeout_ms is None and max_digits is not None:
        # maxdigits is positional after the timeout; 0 means Asterisk's default timeout.
        timeout_ms = 0
    if timeout_ms is not None:
        line += f" {_int(timeout_ms, 'timeout')}"
    if max_digits is not None:
        line += f" {_int(max_digits, 'max digits')}"
    return line


def say_digits(digits: str, escape_digits: str = "") -> str:
    """SAY DIGITS number "escape digits"."""
    return f"SAY DIGITS {_name(digits, 'digits')} {_digits(escape_digits)}"


def wait_for_digit(timeout_ms: int) -> str:
    """WAIT FOR DIGIT timeout_ms (-1 waits forever)."""
    if timeout_ms != -1:
        _int(timeout_ms, "timeout")
    return f"WAIT FOR DIGIT {timeout_ms}"


def set_variable(name: str, value: str) -> str:
    """SET VARIABLE name "value"."""
    return f"SET VARIABLE {_name(name, 'variable name')} {quote(value)}"


def get_variable(name: str) -> str:
    """GET VARIABLE name."""
    return f"GET VARIABLE {_name(name, 'variable name')}"


def get_full_variable(expression: str, channel: str | None = None) -> str:
    """GET FULL VARIABLE expression [channel] (the expression is substituted)."""
    line = f"GET FULL VARIABLE {word(expression)}"
    return line if channel is None else f"{line} {_name(channel, 'channel')}"


def exec_(application: str, args: str = "") -> str:
    """EXEC application [args]: Asterisk passes one word to the app, so args is quoted."""
    line = f"EXEC {_name(application, 'application')}"
    return f"{line} {word(args)}" if args else line


def verbose(message: str, level: int = 1) -> str:
    """VERBOSE "message" level (1-4)."""
    if level not in (1, 2, 3, 4):
        raise AgiArgumentError(f"bad verbose level: {level!r}")
    return f"VERBOSE {quote(message)} {level}"


def set_context(context: str) -> str:
    """SET CONTEXT context."""
    return f"SET CONTEXT {_name(context, 'context')}"


def set_extension(extension: str) -> str:
    """SET EXTENSION extension."""
    return f"SET EXTENSION {_name(extension, 'extension')}"


def set_priority(priority: int | str) -> str:
    """SET PRIORITY number-or-label."""
    if isinstance(priority, int):
        if isinstance(priority, bool) or priority < 1:
            raise AgiArgumentError(f"bad priority: {priority!r}")
        return f"SET PRIORITY {priority}"
    return f"SET PRIORITY {_name(priority, 'priority label')}"


def encode_command(line: str) -> bytes:
    """A command line on the wire: UTF-8 and a bare LF (refusing embedded line breaks)."""
    return _check(line).encode("utf-8") + b"\n"
