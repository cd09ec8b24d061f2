"""Customer import and export as CSV.

Columns: name, company, tier, language, segment, notes, phones, emails; phones and emails
hold several values separated by ";". Import is idempotent by contact point: a row whose
phone or email is already stored updates that customer, so importing the same file twice
creates nothing the second time, and importing an export changes nothing.

On update an empty cell keeps the stored value (an import never erases data), and contact
points are only ever added. A row without any phone or email is matched on name and company.
"""

from __future__ import annotations

import csv
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

Outcome = Literal["created", "updated", "unchanged"]


class CsvHeaderError(InvalidData):
    """The CSV header is missing columns, has unknown ones, or repeats one."""

    error_id = "store.csv_header"


@dataclass
class ImportReport:
    """What an import did; `refused` holds (line number, reason) for rows not imported."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


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


async def _import_row(
    session: AsyncSession, row: dict[str, str], region: str, actor: Actor
) -> Outcome:
    scalars = {column: row[column].strip() for column in SCALAR_COLUMNS}
    contacts = customers.normalize_contacts(
        region, phones=_split(row["phones"]), emails=_split(row["emails"])
    )
    customer = await _match(session, contacts, scalars["name"], scalars["company"])
    if customer is None:
        await customers.create_customer(
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
        return "created"
    changed = {
        column: value
        for column, value in scalars.items()
        if value and getattr(customer, column) != value
    }
    if changed:
        await customers.update_customer(session, customer.id, actor=actor, **changed)
    stored = {(point.kind, point.value) for point in customer.contact_points}
    new_contacts = [(k, raw) for k, v, raw in contacts if (k, v) not in stored]
    for kind, raw in new_contacts:
        await customers.add_contact_point(
            session, customer.id, kind, raw, region=region, actor=actor
        )
    return "updated" if changed or new_contacts else "unchanged"


async def import_customers(
    sessionmaker: async_sessionmaker[AsyncSession],
    lines: Iterable[str] | TextIO,
    *,
    region: str,
    actor: Actor = SYSTEM,
) -> ImportReport:
    """Import customers from CSV, one transaction per row; bad rows are refused and reported."""
    reader = csv.reader(iter(lines))
    try:
        header = next(reader)
    except StopIteration:
        raise CsvHeaderError(f"empty CSV file; expected the header {','.join(COLUMNS)}") from None
    except csv.Error as exc:
        raise CsvHeaderError(f"unreadable CSV header: {exc}") from None
    names = check_header(header)
    report = ImportReport()
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
        try:
            async with sessionmaker.begin() as session:
                outcome = await _import_row(
                    session, dict(zip(names, cells, strict=True)), region, actor
                )
        except StoreError as exc:
            report.refused.append((line_number, exc.message))
            continue
        setattr(report, outcome, getattr(report, outcome) + 1)
    return report


async def export_customers(session: AsyncSession, out: TextIO) -> int:
    """Write every customer as CSV (the import's columns), in id batches; return the count."""
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
                    customer.name,
                    customer.company or "",
                    customer.tier,
                    customer.language or "",
                    customer.segment or "",
                    customer.notes or "",
                    SEPARATOR.join(p.value for p in points if p.kind == "phone"),
                    SEPARATOR.join(p.value for p in points if p.kind == "email"),
                ]
            )
        count += len(batch)
        last_id = batch[-1].id
