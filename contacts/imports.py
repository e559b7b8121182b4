"""CSV import of contacts and of purchases: one service used by the management commands, the API and the
dashboard.

How an import runs (docs/csv-import.md is the user-facing description):

1. The file is scanned once in binary to choose the encoding (UTF-8 with or without BOM, else GB18030, the
   superset of the GBK that Excel in China writes) and to count lines for the progress bar. Then it is
   streamed through the ``csv`` module; nothing holds the whole file in memory.
2. The header is checked: unknown, duplicate or missing columns fail the whole import before anything is
   written.
3. Rows are validated in Python one by one (all problems of a row are reported together), then handled in
   batches: one query per batch finds the existing contacts (or orders) the rows name, each row is resolved
   in file order (create / update / unchanged / rejected), and the batch is written set-based in its own
   transaction. On PostgreSQL new rows go in with ``COPY`` (ids taken from the table's sequence first) and
   changed rows with one ``UPDATE ... FROM`` a ``COPY``-filled temporary table; elsewhere ``bulk_create``
   and ``bulk_update`` do the same. No user input is ever part of SQL text: data travels through
   ``COPY`` and query parameters only. Parsing (pure Python, no queries) runs in a thread a batch or two
   ahead of the writing, which mostly waits on the database with the GIL released.

A rejected row writes nothing; valid rows are committed batch by batch; a crash in the middle of a batch
rolls that whole batch back. Re-importing a file is a no-op (rows are compared with what is stored and
unchanged rows are not written), so an interrupted import can simply be run again.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import logging
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, InterfaceError, OperationalError, connection, models, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from phonenumbers import PhoneMetadata

from .models import Channel, Contact, ContactTag, ImportJob, Product, Purchase, PurchaseItem, Tag
from .phones import _CN_MOBILE, _SEPARATORS, normalize_phone
from .services import contact_facts_refresh

logger = logging.getLogger(__name__)
User = get_user_model()

BATCH_SIZE = 10_000
# ImportJob.errors keeps the first rejected rows only (error_count is always the full number); the
# management command can write every error with --errors-csv.
STORED_ERRORS = 1000
# A job still RUNNING this long after it was created lost its worker (the task time limit is far lower).
STALE_AFTER = dt.timedelta(hours=24)

# --- Columns ----------------------------------------------------------------------------------

CONTACT_COLUMNS: dict[str, Any] = {
    "external_id": gettext_lazy("Your own customer ID. Matches an existing contact first."),
    "phone": gettext_lazy("Mobile phone; matches an existing contact when there is no external_id match."),
    "name": gettext_lazy("Name."),
    "email": gettext_lazy("Email address."),
    "gender": gettext_lazy("male / female / unknown (also 男 / 女 / 未知)."),
    "birthday": gettext_lazy("Date, YYYY-MM-DD (YYYY/M/D also accepted)."),
    "region": gettext_lazy("Province or region."),
    "city": gettext_lazy("City."),
    "occupation": gettext_lazy("Occupation."),
    "channel": gettext_lazy("Name of an existing acquisition channel; unknown names are rejected."),
    "acquired_at": gettext_lazy("Date or date and time; Asia/Shanghai unless an offset is given."),
    "owner": gettext_lazy("Username of the owning staff member."),
    "intent_level": gettext_lazy("none / low / medium / high (also 无 / 低 / 中 / 高)."),
    "tags": gettext_lazy("Existing tags as group:tag, several joined by |; tags are added, never removed."),
    "marketing_consent": gettext_lazy("true / false (also 1 / 0, yes / no, 是 / 否)."),
    "consent_source": gettext_lazy("Where the consent was given; used when consent is recorded."),
    "wecom_external_userid": gettext_lazy("WeCom external_userid."),
}
PURCHASE_COLUMNS: dict[str, Any] = {
    "external_order_id": gettext_lazy("The shop's order number: importing the same order again changes nothing."),
    "contact_external_id": gettext_lazy("External ID of the buyer (or give contact_phone)."),
    "contact_phone": gettext_lazy("Mobile phone of the buyer, used when contact_external_id is empty."),
    "purchased_at": gettext_lazy("Order time; Asia/Shanghai unless an offset is given."),
    "amount": gettext_lazy("Amount, e.g. 199.00."),
    "status": gettext_lazy("paid / refunded (default paid)."),
    "items": gettext_lazy("Optional SKU*quantity joined by |, e.g. SKU001*2|SKU002."),
    "source": gettext_lazy("Optional: where the order came from (shop name, platform)."),
}

_TRUE = frozenset({"true", "1", "yes", "y", "t", "是", "同意"})
_FALSE = frozenset({"false", "0", "no", "n", "f", "否", "不同意"})
_GENDERS = {"male": "male", "m": "male", "男": "male", "female": "female", "f": "female", "女": "female"}
_GENDERS.update({"unknown": "unknown", "未知": "unknown"})
_INTENT = {"none": "none", "low": "low", "medium": "medium", "high": "high", "无": "none", "低": "low", "中": "medium"}
_INTENT["高"] = "high"
_STATUSES = {"paid": "paid", "refunded": "refunded", "已支付": "paid", "已退款": "refunded"}
_LOOSE_DATETIME = re.compile(
    r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?$"
)
# Cells starting with these are formulas to a spreadsheet: exports prefix them with ' and imports drop it.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


class ImportFileError(Exception):
    """The file as a whole cannot be imported (header, encoding, CSV syntax): nothing is written."""


class _CellError(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


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


# --- Reading the file ---------------------------------------------------------------------------


def _scan(fileobj: IO[bytes]) -> tuple[str, int]:
    """Choose the encoding of the whole file and count its line breaks, in one binary pass."""
    head = fileobj.read(4)
    if head.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8", "gb18030"]
    for encoding in candidates:
        fileobj.seek(0)
        decoder = codecs.getincrementaldecoder(encoding)()
        lines = 0
        try:
            while chunk := fileobj.read(1 << 20):
                decoder.decode(chunk)
                lines += chunk.count(b"\n")
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        fileobj.seek(0)
        return encoding, lines
    raise ImportFileError(_("The file is neither UTF-8 nor GBK text. Save it from Excel as “CSV UTF-8”."))


def _clean_header(name: str) -> str:
    return name.strip().strip("\ufeff").strip().lower()


class _CsvSource:
    """The rows of a CSV file with their line numbers (the header is line 1)."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self.encoding, self.line_breaks = _scan(fileobj)
        self.text = io.TextIOWrapper(fileobj, encoding=self.encoding, newline="")
        try:
            self._read_header()
        except BaseException:
            self.detach()
            raise

    def _read_header(self) -> None:
        first = self.text.readline()
        counts = {d: first.count(d) for d in (",", "\t", ";")}
        delimiter = max(counts, key=counts.get) if any(counts.values()) else ","
        self.text.seek(0)
        self.reader = csv.reader(self.text, delimiter=delimiter)
        try:
            header = next(self.reader, None)
        except csv.Error as exc:
            raise ImportFileError(_("Line 1 is not valid CSV: %(error)s") % {"error": exc}) from exc
        if not header or not any(cell.strip() for cell in header):
            raise ImportFileError(_("The file is empty: the first line must name the columns."))
        self.header = [_clean_header(cell) for cell in header]

    def detach(self) -> None:
        self.text.detach()

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        reader = self.reader
        end = reader.line_num
        while True:
            start = end + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ImportFileError(
                    _("Line %(line)s is not valid CSV: %(error)s") % {"line": start, "error": exc}
                ) from exc
            end = reader.line_num
            if cells and any(cells):
                yield start, cells


