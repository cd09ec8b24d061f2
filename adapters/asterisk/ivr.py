"""The IVR's caller port over a FastAGI channel."""

from __future__ import annotations

import logging
import time
from pathlib import PurePosixPath

from adapters.agi.channel import AgiChannel, CallerHungUp, PromptMissing
from adapters.asterisk.ivr_runner import CallerGone

log = logging.getLogger(__name__)


def sound(prompt: str) -> str:
    """Asterisk plays sounds by name without the extension ("welcome.wav" -> "welcome")."""
    path = PurePosixPath(prompt)
    return str(path.with_suffix("")) if path.suffix else prompt


class AgiCaller:
    """Plays prompts and reads keys with STREAM FILE and GET DATA.

    A prompt missing on the Asterisk host is logged and skipped (the caller is still
    there: taking it for a hang-up would leave them waiting with nobody routing them);
    keys are then read with WAIT FOR DIGIT, so menus still work without their sound.
    """

    def __init__(self, channel: AgiChannel) -> None:
        self.channel = channel

    async def play(self, prompt: str) -> None:
        """STREAM FILE; a hang-up becomes CallerGone."""
        try:
            await self.channel.stream_file(sound(prompt))
        except PromptMissing:
            _missing(prompt)
        except CallerHungUp:
            raise CallerGone() from None

    async def collect(
        self, prompt: str, max_digits: int, wait_seconds: float, terminator: str | None
    ) -> str | None:
        """GET DATA (Asterisk ends on "#" itself); None when nothing was pressed."""
        try:
            digits, _timed_out = await self.channel.get_data(
                sound(prompt), int(wait_seconds * 1000), max_digits
            )
        except PromptMissing:
            _missing(prompt)
            digits = await self._keys(max_digits, wait_seconds)
        except CallerHungUp:
            raise CallerGone() from None
        return digits or None

    async def _keys(self, max_digits: int, wait_seconds: float) -> str:
        """Keys without a prompt, as GET DATA reads them: up to `max_digits`, `#` ends,
        `wait_seconds` for the whole entry."""
        digits = ""
        deadline = time.monotonic() + wait_seconds
        try:
            while len(digits) < max_digits:
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms <= 0:
                    break
                key = await self.channel.wait_for_digit(left_ms)
                if key is None or key == "#":
                    break
                digits += key
        except CallerHungUp:
            raise CallerGone() from None
        return digits


def _missing(prompt: str) -> None:
    log.warning(
        "IVR prompt %r is missing on the Asterisk host (put %s.wav under its sounds "
        "directory): skipped",
        prompt,
        sound(prompt),
    )
