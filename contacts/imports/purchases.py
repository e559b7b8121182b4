"""The purchases import: orders (with their items) recorded once per external_order_id, for contacts the
importing user can see; the buyers' facts and lifecycle stage are refreshed in the same transaction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..models import Contact, Product, Purchase, PurchaseItem
from ..services import contact_facts_refresh
from .driver import _BatchResult, _Importer
from .reading import _CellError, _choice, _datetime, _phone, _text
from .writing import _Inserter

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
_STATUSES = {"paid": "paid", "refunded": "refunded", "已支付": "paid", "已退款": "refunded"}


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


@dataclass
class _PurchaseBatch:
    """One batch on its way from rows to writes."""

    by_ext: dict[str, int]  # buyer's external id → contact id
    by_phone: dict[str, int]
    orders: dict[str, dict]  # recorded orders the batch names, by external_order_id
    now: dt.datetime
    result: _BatchResult = field(default_factory=_BatchResult)
    seen: dict[str, int] = field(default_factory=dict)  # order id → line, in this batch
    new_purchases: list[dict] = field(default_factory=list)
    new_items: list[tuple[int, int, int, Decimal]] = field(
        default_factory=list
    )  # (purchase index, product, qty, price)
    refunds: list[int] = field(default_factory=list)
    affected: set[int] = field(default_factory=set)  # contacts whose facts change


class _PurchaseImporter(_Importer):
    columns = PURCHASE_COLUMNS
    required = [("external_order_id",), ("purchased_at",), ("amount",), ("contact_external_id", "contact_phone")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cn = settings.SCRM_DEFAULT_PHONE_REGION == "CN"
        self.seen: dict[str, int] = {}  # order id → the line that imported it, over the whole file
        self.products: dict[str, tuple[int, Decimal] | None] = {}
        self.visible = Contact.objects.live().visible_to(self.actor) if self.restricted else Contact.objects.live()
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
        batch = self._lookup(rows)
        for line, v in rows:
            order_id = v["external_order_id"]
            before = batch.seen.get(order_id) or self.seen.get(order_id)
            if before:
                batch.result.errors.append(
                    (line, "external_order_id", _("Duplicate of line %(line)s.") % {"line": before})
                )
                continue
            contact_id, problems = self._resolve(batch, v)
            if problems:
                batch.result.errors.extend((line, name, message) for name, message in problems)
                continue
            batch.seen[order_id] = line
            self._plan(batch, v, contact_id)
        self._store(batch)
        batch.result.commit = lambda: self.seen.update(batch.seen)
        return batch.result

    def _lookup(self, rows: list[tuple[int, dict]]) -> _PurchaseBatch:
        """The buyers (among the contacts the user can see) and the recorded orders the rows name; the
        products of their items join the cache kept over the whole file."""
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
        return _PurchaseBatch(by_ext=by_ext, by_phone=by_phone, orders=orders, now=timezone.now())

    def _resolve(self, batch: _PurchaseBatch, v: dict) -> tuple[int | None, list[tuple[str, str]]]:
        """The buyer's contact id, or the problems that reject the row."""
        problems = []
        order_id = v["external_order_id"]
        if "contact_external_id" in v:
            key, contact_id = "contact_external_id", batch.by_ext.get(v["contact_external_id"])
            if contact_id is None:
                problems.append((key, _("No contact you can see has this external ID.")))
        else:
            key, contact_id = "contact_phone", batch.by_phone.get(v["contact_phone"])
            if contact_id is None:
                problems.append((key, _("No contact you can see has this phone number.")))
        unknown = [sku for sku, _count in v.get("items", ()) if self.products[sku] is None]
        if unknown:
            problems.append(("items", _("Unknown product SKU(s): %(skus)s.") % {"skus": ", ".join(unknown)}))
        existing = batch.orders.get(order_id)
        if existing is not None and contact_id is not None:
            if existing["contact_id"] != contact_id:
                problems.append((key, _("Order %(id)s is already recorded for another contact.") % {"id": order_id}))
            if existing["amount"] != v["amount"]:
                problems.append(
                    (
                        "amount",
                        _("Order %(id)s is already recorded with amount %(amount)s.")
                        % {"id": order_id, "amount": existing["amount"]},
                    )
                )
        return contact_id, problems

    def _plan(self, batch: _PurchaseBatch, v: dict, contact_id: int) -> None:
        order_id = v["external_order_id"]
        status = v.get("status", Purchase.Status.PAID)
        existing = batch.orders.get(order_id)
        if existing is not None:
            # Same order again: nothing changes, except that a refund of a paid order is applied.
            if status == Purchase.Status.REFUNDED and existing["status"] == Purchase.Status.PAID:
                batch.refunds.append(existing["id"])
                batch.affected.add(contact_id)
                batch.result.updated += 1
            else:
                batch.result.unchanged += 1
            return
        for sku, count in v.get("items", ()):
            product_id, price = self.products[sku]
            batch.new_items.append((len(batch.new_purchases), product_id, count, price))
        batch.new_purchases.append(
            {
                "contact_id": contact_id,
                "external_order_id": order_id,
                "purchased_at": v["purchased_at"],
                "amount": v["amount"],
                "status": status,
                "refunded_at": batch.now if status == Purchase.Status.REFUNDED else None,
                "source": v.get("source", ""),
            }
        )
        batch.affected.add(contact_id)
        batch.result.created += 1

    def _store(self, batch: _PurchaseBatch) -> None:
        if batch.affected:
            # Purchases of one contact are written one writer at a time (as purchase_record does), so the
            # facts recomputed below see every committed purchase.
            list(
                Contact.objects.select_for_update()
                .filter(pk__in=sorted(batch.affected))
                .order_by("pk")
                .values_list("pk", flat=True)
            )
        ids = self.purchases.insert(batch.new_purchases)
        self.items.insert(
            [
                {"purchase_id": ids[index], "product_id": product_id, "quantity": count, "unit_price": price}
                for index, product_id, count, price in batch.new_items
            ],
            want_ids=False,
        )
        if batch.refunds:
            Purchase.objects.filter(pk__in=batch.refunds, status=Purchase.Status.PAID).update(
                status=Purchase.Status.REFUNDED, refunded_at=batch.now
            )
        contact_facts_refresh(contact_ids=batch.affected)
