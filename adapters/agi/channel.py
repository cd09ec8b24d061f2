"""One FastAGI session seen from the server: send a command, read its reply, in turn.

Every read has a timeout, and a late reply would be taken for the next command's, so a
timeout (or anything else that leaves the stream out of step) closes the channel. The
caller hanging up shows up as a `HANGUP` line, a `result=-1` from a command that plays to
the caller, a 511 reply (dead channel) or EOF, and is raised as `CallerHungUp`. A missing
sound file also makes STREAM FILE and GET DATA answer `result=-1`: for those two a
CHANNEL STATUS tells them apart (refused with 511, or a HANGUP line, when the caller has
gone), and a prompt that is missing raises `PromptMissing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from adapters.agi import codec
from adapters.agi.codec import AgiProtocolError, AgiResponse, HangupNotice

log = logging.getLogger(__name__)

DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_MEDIA_TIMEOUT = 600.0
CLOSE_TIMEOUT = 1.0  # seconds to wait for the socket close to complete
# After a `result=-1`: how long a HANGUP line may take to follow before we ask.
HANGUP_GRACE = 0.1


class AgiError(Exception):
    """A FastAGI command could not be carried out."""


class CallerHungUp(AgiError):
    """The caller has hung up (HANGUP line, result=-1, dead channel or EOF)."""


class PromptMissing(AgiError):
    """The sound file does not exist: Asterisk answered `result=-1` (as for a hang-up,
    `endpos=0`) but the channel is still up."""


class AgiTimeout(AgiError):
    """No reply within the read timeout; the channel is closed."""


class AgiChannelClosed(AgiError):
    """The channel was closed (by us, a timeout or a protocol error); nothing was sent."""


class AgiCommandError(AgiError):
    """Asterisk refused the command (510 unknown, 520 usage, or a failing result)."""

    def __init__(self, command: str, response: AgiResponse) -> None:
        super().__init__(f"{command!r} -> {response.text!r}")
        self.command = command
        self.response = response


async def read_line(reader: asyncio.StreamReader) -> str | None:
    """One LF-terminated line without its LF; None at EOF (a partial last line is dropped).

    readuntil, not readline: readline returns b"" forever at EOF, which is how a loop
    that forgets to check spins; the reader's limit caps the line length.
    """
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as exc:
        raise AgiProtocolError("line longer than the limit") from exc
    return raw[:-1].decode("utf-8", errors="replace")


class AgiChannel:
    """High-level FastAGI commands over one accepted connection."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        media_timeout: float = DEFAULT_MEDIA_TIMEOUT,
        name: str = "",
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.read_timeout = read_timeout
        # Prompts, GET DATA and EXEC run as long as the audio or application does.
        self.media_timeout = max(media_timeout, read_timeout)
        self.name = name
        self._lock = asyncio.Lock()
        self._responses = codec.ResponseReader()
        self.caller_hung_up = False
        # The last hang-up was only a `result=-1` (a missing file answers the same).
        self._hung_up_by_result = False
        self.closed = False
        self.commands_sent = 0

    # --- low level ----------------------------------------------------------------

    async def command(self, line: str, *, reply_timeout: float | None = None) -> AgiResponse:
        """Send one command line and return its reply (any code); hang-ups raise."""
        data = codec.encode_command(line)
        async with self._lock:
            if self.caller_hung_up:
                raise CallerHungUp(f"{self.name}: caller already hung up")
            if self.closed:
                raise AgiChannelClosed(f"{self.name}: channel closed")
            try:
                async with asyncio.timeout(
                    self.read_timeout if reply_timeout is None else reply_timeout
                ):
                    self._writer.write(data)
                    await self._writer.drain()
                    self.commands_sent += 1
                    response = await self._read_response()
            except TimeoutError:
                await self.close()
                raise AgiTimeout(f"{self.name}: no reply to {line!r}") from None
            except (ConnectionError, OSError) as exc:
                self.caller_hung_up = True
                await self.close()
                raise CallerHungUp(f"{self.name}: connection lost: {exc}") from exc
            except AgiProtocolError:
                await self.close()
                raise
            if response.code == 511:
                # "Command Not Permitted on a dead channel or intercepted".
                self.caller_hung_up = True
                raise CallerHungUp(f"{self.name}: dead channel: {response.text!r}")
            return response

    async def _read_response(self) -> AgiResponse:
        """Lines until one complete reply; HANGUP or EOF raise CallerHungUp."""
        while True:
            line = await read_line(self._reader)
            if line is None:
                self.caller_hung_up = True
                raise CallerHungUp(f"{self.name}: Asterisk closed the connection")
            item = self._responses.feed(line)
            if isinstance(item, HangupNotice):
                self.caller_hung_up = True
                raise CallerHungUp(f"{self.name}: HANGUP")
            if item is not None:
                return item

    async def _ok(self, line: str, *, reply_timeout: float | None = None) -> AgiResponse:
        """A command whose reply must be 200."""
        response = await self.command(line, reply_timeout=reply_timeout)
        if not response.ok:
            raise AgiCommandError(line, response)
        return response

    async def _playing(self, line: str, reply_timeout: float | None) -> AgiResponse:
        """A command that plays to the caller: 200 required, result=-1 means hung up."""
        response = await self._ok(
            line, reply_timeout=self.media_timeout if reply_timeout is None else reply_timeout
        )
        if response.result == "-1":
            self.caller_hung_up = self._hung_up_by_result = True
            raise CallerHungUp(f"{self.name}: {line!r} -> result=-1")
        return response

    async def _playing_file(self, line: str, reply_timeout: float | None) -> AgiResponse:
        """`_playing` for a command that opens a sound file: `result=-1` with the
        channel still up is the file missing, not the caller gone."""
        self._hung_up_by_result = False
        try:
            return await self._playing(line, reply_timeout)
        except CallerHungUp:
            if self.closed or not self._hung_up_by_result:
                raise
        # A caller who hung up is usually followed by a HANGUP line at once: no probe then.
        if await self._hangup_line_follows():
            raise CallerHungUp(f"{self.name}: {line!r} -> result=-1, HANGUP")
        # CHANNEL STATUS is refused on a dead channel (511): only a live one answers 200.
        self.caller_hung_up = self._hung_up_by_result = False
        status = await self.command(codec.channel_status())
        if not status.ok:
            self.caller_hung_up = True
            raise CallerHungUp(f"{self.name}: {line!r} -> result=-1, then {status.text!r}")
        raise PromptMissing(f"{self.name}: {line!r}: no such sound file")

    async def _hangup_line_follows(self) -> bool:
        """True when a HANGUP line (or EOF) arrives within HANGUP_GRACE seconds."""
        async with self._lock:
            try:
                line = await asyncio.wait_for(read_line(self._reader), HANGUP_GRACE)
            except TimeoutError:
                return False  # readuntil consumes nothing until a whole line is there
            if line is None or isinstance(self._responses.feed(line), HangupNotice):
                return True
            await self.close()
            raise AgiProtocolError(f"{self.name}: unexpected {line!r} after result=-1")

    async def close(self) -> None:
        """Close the socket (idempotent); Asterisk then goes on with the dialplan."""
        if self.closed:
            return
        self.closed = True
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_TIMEOUT)

    # --- commands -----------------------------------------------------------------

    async def answer(self, *, reply_timeout: float | None = None) -> None:
        """ANSWER the channel."""
        await self._playing(codec.answer(), reply_timeout)

    async def stream_file(
        self,
        name: str,
        escape_digits: str = "",
        *,
        offset: int | None = None,
        reply_timeout: float | None = None,
    ) -> str | None:
        """Play a prompt; the escape digit that stopped it, or None if it played out."""
        response = await self._playing_file(
            codec.stream_file(name, escape_digits, offset), reply_timeout
        )
        return _digit(response)

    async def get_data(
        self,
        name: str,
        timeout_ms: int | None = None,
        max_digits: int | None = None,
        *,
        reply_timeout: float | None = None,
    ) -> tuple[str, bool]:
        """Play a prompt and collect digits: (digits, timed out before max_digits or #)."""
        response = await self._playing_file(
            codec.get_data(name, timeout_ms, max_digits), reply_timeout
        )
        return response.result or "", response.data == "timeout"

    async def say_digits(
        self, digits: str, escape_digits: str = "", *, reply_timeout: float | None = None
    ) -> str | None:
        """Say digits one by one; the escape digit pressed, or None."""
        response = await self._playing(codec.say_digits(digits, escape_digits), reply_timeout)
        return _digit(response)

    async def wait_for_digit(
        self, timeout_ms: int, *, reply_timeout: float | None = None
    ) -> str | None:
        """Wait for one key press; the digit, or None on timeout."""
        if reply_timeout is None and timeout_ms >= 0:
            reply_timeout = timeout_ms / 1000 + self.read_timeout
        response = await self._playing(codec.wait_for_digit(timeout_ms), reply_timeout)
        return _digit(response)

    async def set_variable(
        self, name: str, value: str, *, reply_timeout: float | None = None
    ) -> None:
        """Set a channel variable (or a function such as CDR(userfield))."""
        await self._ok(codec.set_variable(name, value), reply_timeout=reply_timeout)

    async def get_variable(self, name: str, *, reply_timeout: float | None = None) -> str | None:
        """A channel variable's value; None when unset (`200 result=0`)."""
        response = await self._ok(codec.get_variable(name), reply_timeout=reply_timeout)
        return _value(response)

    async def get_full_variable(
        self, expression: str, *, channel: str | None = None, reply_timeout: float | None = None
    ) -> str | None:
        """An expression with ${...} substituted by Asterisk; None when it fails."""
        response = await self._ok(
            codec.get_full_variable(expression, channel), reply_timeout=reply_timeout
        )
        return _value(response)

    async def exec(
        self, application: str, args: str = "", *, reply_timeout: float | None = None
    ) -> int:
        """Run a dialplan application; its return value (-2: no such application)."""
        line = codec.exec_(application, args)
        response = await self._playing(line, reply_timeout)
        result = response.result_int
        if result is None or result == -2:
            raise AgiCommandError(line, response)
        return result

    async def verbose(
        self, message: str, level: int = 1, *, reply_timeout: float | None = None
    ) -> None:
        """Write a message to the Asterisk console/log."""
        await self._ok(codec.verbose(message, level), reply_timeout=reply_timeout)

    async def set_context(self, context: str, *, reply_timeout: float | None = None) -> None:
        """Where the dialplan continues after the AGI: context."""
        await self._ok(codec.set_context(context), reply_timeout=reply_timeout)

    async def set_extension(self, extension: str, *, reply_timeout: float | None = None) -> None:
        """Where the dialplan continues after the AGI: extension."""
        await self._ok(codec.set_extension(extension), reply_timeout=reply_timeout)

    async def set_priority(
        self, priority: int | str, *, reply_timeout: float | None = None
    ) -> None:
        """Where the dialplan continues after the AGI: priority number or label."""
        await self._ok(codec.set_priority(priority), reply_timeout=reply_timeout)

    async def continue_at(self, context: str, extension: str, priority: int = 1) -> None:
        """Where the dialplan goes when the AGI returns: no second connection needed."""
        await self.set_context(context)
        await self.set_extension(extension)
        await self.set_priority(priority)

    async def hangup(self, *, reply_timeout: float | None = None) -> None:
        """Hang the caller up and close the connection (never raises CallerHungUp).

        Asterisk answers `200 result=1`, then sends `HANGUP` and keeps the socket open
        until we close it, so we close it here.
        """
        try:
            if not self.closed and not self.caller_hung_up:
                await self._ok(codec.hangup(), reply_timeout=reply_timeout)
        except CallerHungUp:
            pass  # already gone: the goal of the command
        finally:
            await self.close()


def _digit(response: AgiResponse) -> str | None:
    """The key of a `result=<ASCII code>` reply (0: none pressed)."""
    code = response.result_int
    if not code or code < 0:
        return None
    try:
        return chr(code)
    except (ValueError, OverflowError):
        return None


def _value(response: AgiResponse) -> str | None:
    """The "(value)" of a `result=1 (value)` reply; None for `result=0`."""
    if response.result != "1":
        return None
    return response.data if response.data is not None else ""
