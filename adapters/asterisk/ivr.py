"""The IVR's caller port over a FastAGI channel."""

from __future__ import annotations

from pathlib import PurePosixPath

from adapters.agi.channel import AgiChannel, CallerHungUp
from contact_center.ivr_runner import CallerGone


def sound(prompt: str) -> str:
    """Asterisk plays sounds by name without the extension ("welcome.wav" -> "welcome")."""
    path = PurePosixPath(prompt)
    return str(path.with_suffix("")) if path.suffix else prompt


class AgiCaller:
    """Plays prompts and reads keys with STREAM FILE and GET DATA."""

    def __init__(self, channel: AgiChannel) -> None:
        self.channel = channel

    async def play(self, prompt: str) -> None:
        """STREAM FILE; a hang-up becomes CallerGone."""
        try:
            await self.channel.stream_file(sound(prompt))
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
        except CallerHungUp:
            raise CallerGone() from None
        return digits or None
