"""``manage.py import_purchases FILE``: import a purchases CSV synchronously, through the same service as
the API and the dashboard (contacts.imports)."""

from __future__ import annotations

from contacts.imports import PURCHASE_COLUMNS

from .import_contacts import Command as ImportContactsCommand


class Command(ImportContactsCommand):
    help = (
        "Import purchases from a CSV file (UTF-8 with or without BOM, or GBK). Idempotent on external_order_id: "
        "an order already recorded is left as it is (a refund is applied; a different contact or amount is "
        "rejected). The buyers' facts and lifecycle stage are brought up to date. "
        "Exit status: 0 all rows imported, 1 the file was refused (header, encoding), 2 some rows were rejected."
    )
    kind = "purchases"
    columns = PURCHASE_COLUMNS
    columns_note = (
        "Required: external_order_id, purchased_at, amount, and contact_external_id or contact_phone. "
        "An operator (--as) can only import purchases of contacts they own."
    )
