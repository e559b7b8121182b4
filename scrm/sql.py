"""Set-based SQL the ORM does not write, for every app: one ``INSERT … SELECT … ON CONFLICT DO NOTHING``
builder.

Materialising many rows from a query (a broadcast's deliveries, an automation's runs, its follow-up tasks)
is one statement here instead of a loop of ``bulk_create`` calls: the rows never travel through Python,
and a unique constraint on the target makes running the same statement twice write each row once.

Works on PostgreSQL and SQLite (3.24 or later, for ``ON CONFLICT``). Nothing here imports app code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet


def insert_select(model: type[Model], rows: QuerySet, columns: Mapping[str, Any]) -> int:
    """``INSERT INTO <model's table> (columns) SELECT … FROM rows ON CONFLICT DO NOTHING`` in one statement;
    returns how many rows were written (rows that would break a unique constraint are skipped).

    ``columns`` maps the target's fields (``"contact_id"``, ``"status"``) to expressions over ``rows``:
    ``F("pk")``, ``Value(now)``, or an annotation of ``rows``. For example, one pending delivery per
    contact of a queryset::

        insert_select(Delivery, contacts, {"broadcast_id": Value(broadcast.pk), "contact_id": F("pk"), ...})

    The SELECT is compiled by the ORM with its parameters bound separately: no value is ever spliced into
    the statement's text. It runs in the caller's transaction, on the database ``rows`` reads from.
    """
    aliases = {name: f"c_{name}" for name in columns}
    select = rows.annotate(**{aliases[name]: expression for name, expression in columns.items()})
    select = select.values(*aliases.values()).order_by()
    select_sql, params = select.query.get_compiler(using=rows.db).as_sql()
    connection = connections[rows.db]
    quote = connection.ops.quote_name
    target = ", ".join(quote(model._meta.get_field(name).column) for name in columns)
    source = ", ".join(f"s.{quote(alias)}" for alias in aliases.values())
    # "WHERE true": without a WHERE, SQLite would read "ON CONFLICT" as part of the SELECT's join (its
    # documented parsing ambiguity of INSERT … SELECT … ON CONFLICT); PostgreSQL does not mind it.
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({target}) "
        f"SELECT {source} FROM ({select_sql}) s WHERE true "
        "ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(cursor.rowcount, 0)
