"""The driver shared by both kinds of import: rows are parsed in a thread a batch or two ahead of the
writing, each batch is written in its own transaction, and the report adds up what the batches did."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from ..models import Contact
from .reading import _check_header, _CsvSource

logger = logging.getLogger(__package__)  # "contacts.imports", as before the split

BATCH_SIZE = 10_000
# ImportJob.errors keeps the first rejected rows only (error_count is always the full number); the
# management command can write every error with --errors-csv.
STORED_ERRORS = 1000  # not re-exported by the package: patch it here


@dataclass
class ImportReport:
    """What an import did. ``errors`` holds the first ``STORED_ERRORS`` problems, in line order."""

    kind: str
    total_rows: int = 0
    processed_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    error_count: int = 0
    errors: list[dict] = field(default_factory=list)
    encoding: str = ""


@dataclass
class _BatchResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    commit: Callable[[], None] | None = None  # bookkeeping to keep once the batch is committed


class _Importer:
    """Parses rows (``parse``) and writes batches (``write``); subclasses define both for one kind."""

    columns: dict[str, Any]
    required: list[tuple[str, ...]]

    def __init__(self, *, header: list[str], actor, use_copy: bool) -> None:
        self.index = _check_header(header, self.columns, self.required)
        self.actor = actor
        # Without an actor (a management command run without --as) the import sees every contact.
        self.restricted = actor is not None and not Contact.objects.sees_all(actor)
        self.use_copy = use_copy
        self.now = timezone.now()
        self.tz = timezone.get_default_timezone()

    def cells(self, cells: list[str]) -> Iterator[tuple[str, str]]:
        count = len(cells)
        for name, index in self.index.items():
            if index < count:
                raw = cells[index].strip()
                if raw:
                    yield name, raw

    def parse(self, line: int, cells: list[str]) -> tuple[dict | None, list[tuple[str, str]]]:
        raise NotImplementedError

    def write(self, rows: list[tuple[int, dict]]) -> _BatchResult:
        raise NotImplementedError


@dataclass
class _Run:
    """One import in progress: parsed batches in, committed batches and the report out."""

    source: _CsvSource
    importer: _Importer
    report: ImportReport
    on_progress: Callable[[ImportReport], None] | None
    on_error: Callable[[dict], None] | None

    def run(self, batch_size: int) -> None:
        # Parsing (pure Python, no database) runs in a thread one or two batches ahead of the writing,
        # which mostly waits on the database with the GIL released: on two cores the two overlap.
        batches: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()
        language = translation.get_language()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    batches.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                with translation.override(language):
                    for item in _parse_batches(self.source, self.importer, batch_size):
                        if not put(item):
                            return
                put(None)
            except BaseException as exc:  # handed to the writing thread, which raises it
                put(exc)

        parser = threading.Thread(target=produce, name="csv-import-parser", daemon=True)
        parser.start()
        try:
            while (item := batches.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                self.flush(*item)
        finally:
            stop.set()
            parser.join()
        self.report.total_rows = self.report.processed_rows

    def flush(
        self,
        batch: list[tuple[int, dict]],
        parse_errors: list[tuple[int, str, str]],
        rows_read: int,
        cells_by_line: dict[int, list[str]],
    ) -> None:
        result = _write_batch(self.importer, batch) if batch else _BatchResult()
        report = self.report
        report.created += result.created
        report.updated += result.updated
        report.unchanged += result.unchanged
        report.processed_rows = rows_read
        rejected_lines = set()
        for line, field_name, message in sorted(parse_errors + result.errors, key=lambda e: e[0]):
            rejected_lines.add(line)
            keep = len(report.errors) < STORED_ERRORS
            if not keep and not self.on_error:
                continue
            # The original row travels with its problems, so that the rejected-rows CSV can show it.
            error = {
                "line": line,
                "field": field_name,
                "message": str(message),
                "row": self.original(cells_by_line[line]),
            }
            if keep:
                report.errors.append(error)
            if self.on_error:
                self.on_error(error)
        report.error_count += len(rejected_lines)
        if self.on_progress:
            self.on_progress(report)

    def original(self, cells: list[str]) -> dict[str, Any]:
        """A rejected row's non-empty cells by column name (``extra``: cells beyond the header's columns)."""
        count = len(cells)
        row: dict[str, Any] = {
            name: cells[index] for name, index in self.importer.index.items() if index < count and cells[index]
        }
        width = len(self.source.header)
        if count > width and any(cells[width:]):
            row["extra"] = cells[width:]
        return row


def _parse_batches(
    source: _CsvSource, importer: _Importer, batch_size: int
) -> Iterator[tuple[list[tuple[int, dict]], list[tuple[int, str, str]], int, dict[int, list[str]]]]:
    """Yield ``(valid rows, problems of the invalid rows, rows read so far, cells by line)`` batch by batch;
    the cells of the batch's rows are kept for the report of rows rejected when the batch is written."""
    batch: list[tuple[int, dict]] = []
    parse_errors: list[tuple[int, str, str]] = []
    cells_by_line: dict[int, list[str]] = {}
    rows_read = 0
    width = len(source.header)
    for line, cells, unreadable in source.rows():
        rows_read += 1
        cells_by_line[line] = cells
        if unreadable:
            parse_errors.append((line, "row", unreadable))
            continue
        if len(cells) > width and any(cell.strip() for cell in cells[width:]):
            message = _("This row has %(cells)d cells; the header names %(columns)d columns.")
            parse_errors.append((line, "row", message % {"cells": len(cells), "columns": width}))
            continue
        values, problems = importer.parse(line, cells)
        if problems:
            parse_errors.extend((line, name, message) for name, message in problems)
        else:
            batch.append((line, values))
        if len(batch) >= batch_size or len(parse_errors) >= batch_size:
            yield batch, parse_errors, rows_read, cells_by_line
            batch, parse_errors, cells_by_line = [], [], {}
    yield batch, parse_errors, rows_read, cells_by_line


def _write_batch(importer: _Importer, batch: list[tuple[int, dict]]) -> _BatchResult:
    # A concurrent writer can take a key between our read and our write; the unique constraint then
    # fails the batch, which is rolled back whole and resolved again against the new state.
    for attempt in range(3):
        try:
            with transaction.atomic():
                result = importer.write(batch)
        except IntegrityError:
            if attempt == 2:
                raise
            logger.warning("import batch hit a concurrent write; resolving it again", exc_info=True)
            continue
        if result.commit:
            result.commit()
        return result
    raise AssertionError("unreachable")
