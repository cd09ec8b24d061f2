"""Customer CSV import/export: idempotent by contact point, bad rows refused and reported."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest

from crm_store import audit, customer_csv, customers
from crm_store.actors import Actor
from crm_store.customer_csv import CsvHeaderError
from crm_store.database import make_engine, make_sessionmaker
from tests.integration.conftest import CountRows, Store

pytestmark = pytest.mark.integration

HEADER = "name,company,tier,language,segment,notes,phones,emails\n"
GOOD = (
    HEADER
    + "Zoë Martin,Northwind,gold,en,retail,likes email,+44 20 7946 0018,zoe@example.com\n"
    + "Raj Patel,Contoso,silver,,,,07700 900123;07700 900124,\n"
)


async def _import(
    store: Store, text: str, *, update_existing: bool = False
) -> customer_csv.ImportReport:
    return await customer_csv.import_customers(
        store.sessionmaker, io.StringIO(text), region="GB", update_existing=update_existing
    )


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


async def test_bad_rows_are_refused_with_line_and_reason_and_nothing_imports(
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
    assert (report.created, report.updated, report.written) == (2, 0, False)
    lines = [line for line, _reason in report.refused]
    assert lines == [3, 4, 5]
    reasons = dict(report.refused)
    assert "phone" in reasons[3]
    assert "tier" in reasons[4]
    assert "expected 8 fields" in reasons[5]
    async with store.sessionmaker() as session:
        assert await customers.count_customers(session) == 0  # all or nothing


async def test_a_row_updates_the_customer_owning_its_contact(store: Store) -> None:
    await _import(store, GOOD)
    report = await _import(
        store,
        HEADER + "Zoë Martin,Northwind Ltd,,,,,020 7946 0018,zoe.m@work.example\n",
        update_existing=True,
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


async def test_header_is_read_leniently_but_checked_strictly(store: Store) -> None:
    # A BOM, capitals and spaces around names are what spreadsheets produce.
    header = "\ufeffName, Company ,TIER,language,segment,notes,phones,Emails\n"
    report = await _import(store, header + "Ana,,,,,,,ana@example.com\n")
    assert (report.created, report.refused) == (1, [])
    with pytest.raises(CsvHeaderError, match=re.escape("repeated column(s): phones")) as caught:
        await _import(store, HEADER.strip() + ",phones\n")
    assert caught.value.error_id == "store.csv_header"
    assert "expected: name,company,tier,language,segment,notes,phones,emails" in str(caught.value)


async def test_refused_rows_report_the_physical_line_and_the_reason(
    store: Store, count_rows: CountRows
) -> None:
    text = (
        HEADER
        + 'Multi Line,,,,,"first line\nsecond line, with a comma",+44 20 7946 0101,\n'
        + "\n"
        + "Bad Email,,,,,,,not-an-email\n"
        + ",,,,,,+44 20 7946 0102,\n"
        + "Nul\0Name,,,,,,+44 20 7946 0103,\n"
        + "Later Good,,,,,,+44 20 7946 0104,\n"
        + 'Unterminated,,,,,"oops,,\n'
    )
    report = await _import(store, text)
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)  # would have been
    assert report.refused == [
        (5, "'not-an-email' is not an email address"),
        (6, "name must not be empty"),
        (7, "a field contains a NUL character"),
        (9, "expected 8 fields, found 6"),
    ]
    assert await count_rows() == {table: 0 for table in await count_rows()}
    # Without its bad lines the same file imports, multi-line cell included.
    good = "".join(text.splitlines(keepends=True)[i] for i in (0, 1, 2, 3, 7))
    assert (await _import(store, good)).refused == []
    async with store.sessionmaker() as session:
        multi = await customers.find_customer_by_phone(session, "020 7946 0101", "GB")
        assert multi is not None
        assert multi.notes == "first line\nsecond line, with a comma"
        assert await customers.find_customer_by_phone(session, "020 7946 0104", "GB") is not None
        assert await customers.count_customers(session) == 2
    counts = await count_rows()
    assert counts["contact_points"] == 2


async def test_rows_of_one_file_sharing_a_contact_are_one_customer(store: Store) -> None:
    text = (
        HEADER
        + "Zoë Martin,,,,,,+44 20 7946 0018,\n"
        + "Zoë Martin,Northwind,gold,,,,020 7946 0018,zoe@example.com\n"
        + "Zoë Martin,,,,,,0044 20 7946 0018,ZOE@EXAMPLE.COM\n"
    )
    report = await _import(store, text)
    assert (report.created, report.updated, report.unchanged, report.refused) == (1, 1, 1, [])
    async with store.sessionmaker() as session:
        assert await customers.count_customers(session) == 1
        zoe = await customers.find_customer_by_email(session, "zoe@example.com")
        assert zoe is not None
        assert (zoe.company, zoe.tier) == ("Northwind", "gold")
        assert [(cp.kind, cp.value) for cp in zoe.contact_points] == [
            ("phone", "+442079460018"),
            ("email", "zoe@example.com"),
        ]


async def test_a_row_joining_two_customers_is_refused_and_nothing_imports(
    store: Store,
) -> None:
    await _import(store, GOOD)
    text = (
        HEADER + "Mixed,,,,,,07700 900123,zoe@example.com\n" + "New Person,,,,,,,new@example.com\n"
    )
    report = await _import(store, text)
    assert (report.created, report.updated, report.written) == (1, 0, False)
    [(line, reason)] = report.refused
    assert line == 2
    assert "contact points belong to different customers" in reason
    assert "phone +447700900123" in reason and "email zoe@example.com" in reason
    async with store.sessionmaker() as session:
        zoe = await customers.find_customer_by_email(session, "zoe@example.com")
        assert zoe is not None and zoe.name == "Zoë Martin"
        assert await customers.count_customers(session) == 2


async def test_an_update_adding_a_contact_owned_elsewhere_changes_nothing(
    store: Store, count_rows: CountRows
) -> None:
    await _import(store, GOOD)
    before = await count_rows()
    # The name change and the new phone of row 2 must not be half-applied either.
    report = await _import(
        store,
        HEADER + "Zoe Renamed,,,,,,+44 20 7946 0018,\n" + "Other,,platinum,,,,,zoe@example.com\n",
        update_existing=True,
    )
    assert (report.updated, report.refused) == (2, [])
    after = await count_rows()
    assert after["customers"] == before["customers"]
    assert after["contact_points"] == before["contact_points"]
    async with store.sessionmaker() as session:
        zoe = await customers.find_customer_by_email(session, "zoe@example.com")
        assert zoe is not None and (zoe.name, zoe.tier) == ("Other", "platinum")


async def test_imports_are_audited_under_the_acting_user(store: Store) -> None:
    admin = Actor(None, "root", "admin")
    await customer_csv.import_customers(
        store.sessionmaker, io.StringIO(GOOD), region="GB", actor=admin
    )
    await customer_csv.import_customers(
        store.sessionmaker,
        io.StringIO(HEADER + "Zoë Martin,,platinum,,,,,zoe@example.com\n"),
        region="GB",
        actor=admin,
        update_existing=True,
    )
    async with store.sessionmaker() as session:
        zoe = await customers.find_customer_by_email(session, "zoe@example.com")
        assert zoe is not None
        entries = await audit.list_entries(session, entity="customer", entity_id=zoe.id)
    assert [(e.actor, e.action) for e in entries] == [
        ("root", "customer.updated"),
        ("root", "customer.created"),
    ]
    assert entries[0].details == {"tier": {"from": "gold", "to": "platinum"}}


async def test_a_file_with_only_a_header_imports_nothing(
    store: Store, count_rows: CountRows
) -> None:
    before = await count_rows()
    report = await _import(store, HEADER + "\n,,,,,,,\n")
    assert (report.created, report.updated, report.unchanged, report.refused) == (0, 0, 0, [])
    assert await count_rows() == before


async def test_export_round_trips_into_an_empty_store(
    store: Store, tmp_path: Path, sqlite_template: Path
) -> None:
    async with store.sessionmaker.begin() as session:
        await customers.create_customer(
            session,
            name='Zoë "Zo" Martin',
            company="Northwind, Ltd",
            tier="platinum",
            language="fr",
            segment="vip",
            notes="Line one\nLine two; with a semicolon\n=SUM(A1)",
            phones=["+44 20 7946 0018", "07700 900461"],
            emails=["Zoe@Example.com", "zoe.m@work.example"],
            region="GB",
        )
        await customers.create_customer(session, name="Bare", region="GB")
        await customers.create_customer(
            session, name="Intl", phones=["+1 212 555 0134"], region="GB"
        )
    exported = io.StringIO()
    async with store.sessionmaker() as session:
        assert await customer_csv.export_customers(session, exported) == 3
    # Into a brand-new store, read as if the file came from another country.
    copy = tmp_path / "target.db"
    shutil.copyfile(sqlite_template, copy)
    engine = make_engine(f"sqlite+aiosqlite:///{copy}")
    target = Store(engine, make_sessionmaker(engine))
    try:
        report = await customer_csv.import_customers(
            target.sessionmaker, io.StringIO(exported.getvalue()), region="US"
        )
        assert (report.created, report.refused) == (3, [])
        again = io.StringIO()
        async with target.sessionmaker() as session:
            assert await customer_csv.export_customers(session, again) == 3
            zoe = await customers.find_customer_by_email(session, "zoe@example.com")
            assert zoe is not None
            assert (zoe.name, zoe.company, zoe.notes) == (
                'Zoë "Zo" Martin',
                "Northwind, Ltd",
                "Line one\nLine two; with a semicolon\n=SUM(A1)",
            )
            assert sorted(cp.value for cp in zoe.contact_points if cp.kind == "phone") == [
                "+442079460018",
                "+447700900461",
            ]
        assert again.getvalue() == exported.getvalue()
        # And importing the export back into its source changes nothing.
        second = await customer_csv.import_customers(
            target.sessionmaker, io.StringIO(exported.getvalue()), region="US"
        )
        assert (second.created, second.updated, second.unchanged) == (0, 0, 3)
    finally:
        await engine.dispose()
