"""The rejected-rows CSV: every problem of an import with the original row beside it, for the dashboard's
download, the API and ``--errors-csv``. Written by ``scrm.csv_writer`` with every cell that came from the
file or quotes it (the message, the original cells) marked as free text, so that a spreadsheet never runs
one as a formula (``=cmd|' /C calc'!A0``, ``+``, ``-``, ``@``, a leading tab or carriage return)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from scrm.csv_writer import Text, csv_chunks

from .contacts import CONTACT_COLUMNS
from .purchases import PURCHASE_COLUMNS

_COLUMNS = {"contacts": list(CONTACT_COLUMNS), "purchases": list(PURCHASE_COLUMNS)}


def rejected_rows_header(kind: str) -> list[str]:
    """``line, field, message``, then the columns of the kind in their documented order (then any cells
    beyond the file's header, without a name)."""
    return ["line", "field", "message", *_COLUMNS[kind]]


def rejected_row(kind: str, error: dict[str, Any]) -> list[Any]:
    """One problem as CSV cells: its line, field and message, then the original row's cells."""
    row = error.get("row") or {}
    cells: list[Any] = [error.get("line", ""), Text(error.get("field", "")), Text(error.get("message", ""))]
    cells += [Text(row.get(name, "")) for name in _COLUMNS[kind]]
    cells += [Text(value) for value in row.get("extra", ())]
    return cells


def rejected_rows_csv(*, kind: str, errors: Iterable[dict[str, Any]], header: bool = True) -> Iterator[str]:
    """The rejected-rows CSV as text pieces (the UTF-8 BOM and the header first unless ``header=False``)."""
    rows = (rejected_row(kind, error) for error in errors)
    if header:
        return csv_chunks(_with_header(kind, rows))
    return csv_chunks(rows, bom=False)


def _with_header(kind: str, rows: Iterator[list[Any]]) -> Iterator[list[Any]]:
    yield rejected_rows_header(kind)
    yield from rows
