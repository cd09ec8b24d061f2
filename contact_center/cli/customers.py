"""`contact-center customers`: import from CSV (all rows or none) and export as CSV."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import sys
from pathlib import Path
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncSession

from contact_center.cli.config_file import decode_problem, load
from contact_center.cli.console import silence_stdout
from contact_center.cli.store import run_db, with_session
from contact_center.errors import CommandError
from crm_store import migrate
from crm_store.customer_csv import ImportReport, describe_row, export_customers, import_customers
from crm_store.database import make_engine, make_sessionmaker


def cmd_import(args: argparse.Namespace) -> int:
    """Import customers from CSV: all rows or none; stored customers changed only if asked."""
    config = load(args)
    path = Path(args.file)
    try:
        _check_utf8(path)
        stream: TextIO = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise CommandError(f"{path}: cannot open ({exc.strerror})") from None

    async def go() -> ImportReport:
        url = config.database.url
        if args.dry_run:
            # A dry run writes nothing, not even the schema.
            if not await migrate.is_up_to_date(url):
                raise CommandError(
                    f"{path}: the database schema is not up to date; run "
                    "`contact-center db upgrade` first (a dry run changes nothing)"
                )
        else:
            await migrate.upgrade(url)
        engine = make_engine(url)
        try:
            return await import_customers(
                make_sessionmaker(engine),
                stream,
                region=config.database.default_region,
                dry_run=args.dry_run,
                update_existing=args.update_existing,
            )
        finally:
            await engine.dispose()

    with stream:
        report = run_db(config, go())
    counts = (
        f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.skipped} skipped"
    )
    if report.refused:
        print(
            f"{path}: nothing imported, {len(report.refused)} row(s) refused "
            f"(the other rows would give {counts})"
        )
    elif report.dry_run:
        print(f"{path}: dry run, nothing written; the import would give {counts}, 0 refused")
    else:
        print(f"{path}: {counts}, 0 refused")
    listed = ("created", "updated", "skipped") if report.dry_run else ("updated", "skipped")
    for row in report.rows if report.dry_run or not report.refused else ():
        # Creations are listed only in a dry run (a real import of a new file would list
        # every row); what changed, or was left alone, always.
        if row.outcome in listed:
            print(f"  {describe_row(row, dry_run=not report.written)}")
    for line_number, reason in report.refused:
        print(f"  line {line_number}: {reason}", file=sys.stderr)
    return 1 if report.refused else 0


def _check_utf8(path: Path) -> None:
    """Refuse a file that is not UTF-8 before importing any of it (OSError if unreadable)."""
    with path.open("rb") as raw:
        # A newline byte is never part of a multi-byte UTF-8 character: lines decode alone.
        for number, line in enumerate(raw, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CommandError(
                    f"{path}: line {number} is not UTF-8 text ({decode_problem(exc)} of the "
                    "line); save the file as UTF-8 CSV. Nothing was imported."
                ) from None


class _Output:
    """Where an export goes, opened before any query runs so a bad path fails first.

    A regular file is written beside its destination and moved into place once complete:
    a failed export never leaves a partial file nor spoils an earlier one. Devices and pipes
    (`/dev/stdout`, a FIFO) are written directly.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.final: Path | None = None
        self.temp: Path | None = None
        given = Path(target)
        try:
            if given.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            if given.exists() and not given.is_file():
                self.stream: TextIO = open(given, "w", encoding="utf-8", newline="")  # noqa: SIM115
                return
            final = Path(os.path.realpath(target))  # write through a symbolic link
            if final.exists() and not os.access(final, os.W_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            temp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
            # 0o666 less the umask, as a plain open() would create it.
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            self.final, self.temp = final, temp
            self.stream = os.fdopen(fd, "w", encoding="utf-8", newline="")
            if final.exists():
                shutil.copymode(final, temp)
        except OSError as exc:
            self.discard()
            raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from None

    def commit(self) -> None:
        """Close the output and put it in place."""
        try:
            self.stream.close()
            if self.temp is not None and self.final is not None:
                os.replace(self.temp, self.final)
                self.temp = None
        except OSError as exc:
            self.discard()
            raise CommandError(f"cannot write {self.target}: {exc.strerror or exc}") from None

    def discard(self) -> None:
        """Close the output and drop what was written (for a regular file)."""
        stream = getattr(self, "stream", None)
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
        if self.temp is not None:
            with contextlib.suppress(OSError):
                self.temp.unlink()
            self.temp = None


def cmd_export(args: argparse.Namespace) -> int:
    """Export every customer as CSV (the import format)."""
    config = load(args)
    count = 0
    to_stdout = args.output in (None, "-")
    output = None if to_stdout else _Output(args.output)
    out = sys.stdout if output is None else output.stream
    shown = "standard output" if output is None else args.output

    async def go(session: AsyncSession) -> None:
        nonlocal count
        try:
            count = await export_customers(session, out)
            out.flush()
        except BrokenPipeError:
            if to_stdout:
                raise  # the reader went away (`| head`): main() ends quietly
            raise CommandError(f"cannot write {shown}: the reader went away") from None
        except OSError as exc:
            raise CommandError(f"cannot write {shown}: {exc.strerror or exc}") from None

    try:
        with_session(config, go)
    except BrokenPipeError:
        raise
    except BaseException:
        if output is not None:
            output.discard()
        else:
            silence_stdout()  # a partial export must not be flushed on the way out
        raise
    if output is not None:
        output.commit()
    print(f"{count} customers exported", file=sys.stderr)
    return 0
