"""Customer CSV import/export: idempotent by contact point, bad rows refused and reported."""

from __future__ import annotations

import io
import re

import pytest

from crm_store import customer_csv, customers
from crm_store.customer_csv import CsvHeaderError
from tests.integration.conftest import CountRows, Store

pytestmark = pytest.mark.integration

HEADER = "name,company,tier,language,segment,notes,phones,emails\n"
GOOD = (
    HEADER
    + "Zoë Martin,Northwind,gold,en,retail,likes email,+44 20 7946 0018,zoe@example.com\n"
    + "Raj Patel,Contoso,silver,,,,07700 900123;07700 900124,\n"
)


async def _import(store: Store, text: str) -> customer_csv.ImportReport:
    return await customer_csv.import_customers(store.sessionmaker, io.StringIO(text), region="GB")


async def test_import_twice_creates_nothing_the_second_time(
    store: Store, count_rows: CountRows
) -> None:
    first = await _import(store, GOOD)
    assert (first.created, first.updated, first.unchanged, first.refused) == (2, 0, 0, [])
    counts = await count_rows()
    second = await _import(store, GOOD)
    assert (second.created, second.updated, second.unchanged, second.refused) == (0, 0, 2, [])
    after = await count_rows()
    assert after["customers"] == counts["customers"]
    assert after["contact_points"] == counts["contact_points"]
    async with store.sessionmaker() as session:
        raj = await customers.find_customer_by_phone(session, "+447700900124", "GB")
        assert raj is not None and raj.tier == "silver"


async def test_bad_rows_are_refused_with_line_and_reason_and_the_rest_imports(
    store: Store,
) -> None:
    text = (
        HEADER
        + "Good One,,bronze,,,,+44 20 7946 0001,\n"
        + "Bad Phone,,bronze,,,,call me maybe,\n"
        + "Bad Tier,,diamond,,,,+44 20 7946 0002,\n"
        + "Too,Few,Fields\n"
        + "Good Two,,,,,,,two@example.com\n"
    )
    report = await _import(store, text)
    assert (report.created, report.updated) == (2, 0)
    lines = [line for line, _reason in report.refused]
    assert lines == [3, 4, 5]
    reasons = dict(report.refused)
    assert "phone" in reasons[3]
    assert "tier" in reasons[4]
    assert "expected 8 fields" in reasons[5]
    async with store.sessionmaker() as session:
        assert await customers.count_customers(session) == 2


async def test_a_row_updates_the_customer_owning_its_contact(store: Store) -> None:
    await _import(store, GOOD)
    report = await _import(
        store, HEADER + "Zoë Martin,Northwind Ltd,,,,,020 7946 0018,zoe.m@work.example\n"
    )
    assert (report.created, report.updated) == (0, 1)
    async with store.sessionmaker() as session:
        zoe = await customers.find_customer_by_email(session, "zoe.m@work.example")
        assert zoe is not None
        assert zoe.company == "Northwind Ltd"
        assert zoe.tier == "gold"  # an empty cell never erases stored data
        assert zoe.notes == "likes email"


async def test_conflicting_contacts_are_refused(store: Store, count_rows: CountRows) -> None:
    await _import(store, GOOD)
    before = await count_rows()
    report = await _import(store, HEADER + "Mixed,,,,,,+44 20 7946 0018;07700 900123,\n")
    assert [line for line, _ in report.refused] == [2]
    assert "different customers" in report.refused[0][1]
    assert await count_rows() == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty CSV file"),
        ("name,phones\nA,+44 20 7946 0003\n", "missing column(s)"),
        (HEADER.strip() + ",vip\nA,,,,,,+44 20 7946 0003,,\n", "unknown column(s): 'vip'"),
    ],
)
async def test_bad_header_is_refused_before_any_row(
    store: Store, count_rows: CountRows, text: str, message: str
) -> None:
    before = await count_rows()
    with pytest.raises(CsvHeaderError, match=re.escape(message)):
        await _import(store, text)
    assert await count_rows() == before


async def test_export_then_import_changes_nothing(store: Store, count_rows: CountRows) -> None:
    await _import(store, GOOD)
    out = io.StringIO()
    async with store.sessionmaker() as session:
        assert await customer_csv.export_customers(session, out) == 2
    exported = out.getvalue()
    assert exported.splitlines()[0] == HEADER.strip()
    assert "+442079460018" in exported
    before = await count_rows()
    report = await _import(store, exported)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)
    assert await count_rows() == before
