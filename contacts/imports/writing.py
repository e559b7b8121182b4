"""Writing a batch set-based: ``COPY`` on PostgreSQL (values travel as CSV data, never as SQL text),
``bulk_create`` elsewhere."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.db import connection, models
from django.utils import timezone


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
    # COPY's own input format, read by the database only: no BOM and no formula defusing, which
    # scrm.csv_writer adds to the CSV files people open in a spreadsheet.
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
