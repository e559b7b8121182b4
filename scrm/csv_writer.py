"""The one CSV writer of the project: every CSV the product hands out (exports, reports, rejected
import rows) is written here.

- UTF-8 with a BOM, so that Excel opens Chinese text right, and CRLF line ends.
- Formula neutralisation (CSV injection): a free-text cell starting with ``= + - @`` (or a tab, a
  carriage return or a quote) gets a leading quote, which the imports remove again. Only cells marked
  as free text (``Text``) or written through ``defuse`` are changed; labels written by the code are not.
- Streamed: ``csv_chunks`` yields a piece every ``flush_every`` rows, so a long table never sits in
  memory and a ``StreamingHttpResponse`` or a file can take it piece by piece.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from django.utils import timezone

BOM = "\ufeff"
# Cells starting with one of these would be read as a formula by a spreadsheet.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


class Text(str):
    """Free text from the data (names of contacts, channels, communities): defused against spreadsheet
    formulas when written. Labels written by the code are plain ``str`` and are left alone."""


def defuse(value: str) -> str:
    """``value`` with a leading quote when a spreadsheet would read it as a formula."""
    return "'" + value if value and value.startswith(FORMULA_START) else value


def cell(value: Any) -> str:
    """A value as the text of a CSV cell: ``Text`` defused, money with two decimals, times local."""
    if value is None:
        return ""
    if isinstance(value, Text):
        return defuse(str(value))
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def csv_chunks(rows: Iterable[Iterable[Any]], *, flush_every: int = 500, bom: bool = True) -> Iterator[str]:
    """``rows`` (each an iterable of cells, passed through ``cell``) as CSV text, the BOM first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if bom:
        buffer.write(BOM)
    for count, row in enumerate(rows, start=1):
        writer.writerow([cell(value) for value in row])
        if count % flush_every == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
