"""bench/webchat.py, tiny: 20 chats through a daemon in its own process, a load process
with the visitors' and agents' sockets, every message timed both ways and none lost.
Run as a subprocess, the way the benchmark is run; on SQLite, and on PostgreSQL (a
scratch database the bench drops) when it is reachable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POSTGRES_URL, postgres_available, require_server

ROOT = Path(__file__).resolve().parent.parent.parent
CHATS = 20
AGENTS = 7  # 21 chat slots at capacity 3: some agents hold three chats at once
MESSAGES = 2


def _run(*extra: str) -> tuple[list[str], dict[str, Any]]:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "webchat.py"),
            "--chats",
            str(CHATS),
            "--agents",
            str(AGENTS),
            "--messages-per-chat",
            str(MESSAGES),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures: dict[str, Any] = json.loads(lines[-1])
    return lines, figures


def _check(lines: list[str], figures: dict[str, Any], backend: str, runs: int) -> None:
    assert lines[0].startswith(
        f"Web chat through the daemon: {CHATS} chats, {AGENTS} agents, {MESSAGES} messages"
    ), lines[0]
    assert f"{backend} store; {runs} run(s), medians" in lines[0] and "load " in lines[0]
    assert "no message lost" in lines
    assert any(line.startswith("target: p99 < 50 ms both ways: ") for line in lines)
    assert figures["bench"] == "webchat" and figures["ok"] is True
    assert figures["problems"] == [] and figures["backend"] == backend
    assert figures["runs"] == len(figures["per_run"]) == runs
    assert figures["chats_opened"] == CHATS
    assert figures["messages_each_way"] == CHATS * MESSAGES
    assert figures["lost_v2a"] == figures["lost_a2v"] == 0
    for run in figures["per_run"]:
        # Every message sent was timed on arrival, each way, and each answer sent once.
        assert run["v2a_sent"] == run["v2a_received"] == CHATS * MESSAGES
        assert run["a2v_sent"] == run["a2v_received"] == CHATS * MESSAGES
        assert run["delivery"] == {"sent": CHATS * MESSAGES, "retried": 0, "failed": 0}
        assert run["dropped_visitor_sockets"] == 0
        assert run["joined_in_open_phase"] == CHATS
    for way in ("v2a", "a2v", "first_to_offer", "first_to_joined"):
        row = figures[way]
        assert 0 < row["median_ms"] <= row["p99_ms"], (way, row)
    assert figures["v2a"]["p99_ms"] <= figures["v2a"]["max_ms"]
    assert figures["a2v"]["p95_ms"] <= figures["a2v"]["p99_ms"] <= figures["a2v"]["max_ms"]
    assert figures["target_met"] == (max(figures["v2a"]["p99_ms"], figures["a2v"]["p99_ms"]) < 50)
    # The daemon process's own memory and CPU, not the load's.
    assert 20 < figures["rss_before_mb"] <= figures["rss_opened_mb"]
    assert figures["rss_per_chat_kb"] >= 0 and figures["cpu_ms_per_message"] > 0


def test_webchat_bench_times_every_message_and_loses_none() -> None:
    lines, figures = _run("--runs", "1")
    _check(lines, figures, "sqlite", runs=1)


def test_webchat_bench_runs_twice_and_quotes_medians() -> None:
    lines, figures = _run("--runs", "2")
    _check(lines, figures, "sqlite", runs=2)
    # A line per run, then the medians of the runs.
    assert lines[1].split()[:2] == ["run", "v>a"]
    assert [line.split()[0] for line in lines[2:4]] == ["1", "2"]
    p99s = sorted(run["a2v"]["p99_ms"] for run in figures["per_run"])
    assert figures["a2v"]["p99_ms"] == pytest.approx(sum(p99s) / 2)


def test_webchat_bench_on_postgresql() -> None:
    if not postgres_available():
        require_server(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    lines, figures = _run("--runs", "1", "--database-url", POSTGRES_URL)
    _check(lines, figures, "postgresql", runs=1)
