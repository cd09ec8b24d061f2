"""bench/simulator_calls.py, small: every call goes through IVR, queue and an agent, and
nothing is lost (every interaction closed, no call left in the tracker, every CallStarted
has its CallEnded). Run as a subprocess, the way the benchmark is run; on SQLite, and on
PostgreSQL (a scratch database the bench drops) when it is reachable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POSTGRES_URL, postgres_available, require_server

ROOT = Path(__file__).resolve().parent.parent.parent
CALLS = 30


def _run(*extra: str, calls: int = CALLS) -> tuple[list[str], dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "simulator_calls.py"), "--calls", str(calls), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures: dict[str, Any] = json.loads(lines[-1])
    return lines, figures


def _check(lines: list[str], figures: dict[str, Any], backend: str) -> None:
    assert lines[0].startswith(
        f"Simulated Asterisk: {CALLS} simultaneous calls through the daemon, {backend} store"
    ), lines[0]
    assert "load " in lines[0]
    assert "no event lost and no call left open" in lines
    assert figures["bench"] == "simulator_calls" and figures["ok"] is True
    assert figures["backend"] == backend
    assert figures["problems"] == []
    assert figures["interactions"] == figures["answered"] == CALLS
    assert figures["tracker_started"] == figures["tracker_ended"] == CALLS
    # A prompt, a menu, then SET VARIABLE + SET CONTEXT/EXTENSION/PRIORITY per call.
    assert figures["agi_commands"] == CALLS * 6
    # Two Setvar and a Redirect per call, the login and the resync.
    assert figures["ami_actions"] >= CALLS * 3 + 2
    assert figures["ami_events"] == CALLS * figures["ami_events_per_call"]
    assert 0 < figures["answer_median_s"] <= figures["answer_p99_s"] < figures["total_s"]


def test_simulator_bench_loses_nothing() -> None:
    lines, figures = _run()
    _check(lines, figures, "sqlite")
    assert figures["runs"] == 1 and len(figures["per_run"]) == 1


def test_simulator_bench_runs_twice_and_quotes_medians() -> None:
    lines, figures = _run("--runs", "2", calls=10)
    assert figures["runs"] == 2 and figures["ok"] is True
    # A line per run (with its load average), then the medians.
    assert lines[1].split()[:2] == ["run", "total"]
    assert [line.split()[0] for line in lines[2:4]] == ["1", "2"]
    totals = [run["total_s"] for run in figures["per_run"]]
    assert figures["total_s"] == pytest.approx(sum(totals) / 2)
    assert all(run["interactions"] == run["answered"] == 10 for run in figures["per_run"])


def test_simulator_bench_on_postgresql() -> None:
    if not postgres_available():
        require_server(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    lines, figures = _run("--database-url", POSTGRES_URL)
    _check(lines, figures, "postgresql")
