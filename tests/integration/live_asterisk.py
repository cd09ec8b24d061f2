"""A real Asterisk for the integration tests: the shipped test bed, started and stopped.

The build comes from CC_ASTERISK_DIR (default ../shared/asterisk beside the repository);
when it is absent the tests are skipped with the reason (a failure under
CC_REQUIRE_INTEGRATION=1). Its configuration is contrib/asterisk/testbed/ with the
shipped contrib dialplan and manager.conf beside it, copied into the test's folder with
free ports written in. Prompts are short generated tones (8 kHz mono 16-bit WAV, made
here with the standard library: quick to play, enough to test routing) or the shipped
prompts of contrib/asterisk/sounds/ (`shipped_prompts`); music on hold is a tone too. The
test drives callers through its own AMI user (`testbed`, in testbed/manager.d/):
Originate into the inbound context, PlayDTMF on the caller's `;2` half for keys, Hangup of
that half for the caller hanging up.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.ami.client import AmiClient
from adapters.ami.framing import AmiMessage
from tests.conftest import port_open, require_server

REPO = Path(__file__).resolve().parents[2]
CONTRIB = REPO / "contrib" / "asterisk"
TESTBED = CONTRIB / "testbed"
SOUNDS = CONTRIB / "sounds"  # <language>/<prompt>.wav, as under Asterisk's sounds/
DRIVER_USER, DRIVER_SECRET = "testbed", "testbed-driver"
DAEMON_USER, DAEMON_SECRET = "contact-center", "testbed-secret"
# The prompts the test flows play (the bundled flows' names where they share them).
PROMPTS = ("welcome", "menu", "goodbye")


# Process groups of the Asterisks still running: killed at interpreter exit too, should
# a test run end without its fixtures' clean-up (an internal error, a second Ctrl-C).
_RUNNING: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    for group in list(_RUNNING):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


def asterisk_dir() -> Path:
    """The Asterisk build to run, or a skip (failure under CC_REQUIRE_INTEGRATION=1)."""
    configured = os.environ.get("CC_ASTERISK_DIR")
    path = Path(configured) if configured else REPO.parent / "shared" / "asterisk"
    if not (path / "run-asterisk").is_file() or not (path / "bin" / "asterisk").is_file():
        require_server(f"no Asterisk build at {path} (set CC_ASTERISK_DIR)")
    return path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_tone(path: Path, seconds: float, hz: float = 440.0) -> None:
    """An 8 kHz mono 16-bit WAV: a quiet tone, what Asterisk's wav format reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = 8000
    frames = b"".join(
        struct.pack("<h", int(3000 * math.sin(2 * math.pi * hz * i / rate)))
        for i in range(int(rate * seconds))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


class LiveAsterisk:
    """One Asterisk process on the test bed, with the test's own AMI session."""

    def __init__(
        self,
        root: Path,
        *,
        agi_port: int,
        prompts: tuple[str, ...] = PROMPTS,
        shipped_prompts: bool = False,
        music_on_hold: bool = True,
    ) -> None:
        self.build = asterisk_dir()
        self.conf = root / "asterisk-conf"
        self.work = root / "asterisk-work"
        self.ami_port = free_port()
        self.agi_port = agi_port
        self.prompts = prompts
        self.shipped_prompts = shipped_prompts
        self.music_on_hold = music_on_hold
        self.process: asyncio.subprocess.Process | None = None
        self.events: list[AmiMessage] = []
        self._changed = asyncio.Event()
        self.driver: AmiClient | None = None

    # --- life cycle -------------------------------------------------------------------

    def write_config(self) -> None:
        """The test bed with this run's ports, prompts and music on hold."""
        self.conf.mkdir(parents=True, exist_ok=True)
        shutil.copytree(TESTBED, self.conf, dirs_exist_ok=True)
        shutil.copy(CONTRIB / "extensions_contact_center.conf", self.conf)
        # The shipped manager.conf as users install it, with this run's port and secret.
        manager = (CONTRIB / "manager.conf").read_text()
        manager = re.sub(r"(?m)^port = \d+$", f"port = {self.ami_port}", manager)
        manager = re.sub(r"(?m)^secret = change-me$", f"secret = {DAEMON_SECRET}", manager)
        (self.conf / "manager.conf").write_text(manager)
        with (self.conf / "extensions.conf").open("a") as out:
            out.write(f"CC_AGI_PORT = {self.agi_port}\n")  # the file ends in [globals]
        if not self.music_on_hold:
            (self.conf / "musiconhold.conf").write_text("[general]\n")
        sounds = self.work / "data" / "sounds"  # run-asterisk's astdatadir is WORK_DIR/data
        if self.shipped_prompts:
            for language in (d for d in SOUNDS.iterdir() if d.is_dir()):
                shutil.copytree(language, sounds / language.name, dirs_exist_ok=True)
        for name in self.prompts:
            write_tone(sounds / "en" / f"{name}.wav", 0.3)
        if self.music_on_hold:
            write_tone(self.work / "data" / "moh" / "tone.wav", 2.0, 330.0)

    async def start(self) -> None:
        """Start Asterisk, wait for its AMI, log the test's driver in."""
        self.write_config()
        self.work.mkdir(parents=True, exist_ok=True)
        with (self.work / "console.log").open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(self.build / "run-asterisk"),
                str(self.conf),
                str(self.work),
                "-f",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends all of it
            )
        _RUNNING.add(self.process.pid)
        deadline = time.monotonic() + 15
        while not port_open("127.0.0.1", self.ami_port, 0.2):
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Asterisk did not start: {self.console_tail()}")
            await asyncio.sleep(0.1)
        self.driver = AmiClient(
            host="127.0.0.1",
            port=self.ami_port,
            username=DRIVER_USER,
            secret=DRIVER_SECRET,
            on_event=self._event,
            reconnect_max=1,
        )
        await self.driver.start()
        await self.driver.wait_connected(10)
        # AMI accepts before the dialplan is loaded: FullyBooted says it is.
        await self.wait_event(lambda m: m.get("Event") == "FullyBooted", within=15)

    async def stop(self) -> None:
        """Stop Asterisk (SIGTERM, then SIGKILL): always safe to call."""
        if self.driver is not None:
            with contextlib.suppress(Exception):
                await self.driver.stop()
            self.driver = None
        process, self.process = self.process, None
        if process is None:
            return
        _RUNNING.discard(process.pid)
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await asyncio.wait_for(process.wait(), 5)

    def console_tail(self, lines: int = 40) -> str:
        """The end of Asterisk's console output (for failure messages)."""
        path = self.work / "console.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # --- the test's AMI -------------------------------------------------------------

    def _event(self, message: AmiMessage) -> None:
        self.events.append(message)
        self._changed.set()

    async def action(self, action: dict[str, Any], *, as_list: bool = False) -> Any:
        """Send an action as the test's own AMI user."""
        assert self.driver is not None
        return await self.driver.send(action, as_list=as_list, reply_within=10)

    async def wait_event(
        self, match: Callable[[AmiMessage], bool], within: float = 10.0, since: int = 0
    ) -> AmiMessage:
        """The first event (from index `since`) for which `match` is true."""
        deadline = time.monotonic() + within
        seen = since
        while True:
            for message in self.events[seen:]:
                if match(message):
                    return message
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching AMI event within {within} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def call(
        self,
        caller: str,
        did: str = "5000",
        name: str = "Test Caller",
        language: str | None = None,
    ) -> str:
        """A caller dials `did`: the `;2` half (the caller's phone) is returned. With
        `language`, the call's channel plays prompts from sounds/<language>/."""
        since = len(self.events)
        originate = {
            "Action": "Originate",
            "Channel": f"Local/{caller}@tb-caller",
            "Context": "cc-inbound",
            "Exten": did,
            "Priority": "1",
            "CallerID": f'"{name}" <{caller}>',
            "Async": "true",
        }
        if language is not None:
            # Set on the `;1` half, the one that runs [cc-inbound] and the IVR.
            originate["Variable"] = f"CHANNEL(language)={language}"
        await self.action(originate)
        started = await self.wait_event(
            lambda m: (
                m.get("Event") == "Newchannel"
                and str(m.get("Channel", "")).startswith(f"Local/{caller}@tb-caller-")
                and str(m.get("Channel", "")).endswith(";2")
            ),
            since=since,
        )
        return str(started.get("Channel"))

    async def press(self, phone: str, keys: str) -> None:
        """The caller presses `keys` on their phone (the `;2` half)."""
        for key in keys:
            await self.action({"Action": "PlayDTMF", "Channel": phone, "Digit": key})

    async def hang_up(self, channel: str) -> None:
        """Hang a channel up (the caller's phone: the caller hangs up)."""
        await self.action({"Action": "Hangup", "Channel": channel})

    async def channels(self) -> list[str]:
        """The names of the channels that exist now."""
        reply = await self.action({"Action": "CoreShowChannels"}, as_list=True)
        return [str(m.get("Channel")) for m in reply if m.get("Event") == "CoreShowChannel"]

    async def cli(self, command: str) -> str:
        """One Asterisk CLI command's output (through AMI's Command action)."""
        reply = await self.action({"Action": "Command", "Command": command})
        return str(getattr(reply, "content", "") or reply.get("Output", ""))
