"""bench/gc_pauses.py, tiny: the daemon runs as `contact-center run`, 20 agents and a
wallboard log in and open their sockets, the traffic flows, and the GC figures come from
the daemon's /metrics. Run as a subprocess, the way the benchmark is run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
AGENTS = 20


def test_gc_bench_measures_the_daemon() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "gc_pauses.py"),
            "--agents",
            str(AGENTS),
            "--seconds",
            "3",
            "--reloads-per-s",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"GC pauses in the daemon: {AGENTS + 1} sockets open")
    figures: dict[str, Any] = json.loads(lines[-1])
    assert figures["bench"] == "gc_pauses" and figures["daemon_exit"] == 0
    assert figures["sockets"] == AGENTS + 1
    for window in (figures["gc"], figures["gc_connecting"]):
        assert set(window) == {"gen0", "gen1", "gen2"}
        for row in window.values():
            assert row["collections"] >= 0
            assert 0 <= row["median_ms"] <= row["p99_ms"] <= row["max_ms"] or not row["collections"]
    # Logging in and opening sockets allocates: young collections were seen.
    assert figures["gc_connecting"]["gen0"]["collections"] > 0
    assert figures["frozen_objects"] > 10_000 and figures["tracked_objects"] > 0
    assert figures["thresholds"][0] > 0 and figures["rss_mb"] > 20
    assert len(figures["load_before"]) == 3
    messages = figures["messages"]
    assert messages["agent_state"] >= AGENTS  # each agent's ready, at least
    assert messages.get("call:201", 0) >= 1 and messages.get("offer", 0) >= 1
    assert messages["wallboard:hello"] == 1
    assert figures["reloads"] >= 1
