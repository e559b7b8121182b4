"""Reading an import file: the encoding, the CSV rows with their line numbers, the header, and the parsers
of single cells. Nothing here queries the database (parsing runs in its own thread)."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from phonenumbers import PhoneMetadata

from scrm import limits
from scrm.csv_writer import FORMULA_START

from ..phones import _CN_MOBILE, _SEPARATORS, normalize_phone

_TRUE = frozenset({"true", "1", "yes", "y", "t", "是", "同意"})
_FALSE = frozenset({"false", "0", "no", "n", "f", "否", "不同意"})
_LOOSE_DATETIME = re.compile(
    r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?$"
)


class ImportFileError(Exception):
    """The file as a whole cannot be imported (header, encoding, CSV syntax): nothing is written."""


class _CellError(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


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
    # An export defuses a cell a spreadsheet would run as a formula with a leading quote: take it off.
    if raw[0] == "'" and len(raw) > 1 and raw[1] in FORMULA_START:
        raw = raw[1:]
    if len(raw) > max_length:
        raise _CellError(
            _("At most %(max)d characters (this has %(length)d).") % {"max": max_length, "length": len(raw)}
        )
    try:
        limits.text_check(raw)
    except ValidationError:
        raise _CellError(_("Contains a NUL character.")) from None
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
    if not limits.date_in_range(value):
        raise _CellError(
            _("“%(value)s” is outside %(min)s–%(max)s.")
            % {"value": raw, "min": limits.DATE_MIN.isoformat(), "max": limits.DATE_MAX.isoformat()}
        )
    return value


def _date(raw: str) -> dt.date:
    value = _date_parse(raw)
    if not limits.date_in_range(value):
        raise _CellError(
            _("“%(value)s” is outside %(min)s–%(max)s.")
            % {"value": raw, "min": limits.DATE_MIN.isoformat(), "max": limits.DATE_MAX.isoformat()}
        )
    return value


def _date_parse(raw: str) -> dt.date:
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
