"""The shipped prompts (contrib/asterisk/sounds/) on a real Asterisk 22: the bundled main
flow, run by the daemon over FastAGI, plays each of its prompts from the folder the test
bed's Asterisk reads (WORK_DIR/data/sounds/<language>/), in English and in Chinese, and
its voicemail step records a message with the shipped dialplan and no Asterisk core
sounds.

Asterisk's own record of each AGI session (`agi set debug on`, in its messages.log) is
the proof: a prompt that played answers `200 result=0 endpos=<n>`, n being the file's
length in samples; a missing one answers `200 result=-1 endpos=0` (and the daemon logs
`IVR prompt ... is missing`).
"""

from __future__ import annotations

import logging
import re
import wave
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration import test_live_asterisk as live
from tests.integration.live_asterisk import SOUNDS

# The live test bed's fixtures (pytest finds them by name in this module).
asterisk_build = live.asterisk_build
bed = live.bed
BUNDLED_MAIN = Path(__file__).resolve().parents[2] / "ivr_flows" / "main.yaml"
_RX = re.compile(r"<(?P<channel>[^>]+)>AGI Rx << (?P<command>.*)$")
_TX = re.compile(r"<(?P<channel>[^>]+)>AGI Tx >> (?P<answer>\d{3} result=.*)$")
_PLAYED = re.compile(r"^200 result=0 endpos=(\d+)$")
_KEYS = re.compile(r"^200 result=[0-9*#]*( \(timeout\))?$")  # GET DATA: keys, or none


def main_flow(open_now: bool) -> dict[str, Any]:
    """The bundled main flow, open all week or closed all week (its real hours would
    make the test depend on the time it runs)."""
    flow: dict[str, Any] = yaml.safe_load(BUNDLED_MAIN.read_text())
    hours = flow["steps"]["opening_hours"]["business_hours"]
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    hours["open"] = {day: "00:00-24:00" for day in days} if open_now else {}
    hours["holidays"] = []
    return flow


def agi_exchanges(log: Path) -> list[tuple[str, str]]:
    """(command, answer) of every AGI command in Asterisk's log, in order."""
    pairs: list[tuple[str, str]] = []
    asked: dict[str, str] = {}
    for line in log.read_text(errors="replace").splitlines():
        if (rx := _RX.search(line)) is not None:
            asked[rx["channel"]] = rx["command"].strip()
        elif (tx := _TX.search(line)) is not None and tx["channel"] in asked:
            pairs.append((asked.pop(tx["channel"]), tx["answer"].strip()))
    return pairs


def samples_in(language: str, prompt: str) -> int:
    """The length of a shipped prompt in samples: its endpos once played to the end."""
    with wave.open(str(SOUNDS / language / f"{prompt}.wav")) as wav:
        return int(wav.getnframes())


async def live_bed(bed: live.BedFactory, tmp_path: Path, open_now: bool) -> live.Bed:
    """Asterisk with the shipped prompts only (no test tones), AGI debugging on, and the
    daemon running the bundled main flow."""
    flows = tmp_path / "bundled-flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(yaml.safe_dump(main_flow(open_now)))
    b = await bed(
        prompts=(),
        shipped_prompts=True,
        sections={"ivr": {"flows_dir": str(flows), "default_flow": "main"}},
    )
    assert "AGI Debugging Enabled" in await b.asterisk.cli("agi set debug on")
    return b


async def played(b: live.Bed, last: str, within: float = 10) -> list[tuple[str, str]]:
    """Asterisk's AGI exchanges, once the one for the command `last` is logged."""
    log = b.asterisk.work / "log" / "messages.log"

    async def logged() -> bool:
        return any(command == last for command, _ in agi_exchanges(log))

    await b.until(logged, within=within, what=f"Asterisk to log the answer to {last}")
    return agi_exchanges(log)


