"""bench/email_intake.py run tiny against a real Dovecot: every mail stored exactly once
and routed, the figures there and sane. Run as a subprocess, the way the benchmark is
run. Skipped when Dovecot is absent (a failure under CC_REQUIRE_INTEGRATION=1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.email_intake import make_mails, message_id_of, replies_before_parent, statement_kind
from tests.integration.dovecot_server import dovecot_binary

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench" / "email_intake.py"
MESSAGES, ARRIVALS = 20, 10


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


@pytest.mark.integration
def test_tiny_bench_stores_every_mail_once_and_routes_it() -> None:
    dovecot_binary()  # skip (or fail) with the reason when Dovecot is absent
    result = _run(
        "--messages", str(MESSAGES), "--arrivals", str(ARRIVALS), "--rate", "50", "--rounds", "2"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures: dict[str, Any] = json.loads(lines[-1])
    assert lines[0].startswith("Email intake, real Dovecot + daemon in-process, sqlite"), lines[0]
    assert "load " in lines[0]
    assert "problems: none (every mail stored once, routed)" in lines
    assert figures["bench"] == "email_intake" and figures["backend"] == "sqlite"
    assert figures["ok"] is True and figures["problems"] == []
    assert figures["rounds"] == 2 and len(figures["per_round"]) == 2

    mails = make_mails(MESSAGES + ARRIVALS, 7)
    threads = sum(m.kind != "reply" for m in mails)
    assert threads < MESSAGES + ARRIVALS  # the mix has replies: both events are seen
    for counts in figures["counts"]:
        assert counts["stored"] == counts["stored_distinct"] == MESSAGES + ARRIVALS
        # A reply Dovecot numbers before its parent opens a contact of its own.
        contacts = threads + counts["replies_before_parent"]
        assert counts["contacts"] == counts["contact_queued"] == counts["routed"] == contacts
        assert counts["message_received"] == MESSAGES + ARRIVALS - contacts
        assert counts["unseen_left"] == 0

    median = figures["median"]
    for key in (
        "backlog_per_s",
        "backlog_cpu_ms",
        "bare_fetch_per_s",
        "bare_fetch_batched_per_s",
        "parse_alone_ms",
        "arrival_median_ms",
        "fetch_to_stored_median_ms",
        "arrival_cpu_ms",
    ):
        assert median[key] > 0, key
    # The daemon's whole path costs more than its first part alone.
    assert median["bare_fetch_per_s"] > median["backlog_per_s"]
    assert median["arrival_p99_ms"] >= median["arrival_median_ms"]
    assert median["arrival_median_ms"] >= median["fetch_to_stored_median_ms"]
    assert 0 < median["share_fetch"] < 1 and 0 < median["share_parse"] < 1
    steps = median["breakdown"]
    # One UID FETCH, one parse and one store transaction per message of the backlog.
    assert steps["UID FETCH round trip"]["calls"] == MESSAGES
    assert steps["parse_email (in its thread)"]["calls"] == MESSAGES
    assert steps["store transaction (_store)"]["calls"] == MESSAGES
    assert median["sql_statements"]["INSERT INTO messages"] == 1.0


def test_the_mails_are_a_realistic_mix_and_the_same_for_a_seed() -> None:
    mails = make_mails(400, 3)
    assert [m.raw for m in mails] == [m.raw for m in make_mails(400, 3)]
    assert len({m.message_id for m in mails}) == 400
    kinds = {k: sum(m.kind == k for m in mails) for k in ("plain", "html", "attachment", "reply")}
    assert all(count > 0 for count in kinds.values()), kinds
    ids = {m.message_id for m in mails}
    for mail in mails:
        if mail.kind == "reply":
            # Threaded on a mail that came before it.
            parent = mail.raw.split(b"In-Reply-To: <", 1)[1].split(b">", 1)[0].decode()
            assert parent in ids and mails.index(mail) > 0
        if mail.kind == "attachment":
            assert b"Content-Disposition: attachment" in mail.raw
        if mail.kind == "html":
            assert b"multipart/alternative" in mail.raw


def test_replies_before_their_parent_are_counted() -> None:
    mails = make_mails(60, 5)
    order = [m.message_id for m in mails]
    assert replies_before_parent(order, mails) == 0
    reply = next(m for m in mails if m.kind == "reply")
    parent = order.index(reply.parent or "")
    order.remove(reply.message_id)
    order.insert(parent, reply.message_id)  # just before the mail it answers
    assert replies_before_parent(order, mails) == 1
    assert message_id_of(reply.raw) == reply.message_id


def test_statements_are_named_by_verb_and_table() -> None:
    assert statement_kind("INSERT INTO messages (a) VALUES (?)") == "INSERT INTO messages"
    assert statement_kind("SELECT m.id FROM\n messages AS m WHERE x") == "SELECT messages"
    assert statement_kind('UPDATE "channel_cursors" SET v=?') == "UPDATE channel_cursors"
    assert statement_kind("BEGIN (implicit)") == "BEGIN"


def test_bench_without_dovecot_says_why() -> None:
    """No Dovecot where CC_DOVECOT points: exit 2 and the reason, nothing started."""
    env = {**os.environ, "CC_DOVECOT": str(ROOT / "no-such-dovecot")}
    env.pop("CC_REQUIRE_INTEGRATION", None)
    result = _run("--quick", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no dovecot at CC_DOVECOT=" in result.stderr and "no-such-dovecot" in result.stderr


def test_bench_rejects_bad_sizes() -> None:
    result = _run("--messages", "0")
    assert result.returncode == 2
    assert "must be at least 1" in result.stderr
