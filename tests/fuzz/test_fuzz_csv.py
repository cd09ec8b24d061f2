"""Fuzz: customer CSV import (dry runs against a real SQLite store) and the export escape.

Any file either imports (here: reports what it would do) or is refused with the store's
own error; a dry run writes nothing whatever the file holds; and the formula escape of
the export is undone exactly by the import, for any text.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from crm_store import migrate
from crm_store.customer_csv import COLUMNS, escape_cell, import_customers, unescape_cell
from crm_store.database import make_engine, make_sessionmaker
from crm_store.errors import StoreError
from crm_store.models import Customer
from tests.fuzz.support import FUZZ, keep_on_failure, kept, mutated

HEADER = ",".join(COLUMNS)
ROWS = (
    "Zoë Martin,Northwind,gold,en,retail,likes mornings,+44 20 7946 0018,zoe@example.com\n",
    '=HYPERLINK("x"),\'-Co,silver,zh-CN,,"multi\nline",020 7946 0019;+1 555 0100,a@b.c;d@e.f\n',
)
SEEDS = [f"{HEADER}\n{row}".encode() for row in ROWS]


class Store:
    """A migrated SQLite store driven from synchronous tests through its own loop."""

    def __init__(self, path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        url = f"sqlite+aiosqlite:///{path}"
        self.loop.run_until_complete(migrate.upgrade(url))
        self.engine = make_engine(url)
        self.sessionmaker = make_sessionmaker(self.engine)

    def customers(self) -> int:
        async def count() -> int:
            async with self.sessionmaker() as session:
                return int(await session.scalar(select(func.count()).select_from(Customer)) or 0)

        return self.loop.run_until_complete(count())

    def dry_run(self, text: str) -> None:
        self.loop.run_until_complete(
            import_customers(self.sessionmaker, io.StringIO(text), region="GB", dry_run=True)
        )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    made = Store(tmp_path_factory.mktemp("fuzz-csv") / "crm.db")
    yield made
    made.loop.run_until_complete(made.engine.dispose())
    made.loop.close()


def check_import(store: Store, data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    before = store.customers()
    try:
        store.dry_run(text)
    except StoreError as exc:
        assert exc.message
    except BaseException:
        keep_on_failure("customer_csv", data)
        raise
    assert store.customers() == before, "a dry run wrote customers"


@given(data=mutated(SEEDS))
@FUZZ
def test_a_csv_file_dry_runs_or_is_refused_and_writes_nothing(store: Store, data: bytes) -> None:
    check_import(store, data)


@given(rows=st.lists(st.lists(st.text(max_size=30), min_size=8, max_size=8), max_size=5))
@FUZZ
def test_rows_of_any_cells_dry_run_or_are_refused(store: Store, rows: list[list[str]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    check_import(store, out.getvalue().encode())


@given(value=st.text())
@FUZZ
def test_the_export_escape_is_undone_exactly_and_leaves_no_live_formula(value: str) -> None:
    escaped = escape_cell(value)
    assert unescape_cell(escaped) == value
    assert not escaped[:1] or escaped[0] not in "=+-@\t\r"


def test_the_kept_corpus_still_passes(store: Store) -> None:
    for data in kept("customer_csv"):
        check_import(store, data)