def check_prompts(
    exchanges: list[tuple[str, str]], language: str, streamed: list[str], read: list[str]
) -> None:
    """Every STREAM FILE played its shipped file to the end; every GET DATA played its
    prompt (no result=-1) and read keys; the prompts are the ones expected, in order."""
    files = [(c.split()[2], a) for c, a in exchanges if c.startswith("STREAM FILE ")]
    assert [name for name, _ in files] == streamed, exchanges
    for name, answer in files:
        match = _PLAYED.match(answer)
        assert match is not None, f"STREAM FILE {name} -> {answer}"
        assert int(match[1]) == samples_in(language, name), f"{name} did not play out"
    menus = [(c.split()[2], a) for c, a in exchanges if c.startswith("GET DATA ")]
    assert [name for name, _ in menus] == read, exchanges
    assert all(_KEYS.match(answer) for _, answer in menus), menus


async def test_the_main_flow_plays_its_shipped_english_prompts(
    bed: live.BedFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Open hours, English: a wrong key at the menu, billing, an account number too
    short, then one the CRM does not know; the call is queued for billing. Each of the
    six prompts on that path plays from sounds/en/."""
    caplog.set_level(logging.WARNING)
    b = await live_bed(bed, tmp_path, open_now=True)
    since = len(b.asterisk.events)
    phone = await b.asterisk.call("5551101")
    for command, keys in (
        ("GET DATA main-menu", "7"),  # not a choice: invalid-option, the menu again
        ("GET DATA main-menu", "1"),  # billing
        ("GET DATA enter-account-number", "12#"),  # too short: invalid-account-number
        ("GET DATA enter-account-number", "99999#"),  # unknown: account-not-found
    ):
        await b.asterisk.wait_event(live.agi_command(command), since=since, within=15)
        since = len(b.asterisk.events)
        await b.asterisk.press(phone, keys)
    await live.wait_queued(b, within=20)

    exchanges = await played(b, 'STREAM FILE account-not-found ""')
    check_prompts(
        exchanges,
        "en",
        streamed=["welcome", "invalid-option", "invalid-account-number", "account-not-found"],
        read=["main-menu", "main-menu", "enter-account-number", "enter-account-number"],
    )
    assert not [r.getMessage() for r in caplog.records if "is missing" in r.getMessage()]
    ix = await b.interaction()
    assert ix.queue == "billing"
    assert ix.ivr_inputs is not None and ix.ivr_inputs.get("account_number") == "99999"
    # The shipped manager.conf's channelvars: AMI events carry the call's tag.
    tagged = [m for m in b.asterisk.events if m.get("Event") == "AGIExecEnd"]
    assert tagged and all(m.chan_vars.get("CTI_CALLID") == m.get("Uniqueid") for m in tagged)


async def test_the_closed_main_flow_plays_chinese_prompts_and_takes_a_message(
    bed: live.BedFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Closed, a caller whose channel language is zh: the welcome and the closed prompt
    play from sounds/zh/, then [cc-voicemail] records the caller's message in the
    general mailbox (VoiceMail with no Asterisk core sounds installed)."""
    caplog.set_level(logging.WARNING)
    b = await live_bed(bed, tmp_path, open_now=False)
    since = len(b.asterisk.events)
    phone = await b.asterisk.call("5551102", language="zh")
    await b.asterisk.wait_event(
        lambda m: m.get("Event") == "Newexten" and m.get("Application") == "VoiceMail",
        since=since,
        within=30,
    )
    inbox = b.asterisk.work / "spool" / "voicemail" / "default" / "general" / "INBOX"

    async def recording() -> bool:
        return any(inbox.glob("*")) or any((inbox.parent / "tmp").glob("*"))

    await b.until(recording, within=5, what="VoiceMail to start recording")
    await b.asterisk.hang_up(phone)

    async def message_saved() -> bool:
        return any(inbox.glob("msg*.txt"))

    await b.until(message_saved, within=10, what="the voicemail message to be saved")
    exchanges = await played(b, 'STREAM FILE closed-leave-message ""')
    check_prompts(exchanges, "zh", streamed=["welcome", "closed-leave-message"], read=[])
    assert not [r.getMessage() for r in caplog.records if "is missing" in r.getMessage()]
    assert "callerid=" in next(inbox.glob("msg*.txt")).read_text()
