"""Reading an import file: the encoding, the CSV rows with their line numbers, the header, and the parsers
of single cells. Nothing here queries the database (parsing runs in its own thread)."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
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

_UTF8, _GB18030 = "utf-8", "gb18030"


def _strict_decodes(fileobj: IO[bytes], encoding: str) -> bool:
    """Whether the whole file decodes strictly in ``encoding`` (one binary pass, 1 MiB at a time)."""
    fileobj.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        while chunk := fileobj.read(1 << 20):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        fileobj.seek(0)
    return True


def _physical_lines(fileobj: IO[bytes]) -> Iterator[bytes]:
    """The file's lines as bytes with their ends, split where ``newline=""`` text splits them (\\n, \\r,
    \\r\\n), so that the line numbers are the ``csv`` module's. Neither UTF-8 nor GB18030 uses these bytes
    inside a character, so a line can be decoded on its own."""
    for chunk in iter(fileobj.readline, b""):
        yield from chunk.splitlines(keepends=True)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode(_UTF8)
    except UnicodeDecodeError:
        return False
    return True


def _choose_encoding(fileobj: IO[bytes]) -> tuple[str, bool]:
    """``(encoding, per_line)``: the encoding of the file, and whether some of its lines are not in it and
    must be decoded (and rejected) line by line.

    A BOM decides (UTF-8, UTF-16). Otherwise a file that is strict UTF-8 is UTF-8, and one whose non-ASCII
    lines are none of them UTF-8 is GBK (read as GB18030, its superset). A file mixing both is read in the
    encoding of most of its non-ASCII lines; the other lines are rejected, never decoded into garbage."""
    head = fileobj.read(4)
    fileobj.seek(0)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        if _strict_decodes(fileobj, "utf-16"):
            return "utf-16", False
        raise ImportFileError(
            _("The file starts as UTF-16 text but is not valid UTF-16. Save it again as “CSV UTF-8”.")
        )
    encoding = "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else _UTF8
    if _strict_decodes(fileobj, encoding):
        return encoding, False
    utf8_lines = other_lines = 0
    for raw in _physical_lines(fileobj):
        if not raw.isascii():
            if _is_utf8(raw):
                utf8_lines += 1
            else:
                other_lines += 1
    fileobj.seek(0)
    if encoding == "utf-8-sig" or utf8_lines >= other_lines:
        return encoding, True
    if utf8_lines == 0 and _strict_decodes(fileobj, _GB18030):
        return _GB18030, False
    return _GB18030, True


class _LineDecoder:
    """Decodes a file line by line in its chosen encoding (for files that mix encodings). A line that is
    not valid in that encoding — or, in a GBK file, a non-ASCII line that is valid UTF-8, which GB18030
    would silently turn into other Chinese characters — is recorded in ``bad`` and decoded in the other
    encoding (only so that the rejected-rows report shows it as written)."""

    def __init__(self, fileobj: IO[bytes], encoding: str) -> None:
        self.fileobj = fileobj
        self.encoding = encoding
        self.bad: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        gbk = self.encoding == _GB18030
        for number, raw in enumerate(_physical_lines(self.fileobj), start=1):
            encoding = "utf-8-sig" if number == 1 and self.encoding == "utf-8-sig" else self.encoding
            if gbk and not raw.isascii() and _is_utf8(raw):
                self.bad[number] = _("it is UTF-8 while the rest of the file is GBK")
                yield raw.decode(_UTF8)
                continue
            try:
                yield raw.decode(encoding)
            except UnicodeDecodeError:
                if gbk:
                    self.bad[number] = _("it is neither GBK nor UTF-8 text")
                    yield raw.decode(encoding, "replace")
                else:
                    self.bad[number] = _("it is not UTF-8 like the rest of the file (it looks like GBK)")
                    yield raw.decode(_GB18030, "replace")


def _clean_header(name: str) -> str:
    return name.strip().strip("\ufeff").strip().lower()


class _CsvSource:
    """The rows of a CSV file with their line numbers (the header is line 1).

    Opening it reads the whole file twice before any row is handed out, streaming (constant memory): once in
    binary to choose the encoding, once through the ``csv`` module to check the syntax of every line and
    count the rows. A file that is not valid CSV is refused as a whole, before anything is written."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self.fileobj = fileobj
        self.encoding, self.per_line = _choose_encoding(fileobj)
        self.text: io.TextIOWrapper | None = None
        try:
            self._open()
            self.row_count = self._validate()
            self._open()
        except BaseException:
            self.detach()
            raise
        self.line_breaks = self.row_count  # the exact number of rows now (was: the file's line breaks)

    def _open(self) -> None:
        """(Re)start reading at the header."""
        self.detach()
        self.fileobj.seek(0)
        if self.per_line:
            self.lines = _LineDecoder(self.fileobj, self.encoding)
            lines: Iterator[str] = iter(self.lines)
        else:
            self.lines = None
            self.text = io.TextIOWrapper(self.fileobj, encoding=self.encoding, newline="")
            lines = self.text
        first = next(lines, "")
        if self.lines is not None and 1 in self.lines.bad:
            raise ImportFileError(
                _("Line 1 (the header) cannot be read: %(reason)s. Save the whole file in one encoding (“CSV UTF-8”).")
                % {"reason": self.lines.bad[1]}
            )
        counts = {d: first.count(d) for d in (",", "\t", ";")}
        delimiter = max(counts, key=counts.get) if any(counts.values()) else ","
        self.reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter)
        try:
            header = next(self.reader, None)
        except csv.Error as exc:
            raise ImportFileError(_("Line 1 is not valid CSV: %(error)s") % {"error": exc}) from exc
        if not header or not any(cell.strip() for cell in header):
            raise ImportFileError(_("The file is empty: the first line must name the columns."))
        self.header = [_clean_header(cell) for cell in header]

    def _validate(self) -> int:
        """Parse every row once (CSV syntax only) and return how many rows are not blank."""
        return sum(1 for _row in self.rows())

    def detach(self) -> None:
        if self.text is not None:
            self.text.detach()
            self.text = None

    def rows(self) -> Iterator[tuple[int, list[str], str | None]]:
        """``(first line, cells, problem)`` of every row that is not blank; ``problem`` is ``None`` unless the
        row cannot be read (a line in another encoding than the file's)."""
        reader = self.reader
        bad = self.lines.bad if self.lines is not None else None
        end = reader.line_num
        while True:
            start = end + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ImportFileError(
                    _("Line %(line)s is not valid CSV: %(error)s. Nothing was imported.")
                    % {"line": start, "error": exc}
                ) from exc
            end = reader.line_num
            problem = None
            if bad:
                reasons = [bad.pop(n) for n in range(start, end + 1) if n in bad]
                if reasons:
                    problem = _(
                        "Line %(line)s was not imported: %(reason)s. Save the whole file in one encoding (“CSV UTF-8”)."
                    ) % {"line": start, "reason": reasons[0]}
            if cells and any(cells):
                yield start, cells, problem


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
