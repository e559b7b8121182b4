"""The RFM layers of the filtered contacts, as stored by the last scores refresh."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Sum

from contacts.models import Purchase

from ..models import Layer
from .numbers import divide, fraction, money
from .scope import PAID, Filters, contact_scope_q, in_period, scoped_contacts

LAYER_ORDER = (Layer.CORE, Layer.REPEAT, Layer.FIRST_TIME, Layer.INTENT_ONLY, Layer.DORMANT, Layer.NONE)


@dataclass(frozen=True)
class LayerRow:
    """One RFM layer (``None`` = contacts not scored yet): revenue is all paid spend to date."""

    layer: str | None
    contacts: int
    revenue: Decimal
    average_spend: Decimal | None
    revenue_in_period: Decimal


def rfm_layers(filters: Filters) -> list[LayerRow]:
    """Per stored layer (``ContactScore.layer``, as of the last scores refresh) of the filtered contacts:
    contacts, revenue to date (Σ total_spent), average spend (revenue / contacts) and revenue in P.
    Contacts not scored yet are the row with layer ``None``. Two queries."""
    per_layer = {
        row["score__layer"]: row
        for row in scoped_contacts(filters)
        .values("score__layer")
        .annotate(contacts=Count("pk"), revenue=Sum("total_spent"))
        .order_by()
    }
    revenue_in_p = dict(
        Purchase.objects.filter(contact_scope_q(filters), in_period("purchased_at", filters))
        .filter(status=PAID)
        .values("contact__score__layer")
        .annotate(revenue=Sum("amount"))
        .order_by()
        .values_list("contact__score__layer", "revenue")
    )
    rows = []
    for layer in (*LAYER_ORDER, None):
        row = per_layer.get(layer)
        if layer is None and row is None:
            continue
        contacts = row["contacts"] if row else 0
        revenue = fraction(row["revenue"] if row else None)
        rows.append(
            LayerRow(
                layer=layer.value if layer is not None else None,
                contacts=contacts,
                revenue=money(revenue),
                average_spend=money(divide(revenue, contacts)),
                revenue_in_period=money(fraction(revenue_in_p.get(layer))),
            )
        )
    return rows
