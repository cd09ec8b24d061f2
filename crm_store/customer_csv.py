"""Customer import and export as CSV.

Columns: name, company, tier, language, segment, notes, phones, emails; phones and emails
hold several values separated by ";".

Import matches each row to a stored customer by contact point (a row without any phone or
email is matched on name and company), and:

- all or nothing: the whole file is one transaction, and if any row is refused (bad data,
  contact points of different customers) nothing at all is imported; every bad row is
  reported with its line number;
- a customer stored before the import is never changed unless asked (`update_existing`):
  by default such a row is "unchanged" when it says nothing new and "skipped" otherwise,
  with what it would have changed, field by field; rows of the same file that share a
  contact point are merged into the customer the first of them created;
- on update an empty cell keeps the stored value (an import never erases data), and
  contact points are only ever added;
- a dry run does everything in a transaction that is rolled back: the report is the one a
  real run would give, and nothing is written.

Importing the same file twice creates nothing the second time, and importing an export
changes nothing.

Spreadsheet formulas (CSV injection, OWASP): a cell that a spreadsheet would run, one
starting with = + - @ TAB or CR, is written with a leading single quote, which the import
removes again, so export -> import is lossless. To keep that exact, a cell starting with
quotes followed by such a character gets one more quote (see `escape_cell`). The phones
column is left as is when it holds only E.164 numbers ("+" and digits: nothing a
spreadsheet can run, and scripts reading the file get the numbers unchanged).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, TextIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from crm_store import customers
from crm_store.actors import SYSTEM, Actor
from crm_store.errors import Conflict, InvalidData, StoreError
from crm_store.models import Customer

COLUMNS: Final = ("name", "company", "tier", "language", "segment", "notes", "phones", "emails")
SCALAR_COLUMNS: Final = ("name", "company", "tier", "language", "segment", "notes")
SEPARATOR: Final = ";"
EXPORT_BATCH: Final = 1000
# A cell a spreadsheet would read as a formula (= + - @ TAB CR, OWASP CSV injection),
# possibly behind quotes (so that a quote added on export is told from one of the value).
_NEEDS_QUOTE: Final = re.compile(r"'*[=+\-@\t\r]")
_E164_LIST: Final = re.compile(r"\+[0-9]+(;\+[0-9]+)*")

Outcome = Literal["created", "updated", "unchanged", "skipped"]


def escape_cell(value: str) -> str:
    """The cell as exported: a leading quote when a spreadsheet would run it as a formula.

    Cells matching `'*[=+-@TAB CR]` get one more leading quote, so `unescape_cell` can tell
    an added quote from one that belongs to the value: "=1" -> "'=1", "'=1" -> "''=1".
    """
    return "'" + value if _NEEDS_QUOTE.match(value) else value


def unescape_cell(value: str) -> str:
    """The value of an imported cell: drops the quote `escape_cell` added, if any."""
    if value.startswith("'") and _NEEDS_QUOTE.match(value, 1):
        return value[1:]
    return value


class CsvHeaderError(InvalidData):
    """The CSV header is missing columns, has unknown ones, or repeats one."""

    error_id = "store.csv_header"


@dataclass
class RowResult:
    """What the import did (or, in a dry run, would do) with one row.

    `changes` maps a field to (stored value, value of the row); a contact point the row
    adds is `phone`/`email` -> (None, value).
    """

    line: int
    outcome: Outcome
    customer_id: int | None
    name: str
    changes: list[tuple[str, str | None, str]] = field(default_factory=list)


@dataclass
class ImportReport:
    """What an import did; `refused` holds (line number, reason) for rows not imported.

    When any row is refused, or in a dry run, nothing was written (`written` is False) and
    the counts say what the rows would have given.
    """

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)
    rows: list[RowResult] = field(default_factory=list)
    dry_run: bool = False
    written: bool = False


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(SEPARATOR) if part.strip()]


def check_header(header: list[str]) -> list[str]:
    """Normalised column names of a header row; CsvHeaderError unless it is exactly COLUMNS."""
    names = [name.strip().lower() for name in header]
    if names:
        names[0] = names[0].lstrip("\ufeff")  # a BOM left by spreadsheet programs
    problems = []
    unknown = [name for name in names if name not in COLUMNS]
    missing = [name for name in COLUMNS if name not in names]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if unknown:
        problems.append(f"unknown column(s): {', '.join(map(repr, unknown))}")
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if repeated:
        problems.append(f"repeated column(s): {', '.join(repeated)}")
    if problems:
        raise CsvHeaderError(
            f"bad CSV header ({'; '.join(problems)}); expected: {','.join(COLUMNS)}"
        )
    return names


async def _match(
    session: AsyncSession, contacts: list[tuple[str, str, str]], name: str, company: str
) -> Customer | None:
    """The stored customer this row describes, if any."""
    owners = await customers.find_contact_owners(session, [(k, v) for k, v, _ in contacts])
    ids = sorted(set(owners.values()))
    if len(ids) > 1:
        raise Conflict(
            "contact points belong to different customers ("
            + ", ".join(f"{k} {v} -> {owner}" for (k, v), owner in sorted(owners.items()))
            + ")"
        )
    if ids:
        return await customers.get_customer(session, ids[0])
    if contacts or not name:
        return None
    # Nothing to match on but the name: good enough for re-importing an export of customers
    # known only by chat handle, and refused when it is ambiguous.
    found = list(
        (
            await session.scalars(
                select(Customer)
                .where(
                    Customer.name == name,
                    Customer.company == company if company else Customer.company.is_(None),
                )
                .options(selectinload(Customer.contact_points))
                .limit(2)
            )
        ).all()
    )
    if len(found) > 1:
        raise Conflict(f"no phone or email, and several customers are named {name!r}")
    return found[0] if found else None


def _shown(value: str | None) -> str:
    return "(empty)" if value is None else repr(value)


async def _import_row(
    session: AsyncSession,
    row: dict[str, str],
    line: int,
    *,
    region: str,
    actor: Actor,
    created_here: set[int],
    update_existing: bool,
) -> RowResult:
    scalars = {column: row[column].strip() for column in SCALAR_COLUMNS}
    contacts = customers.normalize_contacts(
        region, phones=_split(row["phones"]), emails=_split(row["emails"])
    )
    customer = await _match(session, contacts, scalars["name"], scalars["company"])
    if customer is None:
        created = await customers.create_customer(
            session,
            name=scalars["name"],
            company=scalars["company"] or None,
            tier=scalars["tier"] or "bronze",
            language=scalars["language"] or None,
            segment=scalars["segment"] or None,
            notes=scalars["notes"] or None,
            phones=[raw for kind, _, raw in contacts if kind == "phone"],
            emails=[raw for kind, _, raw in contacts if kind == "email"],
            region=region,
            actor=actor,
        )
        created_here.add(created.id)
        return RowResult(line, "created", created.id, created.name)
    changed = {
        column: value
        for column, value in scalars.items()
        if value and getattr(customer, column) != value
    }
    stored = {(point.kind, point.value) for point in customer.contact_points}
    new_contacts = [(k, v, raw) for k, v, raw in contacts if (k, v) not in stored]
    changes = [(column, getattr(customer, column), value) for column, value in changed.items()]
    changes += [(kind, None, value) for kind, value, _ in new_contacts]
    result = RowResult(line, "unchanged", customer.id, customer.name, changes)
    if not changes:
        return result
    if customer.id not in created_here and not update_existing:
        # Stored before this import: a matching phone is not consent to rename the customer.
        result.outcome = "skipped"
        return result
    if changed:
        await customers.update_customer(session, customer.id, actor=actor, **changed)
    for kind, _, raw in new_contacts:
        await customers.add_contact_point(
            session, customer.id, kind, raw, region=region, actor=actor
        )
    result.outcome = "updated"
    return result


async def _begin(session: AsyncSession) -> None:
    """Start the import's transaction, so that per-row savepoints nest inside it."""
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        # pysqlite opens a transaction only before a write, and a SAVEPOINT opened outside
        # one is committed by its RELEASE: begin explicitly, or a dry run would write.
        await connection.exec_driver_sql("BEGIN")


