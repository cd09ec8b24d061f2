"""`contact-center customers import/export` hardening (issue 13, item 10), as users run it.

Real subprocesses on a SQLite store of this module's own (the runner of test_cli.py,
which also asserts that no traceback leaked).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator

import pytest

from tests.component.test_cli import CONFIG, HEADER, Cli

STORED = f"{HEADER}\nZoë Martin,Northwind,gold,en,retail,likes email,+44 20 7946 0018,\n"
CHANGING = (
    f"{HEADER}\n"
    "Zoe Renamed,,,,,calls at night,020 7946 0018,zoe@work.example\n"
    '"=HYPERLINK(""http://evil.example"",""x"")",,,,,,07700 900999,\n'
    "-Ann,+Plus,,,,@home,07700 900998,\n"
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    tmp = tmp_path_factory.mktemp("csv-cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    env.update(CC_DATABASE_URL=f"sqlite+aiosqlite:///{tmp}/crm.db", CC_CONFIG=CONFIG)
    cli = Cli(env, tmp)
    assert cli("db", "upgrade").returncode == 0
    stored = tmp / "stored.csv"
    stored.write_text(STORED, encoding="utf-8")
    assert cli("customers", "import", str(stored)).returncode == 0
    (tmp / "changing.csv").write_text(CHANGING, encoding="utf-8")
    yield cli


def test_dry_run_lists_what_would_happen_and_writes_nothing(store: Cli) -> None:
    before = store("customers", "export").stdout
    path = store.tmp / "changing.csv"
    dry = store("customers", "import", "--dry-run", str(path))
    assert dry.returncode == 0, dry.stderr
    out = dry.stdout.splitlines()
    assert out[0] == (
        f"{path}: dry run, nothing written; the import would give 2 created, 0 updated, "
        "0 unchanged, 1 skipped, 0 refused"
    )
    assert out[1] == (
        "  line 2: skipped customer 1 (Zoë Martin), stored before this import: would change "
        "name 'Zoë Martin' -> 'Zoe Renamed'; notes 'likes email' -> 'calls at night'; "
        "add email zoe@work.example (--update-existing to apply)"
    )
    assert out[2].startswith("  line 3: would create customer ")
    assert out[3].startswith("  line 4: would create customer ") and "(-Ann)" in out[3]
    update = store("customers", "import", "--dry-run", "--update-existing", str(path))
    assert "line 2: would update customer 1 (Zoë Martin): name 'Zoë Martin'" in update.stdout
    assert store("customers", "export").stdout == before


def test_dry_run_refuses_an_unmigrated_database_without_creating_tables(store: Cli) -> None:
    url = store.url("never-migrated.db")
    dry = store(
        "customers", "import", "--dry-run", str(store.tmp / "changing.csv"), CC_DATABASE_URL=url
    )
    assert dry.returncode == 1
    assert "schema is not up to date; run `contact-center db upgrade` first" in dry.stderr
    assert "upgraded" in store("db", "upgrade", CC_DATABASE_URL=url).stdout  # was still empty


def test_import_skips_stored_customers_unless_asked_and_export_neutralises(store: Cli) -> None:
    path = store.tmp / "changing.csv"
    first = store("customers", "import", str(path))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == (
        f"{path}: 2 created, 0 updated, 0 unchanged, 1 skipped, 0 refused"
    )
    assert "  line 2: skipped customer 1 (Zoë Martin)" in first.stdout
    rows = list(csv.reader(io.StringIO(store("customers", "export").stdout)))
    by_phone = {row[6]: row for row in rows[1:]}
    assert by_phone["+442079460018"][:6] == [
        "Zoë Martin",
        "Northwind",
        "gold",
        "en",
        "retail",
        "likes email",
    ]
    assert by_phone["+447700900999"][0] == '\'=HYPERLINK("http://evil.example","x")'
    assert by_phone["+447700900998"][:6] == ["'-Ann", "'+Plus", "bronze", "", "", "'@home"]

    updated = store("customers", "import", "--update-existing", str(path))
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout.splitlines()[0] == (
        f"{path}: 0 created, 1 updated, 2 unchanged, 0 skipped, 0 refused"
    )
    assert "  line 2: updated customer 1 (Zoë Martin): name 'Zoë Martin' -> 'Zoe Renamed'" in (
        updated.stdout
    )
    exported = store("customers", "export").stdout
    assert "Zoe Renamed,Northwind,gold,en,retail,calls at night,+442079460018,zoe@work.example" in (
        exported
    )
    # And the export, quotes and all, imports back as it is.
    again = store.tmp / "again.csv"
    again.write_text(exported, encoding="utf-8")
    back = store("customers", "import", str(again))
    assert (
        back.stdout.strip() == f"{again}: 0 created, 0 updated, 3 unchanged, 0 skipped, 0 refused"
    )