def _check_header(header: list[str], known: dict[str, Any], required: list[tuple[str, ...]]) -> dict[str, int]:
    problems = []
    blank = [str(i + 1) for i, name in enumerate(header) if not name]
    if blank:
        problems.append(_("Column(s) %(columns)s have no name.") % {"columns": ", ".join(blank)})
    seen: set[str] = set()
    repeated = sorted({name for name in header if name and (name in seen or seen.add(name))})
    if repeated:
        problems.append(_("Column(s) named more than once: %(columns)s.") % {"columns": ", ".join(repeated)})
    unknown = [name for name in header if name and name not in known]
    if unknown:
        problems.append(
            _("Unknown column(s): %(unknown)s. Known columns: %(known)s.")
            % {"unknown": ", ".join(unknown), "known": ", ".join(known)}
        )
    for alternatives in required:
        if not any(name in header for name in alternatives):
            problems.append(_("Required column missing: %(columns)s.") % {"columns": _(" or ").join(alternatives)})
    if problems:
        raise ImportFileError(" ".join(problems))
    return {name: index for index, name in enumerate(header)}


# --- Cell parsers -------------------------------------------------------------------------------


def _text(raw: str, max_length: int) -> str:
    if raw[0] == "'" and len(raw) > 1 and raw[1] in FORMULA_START:
        raw = raw[1:]
    if len(raw) > max_length:
        raise _CellError(
            _("At most %(max)d characters (this has %(length)d).") % {"max": max_length, "length": len(raw)}
        )
    if "\x00" in raw:
        raise _CellError(_("Contains a NUL character."))
    return raw


def _datetime(raw: str, tz: dt.tzinfo) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        match = _LOOSE_DATETIME.match(raw)
        if match is None:
            raise _CellError(
                _("“%(value)s” is not a date or date and time (YYYY-MM-DD HH:MM:SS).") % {"value": raw}
            ) from None
        parts = [int(p) if p else 0 for p in match.groups()[:6]]
        micro = int((match.group(7) or "0").ljust(6, "0"))
        try:
            value = dt.datetime(*parts, micro)
        except ValueError:
            raise _CellError(_("“%(value)s” is not a valid date.") % {"value": raw}) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    if value.year < 1900:
        raise _CellError(_("“%(value)s” is too far in the past.") % {"value": raw})
    return value


