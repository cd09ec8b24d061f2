"""`contact-center replay` as a user runs it: JSON lines out, exit codes, one-line errors.

Every call is a real subprocess (`python -m contact_center.cli`), as in test_cli.py, with
`CC_DATABASE_URL` pointing at a SQLite file of this module's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.component.test_cli import Cli, Result

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "config.yaml")
TRACES = REPO / "tests" / "fixtures" / "asterisk-traces"
B_TRACE = TRACES / "b_queue_answered.ami.txt"
B_CALL = "1795327436.0"


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    tmp = tmp_path_factory.mktemp("replay")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    env.update(CC_DATABASE_URL=f"sqlite+aiosqlite:///{tmp}/absent.db", CC_CONFIG=CONFIG)
    yield Cli(env, tmp)


def records(result: Result) -> list[dict[str, object]]:
    """Standard output as JSON objects, checking each has type, call_id and at."""
    out = []
    for line in result.stdout.splitlines():
        record = json.loads(line)
        assert isinstance(record["type"], str), line
        assert isinstance(record["call_id"], str), line
        assert isinstance(record["at"], float), line
        assert list(record) == sorted(record), line
        out.append(record)
    return out


def errors(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_replay_prints_the_call_as_json_lines(cli: Cli) -> None:
    result = cli("replay", "-c", CONFIG, str(B_TRACE))
    assert result.returncode == 0, result.stderr
    assert [(r["type"], r["call_id"]) for r in records(result)] == [
        ("CallStarted", B_CALL),
        ("CallQueued", B_CALL),
        ("AgentRinging", B_CALL),
        ("CallAnswered", B_CALL),
        ("CallEnded", B_CALL),
    ]
    # No store: said once, and the store is not created by looking for it.
    assert result.stderr.count("no routing") == 1
    assert "absent.db does not exist" in result.stderr
    assert not (cli.tmp / "absent.db").exists()
    assert cli("replay", str(B_TRACE)).stdout == result.stdout


def test_replay_routes_to_the_agents_of_the_store(cli: Cli) -> None:
    url = f"sqlite+aiosqlite:///{cli.tmp}/agents.db"
    added = cli(
        "users",
        "add",
        "--username",
        "alice",
        "--role",
        "agent",
        "--skills",
        "support=5",
        "--device",
        "Local/agent1001@agents",
        "--password-stdin",
        stdin="a-long-password\n",
        CC_DATABASE_URL=url,
    )
    assert added.returncode == 0, added.stderr
    store = cli.tmp / "agents.db"
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    result = cli("replay", str(B_TRACE), CC_DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    found = records(result)
    assert [r["type"] for r in found][:3] == ["CallStarted", "CallQueued", "Offer"]
    offer = found[2]
    assert (offer["call_id"], offer["agent"], offer["queue"]) == (B_CALL, "alice", "support")
    assert "no routing" not in result.stderr
    assert "routing: 1 agent ready from 0 s (alice)" in result.stderr
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before  # read-only


def test_replay_of_missing_directory_and_non_ami_files(cli: Cli) -> None:
    not_ami = cli.tmp / "actions.ami.txt"
    shutil.copy(TRACES / "b_queue_answered.actions.txt", not_ami)
    missing = cli("replay", "nope.ami.txt")
    folder = cli("replay", str(cli.tmp))
    other = cli("replay", str(not_ami))
    for result in (missing, folder, other):
        assert result.returncode == 1
        assert result.stdout == ""
        assert len(errors(result)) == 1, result.stderr
    assert errors(missing) == ["error: nope.ami.txt: cannot read (No such file or directory)"]
    assert errors(folder) == [f"error: {cli.tmp}: cannot read (Is a directory)"]
    assert errors(other)[0].startswith(f"error: {not_ami}: not an AMI recording")
    assert "no routing" not in other.stderr  # refused before looking at the store


def test_replay_of_a_truncated_file_prints_what_it_can_then_fails(cli: Cli) -> None:
    data = B_TRACE.read_bytes()
    cut = cli.tmp / "cut.ami.txt"
    cut.write_bytes(data[: data.index(b"Event: AgentConnect") + 40])
    result = cli("replay", str(cut))
    assert result.returncode == 1
    assert [r["type"] for r in records(result)] == ["CallStarted", "CallQueued", "AgentRinging"]
    assert len(errors(result)) == 1
    assert errors(result)[0].startswith(f"error: {cut}: truncated: ")
    assert "the 3 records before it are printed" in result.stderr
    # Without a timeline beside it every message is at 0 s.
    assert {r["at"] for r in records(result)} == {0.0}


def test_replay_takes_its_timeline_and_help(cli: Cli) -> None:
    copy = cli.tmp / "copy.ami.txt"
    shutil.copy(B_TRACE, copy)
    untimed = cli("replay", str(copy))
    shutil.copy(TRACES / "b_queue_answered.timeline.tsv", cli.tmp / "copy.timeline.tsv")
    timed = cli("replay", str(copy))
    assert untimed.returncode == timed.returncode == 0
    assert {r["at"] for r in records(untimed)} == {0.0}
    assert records(timed)[-1]["at"] == 5.527
    (cli.tmp / "copy.timeline.tsv").write_text("soon\trecv\t0\t30\tbanner\n")
    bad = cli("replay", str(copy))
    assert bad.returncode == 1
    assert errors(bad) == [
        f"error: {cli.tmp / 'copy.timeline.tsv'} line 1: t_ms, file_offset and length "
        "must be numbers"
    ]
    assert bad.stdout == ""
    helped = cli("replay", "--help")
    assert helped.returncode == 0
    assert helped.stdout.startswith("usage: contact-center replay")
    assert "-c FILE, --config FILE" in helped.stdout
