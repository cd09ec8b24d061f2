"""The `contact-center` command as a user runs it: exit codes, messages, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "config.yaml")


@dataclass
class Cli:
    """Runs the CLI against one SQLite store."""

    env: dict[str, str]
    tmp: Path

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "contact_center.cli", *args],
            cwd=self.tmp,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    tmp = tmp_path_factory.mktemp("cli")
    env = dict(os.environ)
    env.update(CC_DATABASE_URL=f"sqlite+aiosqlite:///{tmp}/crm.db", CC_CONFIG=CONFIG)
    env.pop("CC_WEB_PORT", None)
    yield Cli(env, tmp)


def test_help_for_every_command(cli: Cli) -> None:
    top = cli("--help")
    assert top.returncode == 0
    for word in ("run", "check-config", "db", "users", "customers"):
        assert word in top.stdout
    for command in (
        ["run"],
        ["check-config"],
        ["db", "upgrade"],
        ["db", "seed-demo"],
        ["users", "add"],
        ["users", "list"],
        ["customers", "import"],
        ["customers", "export"],
    ):
        result = cli(*command, "--help")
        assert result.returncode == 0, command
        assert "usage:" in result.stdout


def test_wrong_command_line_is_exit_2(cli: Cli) -> None:
    result = cli("users", "add", "--username", "x")
    assert result.returncode == 2
    assert "--role" in result.stderr


def test_check_config_on_the_shipped_file(cli: Cli) -> None:
    result = cli("check-config", "-c", CONFIG)
    assert result.returncode == 0, result.stderr
    assert "queues" in result.stdout


def test_check_config_reports_key_paths_and_hides_secrets(cli: Cli) -> None:
    broken = cli.tmp / "broken.yaml"
    broken.write_text(
        "pbx:\n  mode: asterisk\n  ami:\n    secret: ${CC_TEST_AMI_SECRET}\n"
        "queues:\n  - {name: a, channels: [voice]}\n  - {name: b, channels: [chat]}\n"
        "  - {name: c, channels: [email], sla_seconds: abc}\n"
        "webb: {}\n"
    )
    env_secret = dict(cli.env, CC_TEST_AMI_SECRET="hunter2-secret")
    result = subprocess.run(
        [sys.executable, "-m", "contact_center.cli", "check-config", "-c", str(broken)],
        env=env_secret,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert 'queues[2].sla_seconds: expected a positive integer, got "abc"' in result.stderr
    assert "webb" in result.stderr
    assert "hunter2-secret" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    ok = cli.tmp / "ok.yaml"
    ok.write_text("pbx:\n  mode: asterisk\n  ami:\n    secret: ${CC_TEST_AMI_SECRET}\n")
    fine = subprocess.run(
        [sys.executable, "-m", "contact_center.cli", "check-config", "-c", str(ok)],
        env=env_secret,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fine.returncode == 0, fine.stderr
    assert "hunter2-secret" not in fine.stdout + fine.stderr
    missing = cli("check-config", "-c", str(cli.tmp / "nope.yaml"))
    assert missing.returncode == 1
    assert "nope.yaml" in missing.stderr


def test_db_upgrade_is_idempotent_and_seed_demo_runs_once(cli: Cli) -> None:
    first = cli("db", "upgrade")
    assert first.returncode == 0, first.stderr
    again = cli("db", "upgrade")
    assert again.returncode == 0
    seeded = cli("db", "seed-demo")
    assert seeded.returncode == 0, seeded.stderr
    assert "agent-demo-pass" in seeded.stdout
    listing = cli("users", "list")
    assert {"admin", "supervisor", "agent"} <= set(listing.stdout.split())
    second = cli("db", "seed-demo")
    assert second.returncode == 0
    assert cli("users", "list").stdout == listing.stdout


def test_users_add_list_disable_enable(cli: Cli) -> None:
    cli("db", "upgrade")
    added = cli(
        "users",
        "add",
        "--username",
        "carol",
        "--role",
        "agent",
        "--skills",
        "billing=7,support=5",
        "--password-stdin",
        stdin="a-long-password\n",
    )
    assert added.returncode == 0, added.stderr
    duplicate = cli(
        "users",
        "add",
        "--username",
        "Carol",
        "--role",
        "agent",
        "--password-stdin",
        stdin="a-long-password\n",
    )
    assert duplicate.returncode == 1
    assert "carol" in duplicate.stderr
    bad_skill = cli(
        "users",
        "add",
        "--username",
        "dan",
        "--role",
        "agent",
        "--skills",
        "billing=11",
        "--password-stdin",
        stdin="a-long-password\n",
    )
    assert bad_skill.returncode == 1
    assert "billing" in bad_skill.stderr
    assert "carol" in cli("users", "list").stdout
    assert cli("users", "disable", "carol").returncode == 0
    assert cli("users", "enable", "carol").returncode == 0
    unknown = cli("users", "disable", "nobody")
    assert unknown.returncode == 1
    assert "nobody" in unknown.stderr


def test_customers_import_reports_bad_rows_and_is_idempotent(cli: Cli) -> None:
    cli("db", "upgrade")
    csv_file = cli.tmp / "customers.csv"
    csv_file.write_text(
        "name,company,tier,language,segment,notes,phones,emails\n"
        "Ana Lopez,,gold,es,,,+34 600 000 111,ana@example.com\n"
        "Bad Number,,bronze,,,,not-a-phone,\n"
        "Ben Ode,Acme,,,,,020 7946 0999,\n"
    )
    first = cli("customers", "import", str(csv_file))
    assert first.returncode == 1
    assert "line 3" in first.stderr
    assert "2 created" in first.stdout + first.stderr
    second = cli("customers", "import", str(csv_file))
    assert "0 created" in second.stdout + second.stderr
    exported = cli("customers", "export")
    assert exported.returncode == 0
    assert "+34600000111" in exported.stdout
    out = cli.tmp / "export.csv"
    to_file = cli("customers", "export", "-o", str(out))
    assert to_file.returncode == 0
    round_trip = cli("customers", "import", str(out))
    assert round_trip.returncode == 0, round_trip.stderr
    assert "0 created" in round_trip.stdout + round_trip.stderr
    missing = cli("customers", "import", str(cli.tmp / "missing.csv"))
    assert missing.returncode == 1
    assert "missing.csv" in missing.stderr
    unwritable = cli("customers", "export", "-o", str(cli.tmp / "no" / "such" / "dir.csv"))
    assert unwritable.returncode == 1
    assert "dir.csv" in unwritable.stderr