def _date(raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        match = _LOOSE_DATETIME.match(raw)
        if match is None or match.group(4) is not None:
            raise _CellError(_("“%(value)s” is not a date (YYYY-MM-DD).") % {"value": raw}) from None
        try:
            return dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            raise _CellError(_("“%(value)s” is not a valid date.") % {"value": raw}) from None


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _CellError(_("“%(value)s” is not true or false.") % {"value": raw})


def _choice(raw: str, choices: dict[str, str]) -> str:
    value = choices.get(raw.lower())
    if value is None:
        allowed = ", ".join(sorted({v for v in choices.values()}))
        raise _CellError(_("“%(value)s” is not one of: %(allowed)s.") % {"value": raw, "allowed": allowed})
    return value


# Exactly normalize_phone's answer for mainland mobiles, without its per-prefix phonenumbers call: a
# national number that matches libphonenumber's own CN mobile pattern is a valid number. Anything else
# (other countries, fixed lines, invalid numbers and their messages) goes to normalize_phone.
_CN_MOBILE_NUMBER = re.compile(PhoneMetadata.metadata_for_region("CN").mobile.national_number_pattern)


def _phone(raw: str, cn: bool) -> str:
    """``cn``: the default phone region is mainland China (read once per import, not per cell)."""
    if raw[0] == "'":
        raw = raw[1:]
    if cn:
        match = _CN_MOBILE.match(_SEPARATORS.sub("", raw))
        if match is not None and _CN_MOBILE_NUMBER.fullmatch(national := match.group(1)):
            return "+86" + national
    try:
        return normalize_phone(raw)
    except ValidationError as exc:
        raise _CellError(exc.messages[0]) from None


# --- Writing ------------------------------------------------------------------------------------


def _text_array(values: list[str]) -> str:
    """A PostgreSQL array literal of strings, passed as one query parameter: PostgreSQL parses it much
    faster than an ARRAY[...] of thousands of parameters."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _copy(table: str, columns: list[str], rows: list[tuple], *, not_null: list[str] = ()) -> None:
    """``COPY`` rows into a table (PostgreSQL). Values travel as CSV data, never as SQL text; an empty
    unquoted value is NULL except in the ``not_null`` columns, where it is the empty string."""
    if not rows:
        return
    qn = connection.ops.quote_name
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    buffer.seek(0)
    options = "FORMAT csv"
    if not_null:
        options += ", FORCE_NOT_NULL (" + ", ".join(qn(c) for c in not_null) + ")"
    sql = f"COPY {qn(table)} ({', '.join(qn(c) for c in columns)}) FROM STDIN WITH ({options})"
    # The raw driver cursor bypasses Django's error translation: wrap it so that a unique violation is
    # an IntegrityError like everywhere else.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw = cursor.cursor
        if hasattr(raw, "copy_expert"):  # psycopg2
            raw.copy_expert(sql, buffer)
        else:  # psycopg 3
            with raw.copy(sql) as copy:
                copy.write(buffer.getvalue())


class _Inserter:
    """Inserts new rows of one model, given as ``{attname: value}`` dicts (missing fields take the model's
    defaults), and returns their ids in order. PostgreSQL: ids from the table's sequence, then one ``COPY``;
    elsewhere ``bulk_create``."""

    def __init__(self, model: type[models.Model], *, use_copy: bool) -> None:
        self.model = model
        self.use_copy = use_copy
        self.fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        self.auto_now = [
            f.attname for f in self.fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
        ]
        self.json_fields = {f.attname for f in self.fields if isinstance(f, models.JSONField)}
        self.not_null = [
            f.column for f in self.fields if not f.null and isinstance(f, models.CharField | models.TextField)
        ]
        self.sequence = None

    def insert(self, rows: list[dict[str, Any]], *, want_ids: bool = True) -> list[int]:
        if not rows:
            return []
        now = timezone.now()
        if not self.use_copy:
            objs = [self.model(**{**{n: now for n in self.auto_now}, **row}) for row in rows]
            self.model.objects.bulk_create(objs)
            return [obj.pk for obj in objs]
        defaults = {f.attname: f.get_default() for f in self.fields}
        for name in self.auto_now:
            defaults[name] = str(now)
        for name in self.json_fields:
            defaults[name] = json.dumps(defaults[name], ensure_ascii=False)
        present = set().union(*(row.keys() for row in rows))
        # Nullable columns no row sets are left out: the table fills them with NULL.
        fields = [f for f in self.fields if f.attname in present or defaults[f.attname] is not None or not f.null]
        names = [f.attname for f in fields]
        columns = [f.column for f in fields]
        position = {name: i for i, name in enumerate(names)}
        base = [defaults[name] for name in names]
        json_present = [position[name] for name in self.json_fields if name in present]
        ids: list[int] = []
        if want_ids:
            ids = self._allocate(len(rows))
            columns = [self.model._meta.pk.column, *columns]
            position = {name: i + 1 for name, i in position.items()}
            base = [None, *base]
            json_present = [i + 1 for i in json_present]
        table_rows = []
        for n, row in enumerate(rows):
            values = base.copy()
            for name, value in row.items():
                values[position[name]] = value
            for i in json_present:
                values[i] = json.dumps(values[i], ensure_ascii=False) if not isinstance(values[i], str) else values[i]
            if want_ids:
                values[0] = ids[n]
            table_rows.append(values)
        _copy(self.model._meta.db_table, columns, table_rows, not_null=[c for c in self.not_null if c in columns])
        return ids

    def _allocate(self, count: int) -> list[int]:
        with connection.cursor() as cursor:
            if self.sequence is None:
                cursor.execute(
                    "SELECT pg_get_serial_sequence(%s, %s)", [self.model._meta.db_table, self.model._meta.pk.column]
                )
                self.sequence = cursor.fetchone()[0]
            cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [self.sequence, count])
            return [row[0] for row in cursor.fetchall()]


# --- Shared driver ------------------------------------------------------------------------------


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


def import_csv(
    *,
    kind: str,
    fileobj: IO[bytes],
    actor=None,
    batch_size: int = BATCH_SIZE,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[ImportReport], None] | None = None,
    on_error: Callable[[dict], None] | None = None,
    use_copy: bool | None = None,
) -> ImportReport:
    """Import a CSV of contacts (``kind="contacts"``) or purchases (``kind="purchases"``) from a binary,
    seekable file. ``actor`` is the user the import acts for (operators import into their own book);
    ``None`` means unrestricted. Raises ``ImportFileError`` when the file as a whole is unusable.

    ``on_start(estimated_rows)`` is called once the file was scanned, ``on_progress(report)`` after each
    committed batch and ``on_error(error)`` for every problem, in line order. ``use_copy`` forces (or
    forbids) the PostgreSQL ``COPY`` path; by default it is used on PostgreSQL."""
    importer_class = {ImportJob.Kind.CONTACTS: _ContactImporter, ImportJob.Kind.PURCHASES: _PurchaseImporter}.get(kind)
    if importer_class is None:
        raise ValueError(f"unknown import kind {kind!r}")
    if use_copy is None:
        use_copy = _is_postgres()
    elif use_copy and not _is_postgres():
        raise ValueError("the COPY path needs PostgreSQL")
    source = _CsvSource(fileobj)
    try:
        importer = importer_class(header=source.header, actor=actor, use_copy=use_copy)
        report = ImportReport(kind=kind, total_rows=max(0, source.line_breaks - 1), encoding=source.encoding)
        if on_start:
            on_start(report.total_rows)
        _Run(source=source, importer=importer, report=report, on_progress=on_progress, on_error=on_error).run(
            batch_size
        )
    finally:
        source.detach()  # the caller's file stays open (and theirs to close)
    return report


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

    def flush(self, batch: list[tuple[int, dict]], parse_errors: list[tuple[int, str, str]], rows_read: int) -> None:
        result = _write_batch(self.importer, batch) if batch else _BatchResult()
        report = self.report
        report.created += result.created
        report.updated += result.updated
        report.unchanged += result.unchanged
        report.processed_rows = rows_read
        rejected_lines = set()
        for line, field_name, message in sorted(parse_errors + result.errors, key=lambda e: e[0]):
            error = {"line": line, "field": field_name, "message": str(message)}
            rejected_lines.add(line)
            if len(report.errors) < STORED_ERRORS:
                report.errors.append(error)
            if self.on_error:
                self.on_error(error)
        report.error_count += len(rejected_lines)
        if self.on_progress:
            self.on_progress(report)


def _parse_batches(
    source: _CsvSource, importer: _Importer, batch_size: int
) -> Iterator[tuple[list[tuple[int, dict]], list[tuple[int, str, str]], int]]:
    """Yield ``(valid rows, problems of the invalid rows, rows read so far)`` batch by batch."""
    batch: list[tuple[int, dict]] = []
    parse_errors: list[tuple[int, str, str]] = []
    rows_read = 0
    width = len(source.header)
    for line, cells in source.rows():
        rows_read += 1
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
            yield batch, parse_errors, rows_read
            batch, parse_errors = [], []
    yield batch, parse_errors, rows_read


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


# --- Contacts -----------------------------------------------------------------------------------

# Fields compared with (and written to) existing contacts.
_CONTACT_FETCH = (
    "id",
    "external_id",
    "phone",
    "wecom_external_userid",
    "owner_id",
    "name",
    "email",
    "gender",
    "birthday",
    "region",
    "city",
    "occupation",
    "channel_id",
    "acquired_at",
    "intent_level",
    "marketing_consent",
    "opted_out_at",
)
_CONTACT_UPDATABLE = (
    "name",
    "phone",
    "email",
    "external_id",
    "wecom_external_userid",
    "gender",
    "birthday",
    "region",
    "city",
    "occupation",
    "channel_id",
    "acquired_at",
    "owner_id",
    "intent_level",
    "marketing_consent",
    "consent_at",
    "consent_source",
)
_KEY_FIELDS = ("external_id", "phone", "wecom_external_userid")


def _max_length(name: str) -> int:
    return Contact._meta.get_field(name).max_length


class _ContactImporter(_Importer):
    columns = CONTACT_COLUMNS
    required = [("external_id", "phone")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.channels = dict(Channel.objects.values_list("name", "pk"))
        self.tags: dict[tuple[str, str], tuple[int, int, bool]] = {
            (group, name): (pk, group_id, exclusive)
            for pk, name, group_id, group, exclusive in Tag.objects.values_list(
                "pk", "name", "group_id", "group__name", "group__exclusive"
            )
        }
        self.tags_by_id = {info[0]: info for info in self.tags.values()}
        # Parsing runs in its own thread and must not query: everything it looks up is loaded here.
        self.owners = dict(User.objects.filter(is_active=True).values_list(User.USERNAME_FIELD, "pk"))
        self.lengths = {name: _max_length(name) for name in ("name", "email", "region", "city", "occupation")}
        self.lengths.update({name: _max_length(name) for name in ("external_id", "consent_source")})
        self.lengths["wecom_external_userid"] = _max_length("wecom_external_userid")
        # Over the whole file: contact id → the line that claimed it, and keys an earlier line moved away
        # from a contact. A later row naming either is a duplicate, wherever the batch boundaries fall.
        self.claimed: dict[int, int] = {}
        self.released: dict[tuple[str, str], int] = {}
        self.contacts = _Inserter(Contact, use_copy=self.use_copy)
        self.links = _Inserter(ContactTag, use_copy=self.use_copy)
        self.handlers = self._handlers()

    # Parsing -----------------------------------------------------------------------------------

    def _owner(self, username: str) -> int:
        if self.restricted and username != self.actor.get_username():
            raise _CellError(
                _("You can only import contacts into your own book: leave owner empty or use your username.")
            )
        pk = self.owners.get(username)
        if pk is None:
            raise _CellError(_("No active staff member has the username “%(value)s”.") % {"value": username})
        return pk

    def _tags(self, raw: str) -> tuple[int, ...]:
        found, unknown, malformed, exclusive_groups = [], [], [], {}
        for part in raw.split("|"):
            part = part.strip()
            if not part:
                continue
            group, sep, name = part.replace("：", ":").partition(":")
            if not sep or not group.strip() or not name.strip():
                malformed.append(part)
                continue
            tag = self.tags.get((group.strip(), name.strip()))
            if tag is None:
                unknown.append(part)
                continue
            pk, group_id, exclusive = tag
            if exclusive:
                if exclusive_groups.get(group_id, pk) != pk:
                    raise _CellError(
                        _("Only one tag of the group “%(group)s” may be given.") % {"group": group.strip()}
                    )
                exclusive_groups[group_id] = pk
            if pk not in found:
                found.append(pk)
        if malformed:
            raise _CellError(_("Write tags as group:tag (got “%(value)s”).") % {"value": "|".join(malformed)})
        if unknown:
            raise _CellError(_("Unknown tag(s): %(tags)s. Create them first.") % {"tags": "|".join(unknown)})
        return tuple(found)

    def _handlers(self) -> list[tuple[int, str, Callable[[str, dict], None]]]:
        """One parser per column present in the file; each stores its value(s) in the row dict."""

        def text(name: str, key: str | None = None):
            max_length, key = self.lengths[name], key or name

            def handle(raw: str, values: dict) -> None:
                values[key] = _text(raw, max_length)

            return handle

        def email(raw: str, values: dict) -> None:
            value = _text(raw, self.lengths["email"])
            try:
                validate_email(value)
            except ValidationError:
                raise _CellError(_("“%(value)s” is not an email address.") % {"value": value}) from None
            values["email"] = value

        cn = settings.SCRM_DEFAULT_PHONE_REGION == "CN"

        def phone(raw: str, values: dict) -> None:
            values["phone"] = _phone(raw, cn)

        latest = self.now + dt.timedelta(days=1)

        def acquired_at(raw: str, values: dict) -> None:
            value = _datetime(raw, self.tz)
            if value > latest:
                raise _CellError(_("The acquisition time is in the future."))
            values["acquired_at"] = value

        today = timezone.localdate(self.now)

        def birthday(raw: str, values: dict) -> None:
            value = _date(raw)
            if value > today or value.year < 1900:
                raise _CellError(_("“%(value)s” is not a plausible birthday.") % {"value": raw})
            values["birthday"] = value

        def channel(raw: str, values: dict) -> None:
            pk = self.channels.get(raw)
            if pk is None:
                raise _CellError(_("Unknown channel “%(value)s”. Create the channel first.") % {"value": raw})
            values["channel_id"] = pk

        def owner(raw: str, values: dict) -> None:
            values["owner_id"] = self._owner(raw)

        def tags(raw: str, values: dict) -> None:
            values["_tags"] = self._tags(raw)

        def gender(raw: str, values: dict) -> None:
            values["gender"] = _GENDERS.get(raw) or _choice(raw, _GENDERS)

        def intent_level(raw: str, values: dict) -> None:
            values["intent_level"] = _INTENT.get(raw) or _choice(raw, _INTENT)

        def consent(raw: str, values: dict) -> None:
            values["_consent"] = _bool(raw)

        handlers = {
            "external_id": text("external_id"),
            "phone": phone,
            "name": text("name"),
            "email": email,
            "gender": gender,
            "birthday": birthday,
            "region": text("region"),
            "city": text("city"),
            "occupation": text("occupation"),
            "channel": channel,
            "acquired_at": acquired_at,
            "owner": owner,
            "intent_level": intent_level,
            "tags": tags,
            "marketing_consent": consent,
            "consent_source": text("consent_source", "_consent_source"),
            "wecom_external_userid": text("wecom_external_userid"),
        }
        return [(index, name, handlers[name]) for name, index in self.index.items()]

    def parse(self, line, cells):
        values: dict[str, Any] = {}
        problems = []
        count = len(cells)
        for index, name, handler in self.handlers:
            if index < count and (raw := cells[index]) and (raw := raw.strip()):
                try:
                    handler(raw, values)
                except _CellError as exc:
                    problems.append((name, exc.message))
        if "external_id" not in values and "phone" not in values:
            if not any(name in ("external_id", "phone") for name, _message in problems):
                problems.append(("external_id", _("Give an external_id or a phone number.")))
        return values, problems

    # Writing -----------------------------------------------------------------------------------

    def write(self, rows):
        result = _BatchResult()
        keys = {name: [v[name] for _line, v in rows if name in v] for name in _KEY_FIELDS}
        found = self._fetch(keys)
        by_key: dict[str, dict[str, dict]] = {name: {} for name in _KEY_FIELDS}
        for record in found:
            for name in _KEY_FIELDS:
                if record[name] is not None:
                    by_key[name][record[name]] = record
        tag_links: dict[int, dict[int, int]] = {}
        if found and any("_tags" in v for _line, v in rows):
            for link_id, contact_id, tag_id in self._fetch_links([record["id"] for record in found]):
                tag_links.setdefault(contact_id, {})[tag_id] = link_id

        claimed: dict[int, int] = {}  # this batch's claims (pending new contacts have negative ids)
        released: dict[tuple[str, str], int] = {}
        creates: list[tuple[int, dict]] = []
        updates: list[tuple[int, dict]] = []
        new_links: list[tuple[int, int]] = []  # (contact id, or -n for the n-th new contact; tag id)
        drop_links: list[int] = []

        def claimed_by(record: dict) -> int | None:
            return claimed.get(record["id"]) or self.claimed.get(record["id"])

        def taken(record: dict, message: str) -> str:
            line = claimed_by(record)
            return _("Duplicate of line %(line)s.") % {"line": line} if line else message

        moved_away = _(
            "Line %(line)s of this file moved this value away from another contact; import this row separately."
        )
        for line, v in rows:
            problems = []
            for name in _KEY_FIELDS:
                if name in v and (mover := released.get((name, v[name])) or self.released.get((name, v[name]))):
                    problems.append((name, moved_away % {"line": mover}))
            if problems:
                result.errors.extend((line, name, message) for name, message in problems)
                continue
            ext, phone, wecom = v.get("external_id"), v.get("phone"), v.get("wecom_external_userid")
            target = by_key["external_id"].get(ext) if ext is not None else None
            via = "external_id"
            if phone is not None:
                holder = by_key["phone"].get(phone)
                if holder is not None and holder is not target:
                    if target is None and (ext is None or holder["external_id"] is None):
                        target, via = holder, "phone"
                    else:
                        problems.append(("phone", taken(holder, _("This phone number belongs to another contact."))))
            if wecom is not None:
                holder = by_key["wecom_external_userid"].get(wecom)
                if holder is not None and holder is not target:
                    problems.append(
                        (
                            "wecom_external_userid",
                            taken(holder, _("This WeCom external_userid belongs to another contact.")),
                        )
                    )
            if target is not None:
                line_before = claimed_by(target)
                if line_before:
                    problems = [(via, _("Duplicate of line %(line)s.") % {"line": line_before})]
                elif self.restricted and target["owner_id"] != self.actor.pk:
                    problems = [(via, _("This contact is in another staff member's book; ask a manager to import it."))]
            if problems:
                result.errors.extend((line, name, message) for name, message in problems)
                continue

            if target is None:
                record = self._new_contact(v)
                pending = {"id": -(len(creates) + 1), **{name: record.get(name) for name in _KEY_FIELDS}}
                for name in _KEY_FIELDS:
                    if pending[name] is not None:
                        by_key[name][pending[name]] = pending
                claimed[pending["id"]] = line
                creates.append((line, record))
                new_links.extend((pending["id"], tag_id) for tag_id in v.get("_tags", ()))
                result.created += 1
                continue

            claimed[target["id"]] = line
            changes = self._changes(target, v)
            have = tag_links.get(target["id"], {})
            adding = [tag_id for tag_id in v.get("_tags", ()) if tag_id not in have]
            for tag_id in adding:
                _pk, group_id, exclusive = self._tag_info(tag_id)
                if exclusive:
                    drop_links.extend(
                        link for other, link in have.items() if other != tag_id and self._tag_info(other)[1] == group_id
                    )
                new_links.append((target["id"], tag_id))
            if not changes and not adding:
                result.unchanged += 1
                continue
            for name in ("phone", "wecom_external_userid"):
                if name in changes:
                    if target[name] is not None:
                        released[(name, target[name])] = line
                    by_key[name][changes[name]] = target
            updates.append((target["id"], changes))
            result.updated += 1

        self._update(updates, timezone.now())
        ids = self.contacts.insert([record for _line, record in creates])
        if drop_links:
            ContactTag.objects.filter(pk__in=drop_links).delete()
        actor_id = self.actor.pk if self.actor is not None else None
        self.links.insert(
            [
                {
                    "contact_id": ids[-pk - 1] if pk < 0 else pk,
                    "tag_id": tag_id,
                    "tagged_by_id": actor_id,
                    "source": ContactTag.Source.IMPORT,
                }
                for pk, tag_id in new_links
            ],
            want_ids=False,
        )

        def commit() -> None:
            for (line, _record), pk in zip(creates, ids, strict=True):
                self.claimed[pk] = line
            self.claimed.update((pk, line) for pk, line in claimed.items() if pk > 0)
            self.released.update(released)

        result.commit = commit
        return result

    def _fetch(self, keys: dict[str, list[str]]) -> list[dict]:
        """The stored contacts any of the keys name, as dicts of ``_CONTACT_FETCH``: one query."""
        if not any(keys.values()):
            return []
        if not self.use_copy:
            lookup = Q()
            for name, values in keys.items():
                if values:
                    lookup |= Q(**{f"{name}__in": values})
            return list(Contact.objects.filter(lookup).values(*_CONTACT_FETCH))
        # PostgreSQL: three array parameters instead of thousands of IN placeholders (far less to build).
        qn = connection.ops.quote_name
        columns = [Contact._meta.get_field(name).column for name in _CONTACT_FETCH]
        where = " OR ".join(f"{qn(Contact._meta.get_field(name).column)} = ANY(%s::text[])" for name in _KEY_FIELDS)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join(qn(c) for c in columns)} FROM {qn(Contact._meta.db_table)} WHERE {where}",
                [_text_array(keys[name]) for name in _KEY_FIELDS],
            )
            return [dict(zip(_CONTACT_FETCH, row, strict=True)) for row in cursor.fetchall()]

    def _fetch_links(self, contact_ids: list[int]) -> list[tuple[int, int, int]]:
        """(link id, contact id, tag id) of the contacts' tags."""
        if not self.use_copy:
            return list(ContactTag.objects.filter(contact_id__in=contact_ids).values_list("pk", "contact_id", "tag_id"))
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {qn('id')}, {qn('contact_id')}, {qn('tag_id')} FROM {qn(ContactTag._meta.db_table)} "
                f"WHERE {qn('contact_id')} = ANY(%s)",
                [contact_ids],
            )
            return cursor.fetchall()

    def _tag_info(self, tag_id: int) -> tuple[int, int, bool]:
        return self.tags_by_id[tag_id]

    def _new_contact(self, v: dict) -> dict:
        record = v.copy()
        for name in ("_tags", "_consent", "_consent_source"):
            record.pop(name, None)
        record.setdefault("acquired_at", self.now)
        if self.restricted:
            record["owner_id"] = self.actor.pk
        if v.get("_consent"):
            record["marketing_consent"] = True
            record["consent_at"] = self.now
            record["consent_source"] = v.get("_consent_source") or "import"
        return record

    def _changes(self, current: dict, v: dict) -> dict:
        changes = {}
        for name, value in v.items():
            if name[0] != "_" and name != "external_id" and current[name] != value:
                changes[name] = value
        if "external_id" in v and current["external_id"] is None:
            changes["external_id"] = v["external_id"]
        consent = v.get("_consent")
        if consent and not current["marketing_consent"] and current["opted_out_at"] is None:
            # Consent is recorded once, with its time and source. An opted-out contact is never
            # re-subscribed by an import: that takes the contact's own new consent.
            changes.update(
                marketing_consent=True, consent_at=self.now, consent_source=v.get("_consent_source") or "import"
            )
        elif consent is False and current["marketing_consent"]:
            changes["marketing_consent"] = False
        return changes

    def _update(self, updates: list[tuple[int, dict]], now: dt.datetime) -> None:
        if not updates:
            return
        if not self.use_copy:
            groups: dict[tuple[str, ...], list[Contact]] = {}
            for pk, changes in updates:
                groups.setdefault(tuple(sorted(changes)), []).append(Contact(pk=pk, updated_at=now, **changes))
            for names, objs in groups.items():
                Contact.objects.bulk_update(objs, [*names, "updated_at"])
            return
        # One UPDATE for the batch: each row carries a bit mask of the columns it changes, so a column
        # the row does not change keeps whatever is stored (even if it changed since we read it).
        qn = connection.ops.quote_name
        fields = [Contact._meta.get_field(name) for name in _CONTACT_UPDATABLE]
        columns = [f.column for f in fields]
        staging = f"import_contact_changes_{uuid.uuid4().hex[:12]}"
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE {qn(staging)} ON COMMIT DROP AS SELECT id, 0 AS mask, "
                f"{', '.join(qn(c) for c in columns)}, {qn('updated_at')} FROM {qn(Contact._meta.db_table)} WITH NO DATA"
            )
        rows = []
        for pk, changes in updates:
            mask = 0
            values = []
            for bit, f in enumerate(fields):
                if f.attname in changes:
                    mask |= 1 << bit
                    values.append(changes[f.attname])
                else:
                    values.append(None)
            rows.append((pk, mask, *values, now))
        _copy(
            staging,
            ["id", "mask", *columns, "updated_at"],
            rows,
            not_null=[f.column for f in fields if not f.null and isinstance(f, models.CharField)],
        )
        assignments = ", ".join(
            f"{qn(c)} = CASE WHEN s.mask & {1 << bit} <> 0 THEN s.{qn(c)} ELSE c.{qn(c)} END"
            for bit, c in enumerate(columns)
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {qn(Contact._meta.db_table)} AS c SET {assignments}, {qn('updated_at')} = s.{qn('updated_at')} "
                f"FROM {qn(staging)} AS s WHERE c.id = s.id"
            )
            cursor.execute(f"DROP TABLE {qn(staging)}")


