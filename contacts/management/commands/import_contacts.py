"""``manage.py import_contacts FILE``: import a contacts CSV synchronously, through the same service as the
API and the dashboard (contacts.imports)."""

from __future__ import annotations

import argparse
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter

from contacts.imports import (
    BATCH_SIZE,
    CONTACT_COLUMNS,
    ImportFileError,
    ImportReport,
    import_csv,
    rejected_row,
    rejected_rows_header,
)
from scrm.csv_writer import csv_chunks


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


class Command(BaseCommand):
    help = (
        "Import contacts from a CSV file (UTF-8 with or without BOM, or GBK). Rows match existing contacts by "
        "external_id, else by phone; unchanged rows are not written, so importing a file again changes nothing. "
        "Exit status: 0 all rows imported, 1 the file was refused (header, encoding), 2 some rows were rejected."
    )
    kind = "contacts"
    columns = CONTACT_COLUMNS
    columns_note = (
        "At least one of external_id and phone is required (column and value); all other columns are optional."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = _HelpFormatter
        width = max(len(name) for name in self.columns)
        lines = [f"  {name:<{width}}  {description}" for name, description in self.columns.items()]
        parser.epilog = "columns:\n" + "\n".join(lines) + "\n\n" + self.columns_note + "\nSee docs/csv-import.md."
        return parser

    def add_arguments(self, parser):
        parser.add_argument("file", help="path of the CSV file")
        parser.add_argument(
            "--as",
            dest="username",
            help="import as this user: an operator imports into their own book only (default: unrestricted)",
        )
        parser.add_argument(
            "--errors-csv",
            metavar="PATH",
            help="write every rejected row here (line, field, message and the original row)",
        )
        parser.add_argument("--show-errors", type=int, default=20, metavar="N", help="print the first N problems (20)")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"rows per transaction ({BATCH_SIZE})")

    def handle(self, *args, **options):
        actor = None
        if options["username"]:
            User = get_user_model()
            actor = User.objects.filter(**{User.USERNAME_FIELD: options["username"]}, is_active=True).first()
            if actor is None:
                raise CommandError(f"No active user named {options['username']!r}.")
        try:
            fileobj = open(options["file"], "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise CommandError(f"Cannot read {options['file']}: {exc.strerror}.") from exc

        errors_file = None
        pending: list[list] = []  # rejected rows not yet written to --errors-csv
        if options["errors_csv"]:
            errors_file = open(options["errors_csv"], "w", encoding="utf-8", newline="")  # noqa: SIM115
            errors_file.writelines(csv_chunks([rejected_rows_header(self.kind)]))

        def write_errors() -> None:
            if errors_file and pending:
                errors_file.writelines(csv_chunks(pending, bom=False))
                pending.clear()

        shown: list[dict] = []
        started = time.monotonic()
        last_print = [0.0]
        total = [0]

        def on_error(error: dict) -> None:
            if len(shown) < options["show_errors"]:
                shown.append(error)
            if errors_file:
                # The message quotes the rejected value: free text, defused like any other.
                pending.append(rejected_row(self.kind, error))

        def on_progress(report: ImportReport) -> None:
            write_errors()  # after every batch: the problems of one batch at most wait in memory
            now = time.monotonic()
            if now - last_print[0] >= 2:
                last_print[0] = now
                self.stderr.write(f"  {report.processed_rows:,} / ~{total[0]:,} rows ({now - started:.0f}s)")

        try:
            with fileobj:
                report = import_csv(
                    kind=self.kind,
                    fileobj=fileobj,
                    actor=actor,
                    batch_size=options["batch_size"],
                    on_start=lambda estimate: total.__setitem__(0, estimate),
                    on_progress=on_progress,
                    on_error=on_error,
                )
        except ImportFileError as exc:
            raise CommandError(f"The file was not imported: {exc}", returncode=1) from exc
        finally:
            if errors_file:
                write_errors()
                errors_file.close()

        elapsed = time.monotonic() - started
        self.stdout.write(
            f"{report.processed_rows:,} rows in {elapsed:.1f}s ({report.encoding}): {report.created:,} created, "
            f"{report.updated:,} updated, {report.unchanged:,} unchanged, {report.error_count:,} rejected."
        )
        if not report.error_count:
            return
        for error in shown:
            self.stdout.write(f"  line {error['line']}: {error['field']}: {error['message']}")
        if options["errors_csv"]:
            self.stdout.write(f"Every problem is in {options['errors_csv']}.")
        elif report.error_count > len({error["line"] for error in shown}):
            self.stdout.write("  … more problems: write them all with --errors-csv PATH.")
        rejected = "1 row was" if report.error_count == 1 else f"{report.error_count:,} rows were"
        raise CommandError(f"{rejected} rejected.", returncode=2)
