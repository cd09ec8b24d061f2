"""bench/simulator_calls.py, small: every call goes through IVR, queue and an agent, and
nothing is lost (every interaction closed, no call left in the tracker, every CallStarted
has its CallEnded). Run as a subprocess, the way the benchmark is run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
CALLS = 30


def test_simulator_bench_loses_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "simulator_calls.py"), "--calls", str(CALLS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"Simulated Asterisk: {CALLS} simultaneous calls through the daemon"
    assert "no event lost and no call left open" in lines
    figures: dict[str, Any] = json.loads(lines[-1])
    assert figures["bench"] == "simulator_calls" and figures["ok"] is True
    assert figures["problems"] == []
    assert figures["interactions"] == figures["answered"] == CALLS
    assert figures["tracker_started"] == figures["tracker_ended"] == CALLS
    # A prompt, a menu, then SET VARIABLE + SET CONTEXT/EXTENSION/PRIORITY per call.
    assert figures["agi_commands"] == CALLS * 6
    # Two Setvar and a Redirect per call, the login and the resync.
    assert figures["ami_actions"] >= CALLS * 3 + 2
    assert figures["ami_events"] == CALLS * figures["ami_events_per_call"]
    assert 0 < figures["answer_median_s"] <= figures["answer_p99_s"] < figures["total_s"]