# --- Purchases ----------------------------------------------------------------------------------


def _amount(raw: str) -> Decimal:
    text = raw.replace(",", "").replace("¥", "").replace("￥", "").strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _CellError(_("“%(value)s” is not an amount.") % {"value": raw}) from None
    if not value.is_finite() or value < 0:
        raise _CellError(_("Enter an amount of zero or more."))
    if value.as_tuple().exponent < -2:
        raise _CellError(_("“%(value)s” has more than two decimal places.") % {"value": raw})
    if value >= Decimal("1e10"):
        raise _CellError(_("“%(value)s” is too large.") % {"value": raw})
    return value.quantize(Decimal("0.01"))


def _items(raw: str) -> list[tuple[str, int]]:
    items = []
    for part in raw.split("|"):
        part = part.strip()
        if not part:
            continue
        sku, sep, quantity = part.partition("*")
        sku = sku.strip()
        if not sku:
            raise _CellError(_("Write items as SKU*quantity joined by | (got “%(value)s”).") % {"value": part})
        if sep:
            try:
                count = int(quantity.strip())
            except ValueError:
                count = 0
            if count < 1:
                raise _CellError(_("The quantity of %(sku)s must be a whole number of at least 1.") % {"sku": sku})
        else:
            count = 1
        items.append((sku, count))
    return items


