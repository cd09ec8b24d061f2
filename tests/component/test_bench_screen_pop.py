"""bench/screen_pop.py, tiny: every measured pop shows the 20 interactions the figure
claims, the reader and its bare-driver floor are measured side by side in each round, and
the figures are sane; on SQLite, and on PostgreSQL (a scratch database the bench drops)
when it is reachable. Run as a subprocess, the way the benchmark is run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POSTGRES_URL, postgres_available, require_server

ROOT = Path(__file__).resolve().parent.parent.parent
TINY = ["--customers", "500", "--interactions", "2500", "--pops", "100", "--rounds", "2"]


def _run(*extra: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "screen_pop.py"), *TINY, "--no-pin", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("screen pop, ") and "load " in line for line in lines), lines
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def _check(figures: dict[str, Any], backend: str, floor: str) -> None:
    assert figures["bench"] == "screen_pop" and figures["backend"] == backend
    assert (figures["customers"], figures["interactions"]) == (500, 2500)
    assert figures["measured_customers"] == 100
    # Every pop measured, reader, floor and naive alike, showed exactly 20 interactions.
    assert figures["interactions_per_measured_pop"] == {"min": 20, "max": 20}
    assert figures["returned"]["found"] == 1.0
    assert figures["returned"]["interactions"]["mean"] == 20
    assert figures["returned"]["contact_points"]["min"] >= 1
    assert figures["floor"]["name"].startswith(floor)
    assert len(figures["per_round"]) == 2
    for rnd in figures["per_round"]:
        for series in (rnd["reader"], rnd["floor"]):
            assert series["count"] == 100
            assert 0 < series["median_ms"] <= series["p99_ms"]
            assert series["cpu_ms"] > 0 and series["loop_cpu_ms"] > 0
    assert figures["reader"]["count"] == figures["floor"]["count"] == 200
    ratios = figures["ratio_reader_vs_floor"]
    assert set(ratios) == {"median_ms", "p99_ms", "cpu_ms", "loop_cpu_ms"}
    assert all(r > 0 for r in ratios.values())
    assert figures["concurrent"]["count"] == 200 and figures["concurrent_pops_per_s"] > 0
    assert figures["naive"]["count"] == 20
    assert len(figures["load_average"]) == 3
    assert set(figures["targets_met"]) == {
        "median_lt_1ms",
        "p99_lt_3ms",
        "cpu_lt_1ms",
        "pops_per_s_ge_1000",
    }


def test_sqlite_pops_show_twenty_interactions(tmp_path: Path) -> None:
    db = tmp_path / "pop.db"
    figures = _run("--db", str(db))
    _check(figures, "sqlite", "bare sqlite3")
    assert figures["generated"] is True and db.exists()
    # The file is reused by the next run of the same size.
    again = _run("--database-url", f"sqlite+aiosqlite:///{db}")
    assert again["generated"] is False
    _check(again, "sqlite", "bare sqlite3")


def test_postgresql_pops_show_twenty_interactions() -> None:
    if not postgres_available():
        require_server(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    figures = _run("--database-url", POSTGRES_URL)
    _check(figures, "postgresql", "bare asyncpg")
    assert figures["database"].startswith("cc_bench_")
    assert figures["generated"] is True


def test_the_cohort_has_exactly_twenty_each() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import screen_pop as bench
    finally:
        sys.path.remove(str(ROOT / "bench"))
    counts = Counter(bench.interaction_owners(1000, 6000))
    members = [bench.cohort_member(n) for n in range(bench.cohort_size(1000, 6000))]
    assert len(members) == 200
    assert all(counts[cid] == 20 for cid in members)
    assert sum(counts.values()) == 6000
    # Few interactions: a smaller cohort, still 20 each; too few for one: none.
    assert bench.cohort_size(1000, 100) == 5
    assert bench.cohort_size(1000, 19) == 0


def test_too_few_interactions_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "screen_pop.py"), "--interactions", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "cannot give one customer 20" in result.stderr


@pytest.mark.parametrize("flag", [["--rounds", "0"], ["--pops", "0"]])
def test_counts_must_be_positive(flag: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "screen_pop.py"), *flag],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "must be positive" in result.stderr
