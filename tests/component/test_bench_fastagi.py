"""bench/fastagi.py in its quick mode, small: every session ends as scripted, figures sane.

A real subprocess, as the benchmark is run: it spawns its own server and Asterisk-side
processes, which need the script to be the main module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SESSIONS = 50


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    """One quick run of 50 concurrent sessions; the JSON line it ends with."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "fastagi.py"),
            "--quick",
            "--sessions",
            str(SESSIONS),
            "--runs",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"FastAGI: {SESSIONS} concurrent IVR sessions"), result.stdout
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def test_every_session_completes(figures: dict[str, Any]) -> None:
    assert figures["bench"] == "fastagi"
    assert figures["failed"] == 0
    assert figures["started"] == figures["completed"] == SESSIONS
    (run,) = figures["per_run"]
    assert run["client_failures"] == {}
    assert run["server_errors"] == {}
    assert run["wrong_outcomes"] == 0
    assert run["served"] == SESSIONS
    # The four caller paths in turn: support twice (key 2, silence then 2), billing, spanish.
    assert run["queued"] == {"support": 25, "billing": 13, "spanish": 12}
    # 6 or 8 commands per path.
    assert run["commands"] == 25 * 6 + 25 * 8


def test_figures_are_sane(figures: dict[str, Any]) -> None:
    assert 0 < figures["total_s"] < 30
    assert figures["sessions_per_s"] == pytest.approx(SESSIONS / figures["total_s"])
    assert 0 < figures["session_median_ms"] <= figures["session_p99_ms"]
    assert figures["session_p99_ms"] <= figures["total_s"] * 1000
    assert figures["cpu_us_per_session"] > 0
    assert figures["peak_rss_growth_kb"] >= 0
    assert figures["peak_kb_per_session"] == pytest.approx(figures["peak_rss_growth_kb"] / SESSIONS)
    assert figures["per_run"][0]["rss_before_kb"] > 0