class _PurchaseImporter(_Importer):
    columns = PURCHASE_COLUMNS
    required = [("external_order_id",), ("purchased_at",), ("amount",), ("contact_external_id", "contact_phone")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cn = settings.SCRM_DEFAULT_PHONE_REGION == "CN"
        self.seen: dict[str, int] = {}  # order id → the line that imported it, over the whole file
        self.products: dict[str, tuple[int, Decimal] | None] = {}
        self.visible = (
            Contact.objects.live().visible_to(self.actor) if self.restricted else Contact.objects.live()
        )
        self.purchases = _Inserter(Purchase, use_copy=self.use_copy)
        self.items = _Inserter(PurchaseItem, use_copy=self.use_copy)

    def parse(self, line, cells):
        values: dict[str, Any] = {}
        problems = []
        for name, raw in self.cells(cells):
            try:
                if name in ("external_order_id", "contact_external_id"):
                    values[name] = _text(raw, 64)
                elif name == "contact_phone":
                    values[name] = _phone(raw, self.cn)
                elif name == "purchased_at":
                    values[name] = _datetime(raw, self.tz)
                elif name == "amount":
                    values[name] = _amount(raw)
                elif name == "status":
                    values[name] = _choice(raw, _STATUSES)
                elif name == "items":
                    values[name] = _items(raw)
                elif name == "source":
                    values[name] = _text(raw, 32)
            except _CellError as exc:
                problems.append((name, exc.message))
        failed = {name for name, _message in problems}
        for name in ("external_order_id", "purchased_at", "amount"):
            if name not in values and name not in failed:
                problems.append((name, _("This field is required.")))
        if not {"contact_external_id", "contact_phone"} & (set(values) | failed):
            problems.append(("contact_external_id", _("Give contact_external_id or contact_phone.")))
        return values, problems

    def write(self, rows):
        result = _BatchResult()
        ext_ids = {v["contact_external_id"] for _line, v in rows if "contact_external_id" in v}
        phones = {v["contact_phone"] for _line, v in rows if "contact_external_id" not in v and "contact_phone" in v}
        by_ext = dict(self.visible.filter(external_id__in=ext_ids).values_list("external_id", "pk")) if ext_ids else {}
        by_phone = dict(self.visible.filter(phone__in=phones).values_list("phone", "pk")) if phones else {}
        orders = {
            order["external_order_id"]: order
            for order in Purchase.objects.filter(
                external_order_id__in=[v["external_order_id"] for _line, v in rows]
            ).values("id", "external_order_id", "contact_id", "amount", "status")
        }
        missing = {sku for _line, v in rows for sku, _count in v.get("items", ()) if sku not in self.products}
        if missing:
            self.products.update(dict.fromkeys(missing))
            self.products.update(
                (sku, (pk, price))
                for sku, pk, price in Product.objects.filter(sku__in=missing).values_list("sku", "pk", "price")
            )

        seen: dict[str, int] = {}
        new_purchases: list[dict] = []
        new_items: list[tuple[int, int, int, Decimal]] = []  # (index in new_purchases, product, quantity, price)
        refunds: list[int] = []
        affected: set[int] = set()
        now = timezone.now()
        for line, v in rows:
            order_id = v["external_order_id"]
            before = seen.get(order_id) or self.seen.get(order_id)
            if before:
                result.errors.append((line, "external_order_id", _("Duplicate of line %(line)s.") % {"line": before}))
                continue
            problems = []
            if "contact_external_id" in v:
                key, contact_id = "contact_external_id", by_ext.get(v["contact_external_id"])
                if contact_id is None:
                    problems.append((key, _("No contact you can see has this external ID.")))
            else:
                key, contact_id = "contact_phone", by_phone.get(v["contact_phone"])
                if contact_id is None:
                    problems.append((key, _("No contact you can see has this phone number.")))
            unknown = [sku for sku, _count in v.get("items", ()) if self.products[sku] is None]
            if unknown:
                problems.append(("items", _("Unknown product SKU(s): %(skus)s.") % {"skus": ", ".join(unknown)}))
            existing = orders.get(order_id)
            if existing is not None and contact_id is not None:
                if existing["contact_id"] != contact_id:
                    problems.append(
                        (key, _("Order %(id)s is already recorded for another contact.") % {"id": order_id})
                    )
                if existing["amount"] != v["amount"]:
                    problems.append(
                        (
                            "amount",
                            _("Order %(id)s is already recorded with amount %(amount)s.")
                            % {"id": order_id, "amount": existing["amount"]},
                        )
                    )
            if problems:
                result.errors.extend((line, name, message) for name, message in problems)
                continue
            seen[order_id] = line
            status = v.get("status", Purchase.Status.PAID)
            if existing is not None:
                # Same order again: nothing changes, except that a refund of a paid order is applied.
                if status == Purchase.Status.REFUNDED and existing["status"] == Purchase.Status.PAID:
                    refunds.append(existing["id"])
                    affected.add(contact_id)
                    result.updated += 1
                else:
                    result.unchanged += 1
                continue
            for sku, count in v.get("items", ()):
                product_id, price = self.products[sku]
                new_items.append((len(new_purchases), product_id, count, price))
            new_purchases.append(
                {
                    "contact_id": contact_id,
                    "external_order_id": order_id,
                    "purchased_at": v["purchased_at"],
                    "amount": v["amount"],
                    "status": status,
                    "refunded_at": now if status == Purchase.Status.REFUNDED else None,
                    "source": v.get("source", ""),
                }
            )
            affected.add(contact_id)
            result.created += 1

        if affected:
            # Purchases of one contact are written one writer at a time (as purchase_record does), so the
            # facts recomputed below see every committed purchase.
            list(
                Contact.objects.select_for_update()
                .filter(pk__in=sorted(affected))
                .order_by("pk")
                .values_list("pk", flat=True)
            )
        ids = self.purchases.insert(new_purchases)
        self.items.insert(
            [
                {"purchase_id": ids[index], "product_id": product_id, "quantity": count, "unit_price": price}
                for index, product_id, count, price in new_items
            ],
            want_ids=False,
        )
        if refunds:
            Purchase.objects.filter(pk__in=refunds, status=Purchase.Status.PAID).update(
                status=Purchase.Status.REFUNDED, refunded_at=now
            )
        contact_facts_refresh(contact_ids=affected)
        result.commit = lambda: self.seen.update(seen)
        return result


# --- Jobs (API and dashboard) -------------------------------------------------------------------


def _estimate_rows(upload) -> int:
    lines = sum(chunk.count(b"\n") for chunk in upload.chunks())
    return max(0, lines - 1)


def import_job_create(*, kind: str, upload, actor) -> ImportJob:
    """Store an uploaded CSV as a queued import and hand it to a worker once the job row is committed."""
    from .tasks import import_job_process

    if kind not in ImportJob.Kind.values:
        raise ValidationError({"kind": [_("Choose one of: %(kinds)s.") % {"kinds": ", ".join(ImportJob.Kind.values)}]})
    if upload is None or not upload.size:
        raise ValidationError({"file": [_("The file is empty.")]})
    job = ImportJob(
        kind=kind,
        filename=(upload.name or "").replace("\\", "/").rsplit("/", 1)[-1][:200],
        created_by=actor,
        total_rows=_estimate_rows(upload),
    )
    # The stored name is ours: the user's file name is only shown, never used as a path.
    job.file.save(f"{uuid.uuid4().hex}.csv", upload, save=False)
    with transaction.atomic():
        job.save()
        transaction.on_commit(lambda: import_job_process.delay(job.pk))
    return job


def _summary(report: ImportReport) -> str:
    message = _(
        "%(rows)s rows: %(created)s created, %(updated)s updated, %(unchanged)s unchanged, %(rejected)s rejected."
    ) % {
        "rows": report.processed_rows,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": report.error_count,
    }
    if len({error["line"] for error in report.errors}) < report.error_count:
        message += " " + _("Only the first %(count)s problems are listed.") % {"count": len(report.errors)}
    return message


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Run a queued import. Claims the job first (QUEUED → RUNNING in one conditional update): a second
    delivery of the same task finds nothing to claim and does nothing. Returns the finished job, or
    ``None`` when there was nothing to claim."""
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING, processed_rows=0, message=""
    )
    if not claimed:
        return None
    job = ImportJob.objects.select_related("created_by").get(pk=job_id)
    jobs = ImportJob.objects.filter(pk=job_id)
    actor = job.created_by
    if actor is None or not actor.is_active:
        return import_job_fail(
            job_id=job_id, message=_("The user who uploaded this file no longer exists or is inactive.")
        )

    def progress(report: ImportReport) -> None:
        jobs.update(
            processed_rows=report.processed_rows,
            created_count=report.created,
            updated_count=report.updated,
            unchanged_count=report.unchanged,
            error_count=report.error_count,
        )

    try:
        with job.file.open("rb") as fileobj:
            report = import_csv(
                kind=job.kind,
                fileobj=fileobj,
                actor=actor,
                on_start=lambda total: jobs.update(total_rows=total),
                on_progress=progress,
            )
    except ImportFileError as exc:
        return import_job_fail(job_id=job_id, message=str(exc))
    except (OperationalError, InterfaceError):
        # A lost database connection: give the job back so that the task's retry can claim it again.
        # Running it again is safe, rows already committed come out unchanged.
        if not connection.in_atomic_block:
            connection.close()
        try:
            jobs.filter(status=ImportJob.Status.RUNNING).update(status=ImportJob.Status.QUEUED)
        except (OperationalError, InterfaceError):
            logger.exception("could not give import job %s back to the queue", job_id)
        raise
    except Exception:
        logger.exception("import job %s failed", job_id)
        import_job_fail(
            job_id=job_id,
            message=_(
                "The import stopped because of an internal error. Rows of the batches already committed stay imported."
            ),
        )
        raise
    jobs.update(
        status=ImportJob.Status.DONE,
        total_rows=report.total_rows,
        processed_rows=report.processed_rows,
        created_count=report.created,
        updated_count=report.updated,
        unchanged_count=report.unchanged,
        error_count=report.error_count,
        errors=report.errors,
        message=_summary(report),
        finished_at=timezone.now(),
    )
    return ImportJob.objects.get(pk=job_id)


def import_job_fail(*, job_id: int, message: str) -> ImportJob | None:
    """Mark a job failed with a message for its owner (a finished job stays finished)."""
    ImportJob.objects.filter(pk=job_id).exclude(status=ImportJob.Status.DONE).update(
        status=ImportJob.Status.FAILED, message=message, finished_at=timezone.now()
    )
    return ImportJob.objects.filter(pk=job_id).first()


def import_jobs_sweep(*, requeue_after: dt.timedelta = dt.timedelta(minutes=10)) -> dict[str, int]:
    """Periodic clean-up, harmless when run twice at once. Jobs still QUEUED a while after they were
    created may have lost their enqueue (a crash between commit and ``on_commit``): they are enqueued
    again (a duplicate delivery does nothing, the claim decides). Jobs RUNNING far longer than any task
    may run lost their worker: they are marked failed (re-uploading the file is safe)."""
    from .tasks import import_job_process

    now = timezone.now()
    queued = list(
        ImportJob.objects.filter(status=ImportJob.Status.QUEUED, created_at__lt=now - requeue_after).values_list(
            "pk", flat=True
        )
    )
    for pk in queued:
        import_job_process.delay(pk)
    failed = ImportJob.objects.filter(status=ImportJob.Status.RUNNING, created_at__lt=now - STALE_AFTER).update(
        status=ImportJob.Status.FAILED,
        finished_at=now,
        message=_(
            "The import stopped unexpectedly (its worker was lost). Upload the file again: rows already imported will come out unchanged."
        ),
    )
    return {"requeued": len(queued), "failed": failed}