async def import_customers(
    sessionmaker: async_sessionmaker[AsyncSession],
    lines: Iterable[str] | TextIO,
    *,
    region: str,
    actor: Actor = SYSTEM,
    dry_run: bool = False,
    update_existing: bool = False,
) -> ImportReport:
    """Import customers from CSV in one transaction: all rows, or none if any is refused.

    Customers stored before the import are only changed with `update_existing`; a dry run
    reports the same outcomes and writes nothing.
    """
    reader = csv.reader(iter(lines))
    try:
        header = next(reader)
    except StopIteration:
        raise CsvHeaderError(f"empty CSV file; expected the header {','.join(COLUMNS)}") from None
    except csv.Error as exc:
        raise CsvHeaderError(f"unreadable CSV header: {exc}") from None
    names = check_header(header)
    report = ImportReport(dry_run=dry_run)
    created_here: set[int] = set()
    async with sessionmaker() as session:
        await _begin(session)
        while True:
            line_number = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                report.refused.append((line_number, f"malformed CSV: {exc}"))
                if reader.line_num < line_number:
                    break
                continue
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(names):
                report.refused.append(
                    (line_number, f"expected {len(names)} fields, found {len(cells)}")
                )
                continue
            if any("\x00" in cell for cell in cells):
                # PostgreSQL refuses NUL even in the look-up, which would end the whole import.
                report.refused.append((line_number, "a field contains a NUL character"))
                continue
            row = dict(zip(names, (unescape_cell(cell) for cell in cells), strict=True))
            try:
                # A refused row is rolled back to here, and the next rows are still checked.
                async with session.begin_nested():
                    result = await _import_row(
                        session,
                        row,
                        line_number,
                        region=region,
                        actor=actor,
                        created_here=created_here,
                        update_existing=update_existing,
                    )
            except StoreError as exc:
                report.refused.append((line_number, exc.message))
                continue
            finally:
                session.expunge_all()  # memory stays flat however long the file is
            report.rows.append(result)
            setattr(report, result.outcome, getattr(report, result.outcome) + 1)
        if report.refused or dry_run:
            await session.rollback()
        else:
            await session.commit()
            report.written = True
    return report


