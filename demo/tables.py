"""The tables the generator fills: their column layouts, how values are spelled for each database, and the
writers that load the rows (``COPY`` from a second thread on PostgreSQL, ``executemany`` elsewhere)."""

from __future__ import annotations

import io
import queue
import threading

from django.db import connection

from communities.models import Community, Membership
from contacts.models import Contact, ContactTag, Purchase, PurchaseItem, Touchpoint

# --- Row formats ------------------------------------------------------------------------------


class RowFormat:
    """How values are spelled for one database: rows are tuples of strings (plus NULL), which both
    COPY's text format and SQLite's type affinity read back exactly as Django writes them."""

    def __init__(self, vendor: str) -> None:
        postgres = vendor == "postgresql"
        self.null = "\\N" if postgres else None
        self.true, self.false = ("t", "f") if postgres else ("1", "0")
        # Django stores datetimes on SQLite as naive UTC text.
        self.tz_suffix = "+00" if postgres else ""


def cents(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


# --- Table layouts ----------------------------------------------------------------------------

COLUMNS = {
    "contacts_contact": (
        "id",
        "name",
        "phone",
        "email",
        "external_id",
        "wecom_external_userid",
        "wechat_unionid",
        "gender",
        "birthday",
        "region",
        "city",
        "occupation",
        "channel_id",
        "acquired_at",
        "owner_id",
        "intent_level",
        "stage",
        "referred_by_id",
        "attributes",
        "marketing_consent",
        "consent_at",
        "consent_source",
        "opted_out_at",
        "erased_at",
        "merged_into_id",
        "first_purchase_at",
        "last_purchase_at",
        "purchase_count",
        "total_spent",
        "last_interaction_at",
        "referral_count",
        "created_at",
        "updated_at",
    ),
    "communities_community": (
        "id",
        "name",
        "kind",
        "platform",
        "owner_id",
        "capacity",
        "rules",
        "status",
        "external_chat_id",
        "created_at",
    ),
    "communities_community_admins": ("community_id", "user_id"),
    "contacts_purchase": (
        "id",
        "contact_id",
        "external_order_id",
        "purchased_at",
        "amount",
        "status",
        "refunded_at",
        "source",
        "created_at",
    ),
    "contacts_purchaseitem": ("id", "purchase_id", "product_id", "quantity", "unit_price"),
    "contacts_touchpoint": (
        "id",
        "contact_id",
        "medium",
        "kind",
        "occurred_at",
        "staff_id",
        "community_id",
        "metadata",
    ),
    "communities_membership": (
        "id",
        "community_id",
        "contact_id",
        "role",
        "joined_at",
        "left_at",
        "join_source",
        "invited_by_id",
    ),
    "contacts_contacttag": ("id", "contact_id", "tag_id", "tagged_by_id", "source", "created_at"),
}
MODELS = {
    "contacts_contact": Contact,
    "communities_community": Community,
    "contacts_purchase": Purchase,
    "contacts_purchaseitem": PurchaseItem,
    "contacts_touchpoint": Touchpoint,
    "communities_membership": Membership,
    "contacts_contacttag": ContactTag,
}
# Bulk tables whose secondary indexes and foreign keys are rebuilt around a PostgreSQL load.
BULK_TABLES = (
    "contacts_contact",
    "contacts_purchase",
    "contacts_purchaseitem",
    "contacts_touchpoint",
    "communities_membership",
    "contacts_contacttag",
)


def check_layouts() -> None:
    """Fail early and clearly if a model gained a column the generator does not fill."""
    for table, model in MODELS.items():
        columns = {f.column for f in model._meta.concrete_fields}
        mine = set(COLUMNS[table])
        missing = sorted(
            f.column
            for f in model._meta.concrete_fields
            if f.column not in mine and not f.null and not f.has_db_default()
        )
        if mine - columns or missing:
            raise RuntimeError(
                f"demo/ is out of date for {table}: unknown columns {sorted(mine - columns)}, "
                f"unfilled required columns {missing}"
            )


# --- Writers ----------------------------------------------------------------------------------


class SqlWriter:
    """executemany in the current transaction (SQLite, or any database without COPY)."""

    def __init__(self) -> None:
        self.cursor = connection.cursor()

    def write(self, batches: list[tuple[str, list[tuple]]]) -> None:
        for table, rows in batches:
            if not rows:
                continue
            columns = COLUMNS[table]
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
            for start in range(0, len(rows), 5000):
                self.cursor.executemany(sql, rows[start : start + 5000])

    def close(self) -> None:
        self.cursor.close()


class CopyWriter:
    """COPY from a second thread, so the next chunk is made while this one is stored. psycopg2 lets
    go of the GIL while it sends, and the connection may be shared by threads; the main thread does
    not touch it until ``close``."""

    def __init__(self) -> None:
        connection.ensure_connection()
        self.raw = connection.connection
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="seed-demo-copy", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        cursor = self.raw.cursor()
        try:
            while True:
                batches = self.queue.get()
                if batches is None:
                    return
                if self.error is not None:
                    continue
                for table, rows in batches:
                    if not rows:
                        continue
                    data = ("\n".join(map("\t".join, rows)) + "\n").encode()
                    columns = ", ".join(COLUMNS[table])
                    cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", io.BytesIO(data), size=1 << 20)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
            while self.queue.get() is not None:  # drain so the producer never blocks
                pass
        finally:
            cursor.close()

    def write(self, batches: list[tuple[str, list[tuple]]]) -> None:
        if self.error is not None:
            self.close()
        self.queue.put(batches)

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if self.error is not None:
            raise self.error


def pg_secondary_schema(cursor) -> tuple[list[str], list[str]]:
    """Statements that drop, and statements that recreate, the non-unique indexes and the foreign keys
    of the bulk tables, read from the catalog (so indexes added later by migrations are included)."""
    cursor.execute(
        """
        SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid)
        FROM pg_constraint c
        WHERE c.contype = 'f' AND c.conrelid = ANY(%s::regclass[])
        ORDER BY 1, 2
        """,
        [list(BULK_TABLES)],
    )
    foreign_keys = cursor.fetchall()
    cursor.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisunique AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        ORDER BY 1
        """,
        [list(BULK_TABLES)],
    )
    indexes = cursor.fetchall()
    drop = [f"ALTER TABLE {table} DROP CONSTRAINT {name}" for table, name, _d in foreign_keys]
    drop += [f"DROP INDEX {name}" for name, _d in indexes]
    create = [definition for _name, definition in indexes]
    create += [f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}" for table, name, definition in foreign_keys]
    return drop, create


# --- Ids ---------------------------------------------------------------------------------------


def next_ids(tables) -> dict[str, int]:
    ids = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT MAX(id) FROM {table}")
            current = cursor.fetchone()[0] or 0
            if connection.vendor == "postgresql":
                cursor.execute(f"SELECT last_value, is_called FROM {pg_sequence(cursor, table)}")
                last_value, is_called = cursor.fetchone()
                current = max(current, last_value if is_called else last_value - 1)
            ids[table] = current + 1
    return ids


def pg_sequence(cursor, table: str) -> str:
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    return cursor.fetchone()[0]
