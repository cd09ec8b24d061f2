"""The prompts shipped in contrib/asterisk/sounds/: every one a bundled flow or the contrib
dialplan plays is there, in every language, as a WAV file Asterisk plays (8 kHz mono
16-bit PCM) that is speech, not silence; and make-prompts makes them from prompts.tsv."""

from __future__ import annotations

import array
import math
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest
import yaml

from adapters.asterisk.ivr import sound
from contact_center.config import parse_config
from ivr_flows.loader import load_flows
from ivr_flows.model import Flow

REPO = Path(__file__).resolve().parents[2]
CONTRIB = REPO / "contrib" / "asterisk"
SOUNDS = CONTRIB / "sounds"
LANGUAGES = ("en", "zh")
MAX_TOTAL_BYTES = 2_000_000  # shipped in the repository: keep the set small

# Dialplan applications that play sound files, and which argument names them.
_PLAYING = re.compile(r"\b(?:Playback|Background|BackGround|ControlPlayback)\(([^,)]*)")
_READ = re.compile(r"\bRead\([^,)]*,([^,)]*)")


def flow_prompts(flow: Flow) -> set[str]:
    """The sound names (as STREAM FILE gets them) of every prompt field of every step."""
    names: set[str] = set()
    for step in flow.steps.values():
        for field in type(step).model_fields:
            value = getattr(step, field)
            if field.endswith("prompt") and isinstance(value, str):
                names.add(sound(value))
    return names


def dialplan_prompts(text: str) -> set[str]:
    """Sound files named by Playback/Background/ControlPlayback/Read in a dialplan
    (`a&b` is two files); names built from variables cannot be checked and are left out."""
    names: set[str] = set()
    for line in text.splitlines():
        line = line.split(";", 1)[0]
        for match in [*_PLAYING.finditer(line), *_READ.finditer(line)]:
            names.update(n.strip() for n in match.group(1).split("&") if n.strip())
    return {n for n in names if "${" not in n}


def bundled_flows() -> dict[str, Flow]:
    """The flows of ivr_flows/ and of the shipped config.yaml's `ivr.flows_dir`."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    configured = REPO / parse_config(raw, {}).ivr.flows_dir
    return {**load_flows(REPO / "ivr_flows"), **load_flows(configured)}


def referenced() -> dict[str, str]:
    """Every prompt a bundled flow or the contrib dialplan plays -> who plays it."""
    where = {}
    for name, flow in bundled_flows().items():
        where.update({prompt: f"flow {name}" for prompt in flow_prompts(flow)})
    for conf in sorted(CONTRIB.glob("*.conf")):
        where.update({p: conf.name for p in dialplan_prompts(conf.read_text())})
    return where


def shipped(language: str) -> set[str]:
    return {path.stem for path in (SOUNDS / language).glob("*.wav")}


def table() -> dict[str, list[str]]:
    """prompts.tsv: name -> its texts."""
    rows = {}
    for line in (SOUNDS / "prompts.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, *texts = line.split("\t")
            rows[name] = texts
    return rows


def test_the_bundled_flows_name_prompts() -> None:
    # Guards the test itself: an empty set would make the checks below pass on nothing.
    prompts = referenced()
    assert {"welcome", "main-menu", "sales-menu"} <= set(prompts)
    assert all("/" not in p and "." not in p for p in prompts), prompts


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_prompt_played_is_shipped(language: str) -> None:
    missing = {p: who for p, who in referenced().items() if p not in shipped(language)}
    assert not missing, (
        f"prompts played but not in contrib/asterisk/sounds/{language}/: {missing} "
        "(add them to prompts.tsv and run contrib/asterisk/sounds/make-prompts)"
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_prompt_is_shipped_that_nothing_plays(language: str) -> None:
    stale = shipped(language) - set(referenced())
    assert not stale, f"shipped but played by no flow nor dialplan: {sorted(stale)}"


def test_prompts_tsv_lists_exactly_the_shipped_files() -> None:
    rows = table()
    assert all(len(texts) == len(LANGUAGES) and all(texts) for texts in rows.values())
    for language in LANGUAGES:
        assert shipped(language) == set(rows), language


def samples(path: Path) -> tuple[wave._wave_params, array.array[int]]:
    with wave.open(str(path)) as wav:
        params = wav.getparams()
        frames = array.array("h", wav.readframes(params.nframes))
    if sys.byteorder == "big":
        frames.byteswap()  # WAV is little-endian
    return params, frames


@pytest.mark.parametrize(
    "path", sorted(SOUNDS.glob("*/*.wav")), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_shipped_prompt_is_8khz_mono_16bit_speech(path: Path) -> None:
    params, frames = samples(path)
    assert (params.framerate, params.nchannels, params.sampwidth) == (8000, 1, 2)
    assert params.comptype == "NONE"
    seconds = params.nframes / params.framerate
    assert 0.3 < seconds < 15, seconds
    rms = math.sqrt(sum(s * s for s in frames) / len(frames)) / 32768
    assert rms > 0.02, f"{path.name} is (nearly) silent: RMS {rms:.4f}"
    assert max(abs(s) for s in frames) < 32767, f"{path.name} clips"


def test_the_shipped_prompts_stay_small() -> None:
    total = sum(path.stat().st_size for path in SOUNDS.glob("*/*.wav"))
    assert 0 < total < MAX_TOTAL_BYTES, total


def test_dialplan_prompts_are_read_from_the_applications_that_play() -> None:
    text = (
        "exten => s,1,Playback(hello&cc-thanks)\n"
        " same => n,Background(main-menu,noanswer)\n"
        " same => n,Read(CHOICE,enter-account-number,8)\n"
        " same => n,Playback(${PROMPT})\n"
        "; same => n,Playback(commented-out)\n"
        " same => n,MusicOnHold(default)\n"
    )
    assert dialplan_prompts(text) == {"hello", "cc-thanks", "main-menu", "enter-account-number"}


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are not installed (Debian: apt-get install espeak-ng sox)",
)
def test_make_prompts_writes_every_prompt_of_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SOUNDS / "make-prompts"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for language in LANGUAGES:
        made = {p.stem for p in (tmp_path / language).glob("*.wav")}
        assert made == set(table())
        for path in (tmp_path / language).glob("*.wav"):
            test_shipped_prompt_is_8khz_mono_16bit_speech(path)


def test_make_prompts_refuses_a_malformed_table(tmp_path: Path) -> None:
    script = tmp_path / "make-prompts"
    shutil.copy(SOUNDS / "make-prompts", script)
    (tmp_path / "prompts.tsv").write_text("welcome\tonly English\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "prompts.tsv:1: expected name, English, Chinese" in done.stderr
    assert not (tmp_path / "out").exists()
