"""The `contact-center` command as a user runs it: exit codes, messages, no tracebacks.

Every call is a real subprocess (`python -m contact_center.cli`) against the shipped
configuration, with `CC_DATABASE_URL` pointing at a throwaway SQLite file. The tests of one
module share one store; each uses its own usernames and phone numbers.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "config.yaml")
HEADER = "name,company,tier,language,segment,notes,phones,emails"

Result = subprocess.CompletedProcess[str]


@dataclass
class Cli:
    """Runs the CLI against one SQLite store; every call asserts that no traceback leaked."""

    env: dict[str, str]
    tmp: Path

    def __call__(self, *args: str, stdin: str | None = None, **env: str) -> Result:
        result = subprocess.run(
            [sys.executable, "-m", "contact_center.cli", *args],
            cwd=self.tmp,
            env={**self.env, **env},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def url(self, name: str) -> str:
        """The URL of another SQLite store in this module's folder."""
        return f"sqlite+aiosqlite:///{self.tmp / name}"


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    tmp = tmp_path_factory.mktemp("cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    env.update(CC_DATABASE_URL=f"sqlite+aiosqlite:///{tmp}/crm.db", CC_CONFIG=CONFIG)
    yield Cli(env, tmp)


@pytest.fixture(scope="module")
def store(cli: Cli) -> Cli:
    """The shared store, migrated once."""
    result = cli("db", "upgrade")
    assert result.returncode == 0, result.stderr
    return cli


def parallel(*calls: Callable[[], Result]) -> list[Result]:
    """Run independent CLI calls side by side: most of each one's time is Python imports."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def add_user(cli: Cli, username: str, role: str = "agent", *extra: str) -> Result:
    return cli(
        "users",
        "add",
        "--username",
        username,
        "--role",
        role,
        *extra,
        "--password-stdin",
        stdin="a-long-password\n",
    )


def user_row(listing: str, username: str) -> list[str]:
    for line in listing.splitlines():
        if line.split()[:1] == [username]:
            return line.split()
    raise AssertionError(f"{username} not in:\n{listing}")


# --- command line ---------------------------------------------------------------------


def test_help_for_every_command(cli: Cli) -> None:
    top = cli("--help")
    assert top.returncode == 0
    for word in ("run", "check-config", "db", "users", "customers"):
        assert word in top.stdout
    commands = (
        "run",
        "check-config",
        "db upgrade",
        "db seed-demo",
        "users add",
        "users list",
        "users disable",
        "users enable",
        "customers import",
        "customers export",
    )
    results = parallel(*(lambda c=c: cli(*c.split(), "--help") for c in commands))
    helps = dict(zip(commands, results, strict=True))
    for command, result in helps.items():
        assert result.returncode == 0, command
        assert result.stdout.startswith(f"usage: contact-center {command}"), command
        assert "-c FILE, --config FILE" in result.stdout, command
    add = helps["users add"].stdout
    for option in ("--username", "--role", "--display-name", "--skills", "--device"):
        assert option in add
    assert "--password-stdin" in add
    assert "-o FILE, --output FILE" in helps["customers export"].stdout


def test_wrong_command_line_is_exit_2(cli: Cli) -> None:
    nothing, unknown, missing, bad_role = parallel(
        lambda: cli(),
        lambda: cli("frobnicate"),
        lambda: cli("users", "add", "--username", "x"),
        lambda: add_user(cli, "xavier", "boss"),
    )
    assert nothing.returncode == 2
    assert "usage:" in nothing.stderr
    assert unknown.returncode == 2
    assert "invalid choice: 'frobnicate'" in unknown.stderr
    assert missing.returncode == 2
    assert "--role" in missing.stderr
    assert bad_role.returncode == 2
    assert "argument --role: invalid choice: 'boss'" in bad_role.stderr
    assert "agent" in bad_role.stderr and "supervisor" in bad_role.stderr


# --- check-config ---------------------------------------------------------------------


def test_check_config_on_the_shipped_file(cli: Cli) -> None:
    # $CC_CONFIG is the default file.
    result, default = parallel(
        lambda: cli("check-config", "-c", CONFIG), lambda: cli("check-config")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{CONFIG}: OK")
    for line in ("web: http://", "database: sqlite+aiosqlite:///", "pbx: simulated", "queues: "):
        assert line in result.stdout
    assert default.stdout == result.stdout


def test_check_config_reports_every_error_with_its_key_path(cli: Cli) -> None:
    broken = cli.tmp / "broken.yaml"
    broken.write_text(
        "queues:\n"
        "  - {name: a, channels: [voice]}\n"
        "  - {name: b, channels: [chat]}\n"
        "  - {name: c, channels: [email], sla_seconds: abc}\n"
        "webb: {}\n"
    )
    result, override = parallel(
        lambda: cli("check-config", "-c", str(broken)),
        lambda: cli("check-config", CC_WEB_PORT="eighty"),
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {broken}: invalid configuration:")
    assert 'queues[2].sla_seconds: expected a positive integer, got "abc"' in result.stderr
    assert "webb" in result.stderr
    assert override.returncode == 1
    assert 'web.port: expected a non-negative integer, got "eighty" (set by CC_WEB_PORT)' in (
        override.stderr
    )


def test_check_config_never_prints_secrets(cli: Cli) -> None:
    secret = "hunter2-secret"
    bad = cli.tmp / "secret-bad.yaml"
    bad.write_text(
        "web:\n  port: ${CC_TEST_SECRET}\n"
        "pbx:\n  mode: asterisk\n  ami:\n    secret: ${CC_TEST_SECRET}\n"
    )
    refused, unset, fine = parallel(
        lambda: cli("check-config", "-c", str(bad), CC_TEST_SECRET=secret),
        lambda: cli("check-config", "-c", str(bad)),
        # The shipped file takes the AMI secret from ${CC_AMI_SECRET:-}.
        lambda: cli(
            "check-config",
            CC_AMI_SECRET=secret,
            CC_PBX="asterisk",
            CC_DATABASE_URL="postgresql+asyncpg://cc:db-password-42@db.example:5432/cc",
        ),
    )
    assert refused.returncode == 1
    assert 'web.port: expected a non-negative integer, got "${CC_TEST_SECRET}"' in refused.stderr
    assert secret not in refused.stdout + refused.stderr
    assert unset.returncode == 1
    assert "pbx.ami.secret: environment variable CC_TEST_SECRET is not set" in unset.stderr
    assert fine.returncode == 0, fine.stderr
    assert "pbx: asterisk (AMI 127.0.0.1:5038" in fine.stdout
    assert "cc:***@db.example" in fine.stdout
    for hidden in (secret, "db-password-42"):
        assert hidden not in fine.stdout + fine.stderr


def test_check_config_on_unreadable_files(cli: Cli) -> None:
    binary = cli.tmp / "latin1.yaml"
    binary.write_bytes("web:\n  host: caf\xe9\n".encode("latin-1"))
    missing, encoding = parallel(
        lambda: cli("check-config", "-c", str(cli.tmp / "nope.yaml")),
        lambda: cli("check-config", "-c", str(binary)),
    )
    assert missing.returncode == 1
    assert "nope.yaml: file not found" in missing.stderr
    assert encoding.returncode == 1
    assert "not UTF-8" in encoding.stderr


# --- db -------------------------------------------------------------------------------


def test_db_upgrade_on_a_new_database_then_again(cli: Cli) -> None:
    url = cli.url("upgrade.db")
    first = cli("db", "upgrade", CC_DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert f"{url}: upgraded from empty to " in first.stdout
    head = first.stdout.split()[-1]
    again = cli("db", "upgrade", CC_DATABASE_URL=url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"{url}: already at {head}"


def test_seed_demo_creates_users_and_customers_once(cli: Cli) -> None:
    url = cli.url("demo.db")
    seeded = cli("db", "seed-demo", CC_DATABASE_URL=url)
    assert seeded.returncode == 0, seeded.stderr
    assert "demo users and customers created" in seeded.stdout
    for login in ("admin / admin-demo-pass", "supervisor / supervisor-demo-pass"):
        assert login in seeded.stdout
    assert "agent / agent-demo-pass" in seeded.stdout
    users, customers = (
        result.stdout
        for result in parallel(
            lambda: cli("users", "list", CC_DATABASE_URL=url),
            lambda: cli("customers", "export", CC_DATABASE_URL=url),
        )
    )
    assert {"admin", "supervisor", "agent"} <= {line.split()[0] for line in users.splitlines()}
    assert "Zoë Martin" in customers
    assert len(customers.splitlines()) == 4  # the header and three customers

    second = cli("db", "seed-demo", CC_DATABASE_URL=url)
    assert second.returncode == 0, second.stderr
    assert "users exist: no demo data added" in second.stdout
    assert "agent / agent-demo-pass" in second.stdout
    users_after, customers_after = parallel(
        lambda: cli("users", "list", CC_DATABASE_URL=url),
        lambda: cli("customers", "export", CC_DATABASE_URL=url),
    )
    assert users_after.stdout == users
    assert customers_after.stdout == customers


# --- users ----------------------------------------------------------------------------


def test_users_add_and_list(store: Cli) -> None:
    added = add_user(
        store,
        "carol",
        "supervisor",
        "--display-name",
        "Carol King",
        "--skills",
        "billing=7,support=5",
        "--device",
        "PJSIP/1042",
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "user carol created with role supervisor"
    listing = store("users", "list")
    assert listing.returncode == 0
    assert listing.stdout.split()[:5] == ["USERNAME", "ROLE", "ACTIVE", "DEVICE", "SKILLS"]
    assert user_row(listing.stdout, "carol") == [
        "carol",
        "supervisor",
        "yes",
        "PJSIP/1042",
        "billing=7,support=5",
    ]


def test_users_add_refusals(store: Cli) -> None:
    assert add_user(store, "dave").returncode == 0
    erin = ("users", "add", "--username", "erin", "--role", "agent")
    duplicate, no_password, no_terminal, bad_level = parallel(
        lambda: add_user(store, "Dave", "admin"),
        lambda: store(*erin, "--password-stdin"),
        lambda: store(*erin, stdin=""),
        lambda: store(*erin, "--skills", "billing=11", "--password-stdin", stdin="long-enough\n"),
    )
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip() == "error: username 'dave' is already taken [store.conflict]"
    assert no_password.returncode == 1
    assert no_password.stderr.strip() == "error: --password-stdin: no password on standard input"
    assert no_terminal.returncode == 1
    assert "use --password-stdin" in no_terminal.stderr
    assert bad_level.returncode == 1
    assert "skill 'billing' level must be an integer 1..10" in bad_level.stderr
    listing = store("users", "list").stdout  # nothing refused was stored
    assert user_row(listing, "dave")[1] == "agent"
    assert "erin" not in listing


def test_users_disable_and_enable(store: Cli) -> None:
    assert add_user(store, "frank").returncode == 0
    disabled = store("users", "disable", "frank")
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout.strip() == "user frank disabled"
    listing, unknown = parallel(
        lambda: store("users", "list"), lambda: store("users", "disable", "nobody")
    )
    assert user_row(listing.stdout, "frank")[2] == "no"
    assert unknown.returncode == 1
    assert "nobody" in unknown.stderr
    assert unknown.stderr.startswith("error: ")
    enabled = store("users", "enable", "frank")
    assert enabled.returncode == 0, enabled.stderr
    assert enabled.stdout.strip() == "user frank enabled"
    assert user_row(store("users", "list").stdout, "frank")[2] == "yes"


# --- customers ------------------------------------------------------------------------


def test_customers_import_reports_bad_rows_and_is_idempotent(store: Cli) -> None:
    csv_file = store.tmp / "customers.csv"
    csv_file.write_text(
        f"{HEADER}\n"
        "Ana Lopez,,gold,es,,,+34 600 000 111,ana@example.com\n"
        "Bad Number,,bronze,,,,not-a-phone,\n"
        "Ben Ode,Acme,,,,VIP; call after 5,020 7946 0999;07700 900999,ben@acme.example\n"
        "Bad Tier,,diamond,,,,020 7946 0998,\n"
        '"Quoted, Name",,,,,,+1 202 555 0143,\n',
        encoding="utf-8",
    )
    first = store("customers", "import", str(csv_file))
    assert first.returncode == 1
    assert first.stdout.strip() == (
        f"{csv_file}: nothing imported, 2 row(s) refused "
        "(the other rows would give 3 created, 0 updated, 0 unchanged, 0 skipped)"
    )
    refused = first.stderr.splitlines()
    assert len(refused) == 2, first.stderr
    assert refused[0].startswith("  line 3: ") and "not-a-phone" in refused[0]
    assert refused[1].startswith("  line 5: ") and "diamond" in refused[1]
    assert "Ana Lopez" not in store("customers", "export").stdout  # all rows or none

    lines = csv_file.read_text(encoding="utf-8").splitlines(keepends=True)
    csv_file.write_text("".join(lines[i] for i in (0, 1, 3, 5)), encoding="utf-8")
    fixed = store("customers", "import", str(csv_file))
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip() == (
        f"{csv_file}: 3 created, 0 updated, 0 unchanged, 0 skipped, 0 refused"
    )
    second = store("customers", "import", str(csv_file))
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == (
        f"{csv_file}: 0 created, 0 updated, 3 unchanged, 0 skipped, 0 refused"
    )
    exported = store("customers", "export").stdout
    assert exported.count("Ana Lopez") == 1
    assert "+442079460999;+447700900999" in exported
    assert "Bad Number" not in exported


def test_customers_export_round_trip(store: Cli) -> None:
    csv_file = store.tmp / "round-trip.csv"
    csv_file.write_text(
        f'{HEADER}\nRoundtrip Rita,Initech,platinum,en,smb,"notes, with comma",0161 496 0000,'
        "rita@initech.example\n",
        encoding="utf-8",
    )
    assert store("customers", "import", str(csv_file)).returncode == 0

    out = store.tmp / "export.csv"
    to_stdout, to_file = parallel(
        lambda: store("customers", "export"), lambda: store("customers", "export", "-o", str(out))
    )
    assert to_stdout.returncode == 0, to_stdout.stderr
    rows = list(csv.reader(io.StringIO(to_stdout.stdout)))
    assert rows[0] == HEADER.split(",")
    assert [
        "Roundtrip Rita",
        "Initech",
        "platinum",
        "en",
        "smb",
        "notes, with comma",
        "+441614960000",
        "rita@initech.example",
    ] in rows
    assert to_stdout.stderr.strip() == f"{len(rows) - 1} customers exported"

    assert to_file.returncode == 0, to_file.stderr
    assert to_file.stdout == ""
    assert out.read_text(encoding="utf-8") == to_stdout.stdout

    again = store("customers", "import", str(out))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == (
        f"{out}: 0 created, 0 updated, {len(rows) - 1} unchanged, 0 skipped, 0 refused"
    )
    assert store("customers", "export").stdout == to_stdout.stdout


def test_customers_import_refuses_unreadable_files(store: Cli) -> None:
    before = store("customers", "export").stdout
    header = store.tmp / "bad-header.csv"
    header.write_text("name,phone\nGus,020 7946 0997\n")
    latin1 = store.tmp / "latin1.csv"
    latin1.write_bytes(
        f"{HEADER}\nFine Row,,,,,,020 7946 0996,\nJosé Núñez,,,,,,020 7946 0995,\n".encode(
            "latin-1"
        )
    )
    missing, bad_header, encoding = parallel(
        lambda: store("customers", "import", str(store.tmp / "missing.csv")),
        lambda: store("customers", "import", str(header)),
        lambda: store("customers", "import", str(latin1)),
    )
    assert missing.returncode == 1
    assert "missing.csv: cannot open (No such file or directory)" in missing.stderr
    assert bad_header.returncode == 1
    assert "bad CSV header" in bad_header.stderr
    assert "unknown column(s): 'phone'" in bad_header.stderr
    assert encoding.returncode == 1
    assert f"{latin1}: line 3 is not UTF-8 text" in encoding.stderr
    assert "Nothing was imported" in encoding.stderr
    assert store("customers", "export").stdout == before


def test_customers_export_to_an_unwritable_path(store: Cli) -> None:
    nowhere = store.tmp / "no" / "such" / "dir.csv"
    targets = [str(nowhere), str(store.tmp)]
    if Path("/dev/full").exists():
        targets.append("/dev/full")  # a write that fails half way
    results = parallel(*(lambda t=t: store("customers", "export", "-o", t) for t in targets))
    for result in results:
        assert result.returncode == 1
        assert result.stdout == ""
    assert results[0].stderr.strip() == f"error: cannot write {nowhere}: No such file or directory"
    assert results[1].stderr.strip() == f"error: cannot write {store.tmp}: Is a directory"
    if len(results) > 2:
        assert results[2].stderr.strip() == "error: cannot write /dev/full: No space left on device"


# --- database errors ------------------------------------------------------------------


def test_database_errors_are_clear(cli: Cli) -> None:
    not_a_database = cli.tmp / "garbage.db"
    not_a_database.write_bytes(b"definitely not SQLite" * 10)
    garbage_url = cli.url(not_a_database.name)
    earlier = cli.tmp / "earlier.csv"
    earlier.write_text("the previous export\n")
    garbage, failed_export, refused = parallel(
        lambda: cli("users", "list", CC_DATABASE_URL=garbage_url),
        lambda: cli("customers", "export", "-o", str(earlier), CC_DATABASE_URL=garbage_url),
        # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
        lambda: cli(
            "db", "upgrade", CC_DATABASE_URL="postgresql+asyncpg://cc:pw-77@127.0.0.1:9/cc"
        ),
    )
    assert garbage.returncode == 1
    assert garbage.stderr.strip() == f"error: database {garbage_url}: file is not a database"
    # A failed export leaves the earlier file as it was, and no temporary file behind.
    assert failed_export.returncode == 1
    assert failed_export.stderr.strip() == garbage.stderr.strip()
    assert earlier.read_text() == "the previous export\n"
    assert list(cli.tmp.glob(".earlier.csv*")) == []
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: database postgresql+asyncpg://cc:***@127.0.0.1:9/cc: Connection refused"
    )
