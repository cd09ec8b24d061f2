"""bench/live_asterisk.py --quick against the real Asterisk 22: every call goes through the
IVR, the queue and an agent and closes in the store, none lost, and the CPU figures of
both processes are there. Run as a subprocess, the way the benchmark is run. Skipped when
the Asterisk build is absent (a failure under CC_REQUIRE_INTEGRATION=1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.live_asterisk import asterisk_dir

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench" / "live_asterisk.py"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )


def test_quick_bench_loses_no_call() -> None:
    asterisk_dir()  # skip (or fail) with the reason when the build is absent
    result = _run("--quick")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures: dict[str, Any] = json.loads(lines[-1])
    assert lines[0].startswith("Real Asterisk 22 + daemon process:"), lines[0]
    assert "load " in lines[0]
    assert "sustained: 2 calls/s with none lost" in lines
    assert figures["bench"] == "live_asterisk" and figures["backend"] == "sqlite"
    assert figures["problems"] == [] and figures["none_lost"] is True
    assert figures["daemon_exit"] == 0
    assert figures["sustained_calls_per_s"] == 2.0
    [rate] = figures["results"]
    # 2 calls a second for 4 s: eight callers, each routed, answered and closed.
    assert rate["rate"] == 2.0 and rate["placed"] == 8 and rate["refused"] == 0
    assert rate["recorded"] == rate["routed"] == rate["answered"] == rate["closed"] == 8
    assert rate["lost"] == rate["unanswered"] == rate["channels_left"] == 0
    assert rate["key_errors"] == 0  # every caller keyed 2 on their own phone
    assert rate["ok"] is True
    assert rate["daemon_cpu_ms_per_call"] > 0 and rate["asterisk_cpu_ms_per_call"] > 0
    assert 0 < rate["answer_median_s"] < 10
    assert 1.5 < rate["placed_per_s"] <= 2.5


def test_bench_without_an_asterisk_build_says_why() -> None:
    """No build where CC_ASTERISK_DIR points: exit 2 and the reason, nothing started."""
    env = {**os.environ, "CC_ASTERISK_DIR": str(ROOT / "no-such-asterisk")}
    env.pop("CC_REQUIRE_INTEGRATION", None)
    result = _run("--quick", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no Asterisk build at" in result.stderr and "no-such-asterisk" in result.stderr


def test_bench_rejects_bad_rates() -> None:
    result = _run("--rates", "2,-1")
    assert result.returncode == 2
    assert "positive numbers" in result.stderr