def describe_row(result: RowResult, *, dry_run: bool = False) -> str:
    """One line for the import's listing: what was (or would be) done with the row."""
    changes = "; ".join(
        f"add {column} {value}"
        if before is None and column in ("phone", "email")
        else f"{column} {_shown(before)} -> {value!r}"
        for column, before, value in result.changes
    )
    who = f"customer {result.customer_id} ({result.name})"
    if result.outcome == "created":
        return f"line {result.line}: {'would create' if dry_run else 'created'} {who}"
    if result.outcome == "updated":
        return f"line {result.line}: {'would update' if dry_run else 'updated'} {who}: {changes}"
    if result.outcome == "skipped":
        return (
            f"line {result.line}: skipped {who}, stored before this import: would change "
            f"{changes} (--update-existing to apply)"
        )
    return f"line {result.line}: unchanged {who}"


def _phones_cell(phones: list[str]) -> str:
    cell = SEPARATOR.join(phones)
    # Stored phones are E.164 ("+" and digits): safe as is. Anything else is escaped.
    return cell if _E164_LIST.fullmatch(cell) else escape_cell(cell)


async def export_customers(session: AsyncSession, out: TextIO) -> int:
    """Write every customer as CSV (the import's columns), in id batches; return the count.

    Cells a spreadsheet would run as formulas are written with a leading quote
    (`escape_cell`); the import removes it.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    last_id = 0
    while True:
        # Keyset batches: memory stays flat however many customers there are.
        batch = list(
            (
                await session.scalars(
                    select(Customer)
                    .where(Customer.id > last_id)
                    .order_by(Customer.id)
                    .limit(EXPORT_BATCH)
                    .options(selectinload(Customer.contact_points))
                )
            ).all()
        )
        if not batch:
            return count
        for customer in batch:
            points = customer.contact_points
            writer.writerow(
                [
                    *(
                        escape_cell(value or "")
                        for value in (
                            customer.name,
                            customer.company,
                            customer.tier,
                            customer.language,
                            customer.segment,
                            customer.notes,
                        )
                    ),
                    _phones_cell([p.value for p in points if p.kind == "phone"]),
                    escape_cell(SEPARATOR.join(p.value for p in points if p.kind == "email")),
                ]
            )
        count += len(batch)
        last_id = batch[-1].id
