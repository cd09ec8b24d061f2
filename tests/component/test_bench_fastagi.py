"""bench/fastagi.py in its quick mode, small: every session ends as scripted and is in the
store (the daemon's IVR path, store writes included), figures sane; on SQLite, and on
PostgreSQL when it is reachable (a scratch database the bench drops).

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

from tests.conftest import POSTGRES_URL, postgres_available, require_server

ROOT = Path(__file__).resolve().parent.parent.parent
SESSIONS = 50


def _scratch_databases() -> set[str]:
    import asyncio

    import asyncpg

    from bench.scratch_db import SCRATCH_PREFIX, asyncpg_dsn

    async def names() -> set[str]:
        conn = await asyncpg.connect(asyncpg_dsn(POSTGRES_URL))
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", SCRATCH_PREFIX + "%"
            )
        finally:
            await conn.close()
        return {row["datname"] for row in rows}

    return asyncio.run(names())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """One quick run of 50 concurrent sessions; the JSON line it ends with."""
    extra: list[str] = []
    if request.param == "postgresql":
        if not postgres_available():
            require_server(f"PostgreSQL is not reachable at {POSTGRES_URL}")
        extra = ["--database-url", POSTGRES_URL]
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "fastagi.py"),
            "--quick",
            "--sessions",
            str(SESSIONS),
            "--runs",
            "1",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"FastAGI: {SESSIONS} concurrent IVR sessions"), result.stdout
    assert f"a {request.param} store" in lines[0] and "load " in lines[0], lines[0]
    data: dict[str, Any] = json.loads(lines[-1])
    assert data["backend"] == request.param
    if request.param == "postgresql":
        # A scratch database of its own, gone after the run: the one named is untouched.
        (run,) = data["per_run"]
        assert run["database"].startswith("cc_bench_")
        assert run["database"] not in _scratch_databases()
    return data


def test_every_session_completes_and_is_stored(figures: dict[str, Any]) -> None:
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
    # The store has every contact with its queue, IVR path and routing request.
    assert run["stored_interactions"] == run["stored_complete"] == SESSIONS
    assert run["all_stored"] is True
    assert run["backend"] == figures["backend"]


def test_figures_are_sane(figures: dict[str, Any]) -> None:
    assert 0 < figures["total_s"] < 30
    assert figures["total_s"] <= figures["stored_s"]
    assert figures["sessions_per_s"] == pytest.approx(SESSIONS / figures["total_s"])
    assert 0 < figures["session_median_ms"] <= figures["session_p99_ms"]
    assert figures["session_p99_ms"] <= figures["total_s"] * 1000
    assert figures["cpu_us_per_session"] >= figures["sessions_cpu_us_per_session"] > 0
    assert figures["peak_rss_growth_kb"] >= 0
    assert figures["peak_kb_per_session"] == pytest.approx(figures["peak_rss_growth_kb"] / SESSIONS)
    assert figures["per_run"][0]["rss_before_kb"] > 0
    assert len(figures["load_average"]) == 3 and figures["per_run"][0]["load_1m"] >= 0


async def test_a_session_missing_from_the_store_counts_as_lost(tmp_path: Path) -> None:
    """The bench's own accounting: only a contact stored with the queue its caller's path
    ends in, its IVR path and its routing request counts as stored."""
    from bench import fastagi
    from crm_store.models import Interaction

    store = await fastagi.Store.open(f"sqlite+aiosqlite:///{tmp_path / 'cc.db'}")
    try:
        async with store.sessionmaker.begin() as db:
            # Session n's uniqueid is 1795327500.<100 + 2n>; paths: support, billing, ...
            db.add_all(
                [
                    Interaction(
                        channel="voice",
                        external_id="1795327500.100",
                        queue="support",
                        ivr_path=["welcome"],
                        routing={"priority": 0},
                    ),
                    # Billing's caller, stored without the queue: its update was lost.
                    Interaction(channel="voice", external_id="1795327500.102", ivr_path=["x"]),
                    # Spanish's caller in the wrong queue.
                    Interaction(
                        channel="voice",
                        external_id="1795327500.104",
                        queue="support",
                        ivr_path=["welcome"],
                        routing={"priority": 0},
                    ),
                ]
            )
        # A fourth session never reached the store at all.
        assert await store.recorded(4) == {"interactions": 3, "complete": 1}
    finally:
        await store.close()
