"""bench/ami_ingest.py over a loopback socket, tiny: every contender reads every event.

A real subprocess, as the benchmark is run: its sender is a spawned process, which needs
the script to be the main module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CONTENDERS = {"whole pipeline", "bare split", "bare, filtered", "stock panoramisk"}


@pytest.fixture(scope="module")
def run() -> tuple[list[str], dict[str, Any], float]:
    """One socket-mode run on two copies of one recorded call (~400 messages), one round."""
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "ami_ingest.py"),
            "--mode",
            "socket",
            "--traces",
            "b_queue_answered",
            "--repeats",
            "2",
            "--rounds",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    return lines, json.loads(lines[-1]), elapsed


def test_every_contender_counts_every_event(run: tuple[list[str], dict[str, Any], float]) -> None:
    lines, figures, elapsed = run
    assert elapsed < 15
    assert lines[0].startswith("AMI ingest over loopback TCP:"), lines
    assert figures["bench"] == "ami_ingest"
    socket = figures["socket"]
    assert socket["rounds"] == 1
    assert 300 <= socket["messages"] < 1000
    assert 0 < socket["events"] < socket["messages"]
    assert socket["counted_events"] == dict.fromkeys(CONTENDERS, socket["events"])
    assert set(socket["msgs_per_s"]) == CONTENDERS
    assert all(rate > 0 for rate in socket["msgs_per_s"].values())
    # The headline ratio is like for like: the bare parser skipping what the pipeline skips.
    rates = socket["msgs_per_s"]
    assert socket["ratio_pipeline_vs_bare_same_filter"] == pytest.approx(
        rates["whole pipeline"] / rates["bare, filtered"], rel=0.01
    )
    assert socket["ratio_pipeline_vs_bare_all"] == pytest.approx(
        rates["whole pipeline"] / rates["bare split"], rel=0.01
    )
    assert isinstance(socket["target_met"], bool)


def test_the_pipeline_produces_domain_events_and_routes_them(
    run: tuple[list[str], dict[str, Any], float],
) -> None:
    _lines, figures, _elapsed = run
    pipeline = figures["socket"]["pipeline"]
    assert pipeline["logins"] == 1
    # Filtered or not (see the bench's note on the banner), every event is accounted for.
    assert pipeline["delivered"] + pipeline["skipped"] == figures["socket"]["events"]
    assert pipeline["domain_events"] > 0
    assert pipeline["handler_errors"] == 0
    assert pipeline["tracker_internal_errors"] == 0
    # Two copies of one answered queue call, each with its own call id.
    assert pipeline["queued"] == pipeline["offers"] == 2
    assert pipeline["accepted"] == pipeline["ended"] == 2
    assert pipeline["routing_errors"] == 0
    assert pipeline["requeued_skipped"] == 0
