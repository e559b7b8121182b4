"""The trigger scan: for each active automation, the trigger events since it last looked, written as
``AutomationRun`` rows (one per event, unique per automation, contact and event key) in set-based
``INSERT … SELECT … ON CONFLICT DO NOTHING`` statements, in keyset chunks of the source table.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.models import (
    CharField,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Concat, TruncDate
from django.utils import timezone

from analytics.metrics import business_timezone
from communities.models import Membership
from contacts.models import Contact, ContactTag, Product, Purchase, PurchaseItem
from scrm.sql import insert_select

from ..models import Automation, AutomationRun

logger = logging.getLogger(__name__)

Trigger = Automation.Trigger
RunStatus = AutomationRun.Status


# Event triggers re-read this much before the last scan: rows committed a little after the time they carry
# (a long transaction, a clock a little behind) are still found; the runs' unique key dedupes the overlap.
OVERLAP = dt.timedelta(minutes=10)
SCAN_CHUNK = getattr(settings, "SCRM_AUTOMATION_SCAN_CHUNK", 5000)
BIRTHDAY_TIME = dt.time(9, 0)
# An order recorded more than this after it was placed is history being imported, not a purchase to react to.
LATE_PURCHASE_LIMIT = dt.timedelta(days=2)
# Triggers whose runs carry a product, so a template may use {product} without a variable for it.
PRODUCT_TRIGGERS = (Trigger.REPURCHASE_DUE, Trigger.PURCHASE_MADE)

_TRANSIENT = (OperationalError, InterfaceError)


# --- Event sources -----------------------------------------------------------------------------


def _plus(expression, delta: dt.timedelta):
    if not delta:
        return expression
    return ExpressionWrapper(expression + Value(delta), output_field=DateTimeField())


def _key(prefix: str, *parts) -> Concat:
    pieces: list[Any] = [Value(prefix)]
    for index, part in enumerate(parts):
        if index:
            pieces.append(Value(":"))
        pieces.append(Cast(part, output_field=CharField()))
    return Concat(*pieces, output_field=CharField())


@dataclass
class _Source:
    """Where one trigger's events come from: rows of some table, and per row the run's contact, key, due
    time and (optionally) purchase and product, as expressions over those rows."""

    rows: QuerySet
    contact: Any
    key: Any
    due_at: Any
    purchase: Any = None
    product: Any = None


def live_contact_q(prefix: str = "") -> Q:
    """Contacts (reached through ``prefix``, e.g. ``"contact__"``) neither merged nor erased: the only ones
    an event fires for, checked again when the run is due."""
    return Q(**{f"{prefix}merged_into__isnull": True, f"{prefix}erased_at__isnull": True})


def later_paid_purchase(*, contact: str, product: str, purchased_at: str, purchase: str) -> Exists:
    """A paid purchase of the same product by the same contact after the outer row's purchase (ties on the
    time broken by the purchase id): a repurchase reminder is not due, or no longer due when it fires."""
    later = PurchaseItem.objects.filter(
        product_id=OuterRef(product), purchase__contact_id=OuterRef(contact), purchase__status=Purchase.Status.PAID
    ).filter(
        Q(purchase__purchased_at__gt=OuterRef(purchased_at))
        | Q(purchase__purchased_at=OuterRef(purchased_at), purchase_id__gt=OuterRef(purchase))
    )
    return Exists(later)


def _sources(automation: Automation, *, since: dt.datetime, now: dt.datetime) -> list[_Source]:
    """The trigger's event sources. Event triggers read ``[since, now]``; state triggers (birthday,
    inactive, repurchase due) read everything that is due now and became due after ``active_since``."""
    delay = dt.timedelta(minutes=automation.delay_minutes)
    config = automation.trigger_config or {}
    trigger = automation.trigger
    active_since = automation.active_since
    if trigger == Trigger.CONTACT_CREATED:
        rows = Contact.objects.filter(live_contact_q(), created_at__gte=since, created_at__lte=now)
        return [_Source(rows, F("pk"), Value("created"), _plus(F("created_at"), delay))]
    if trigger == Trigger.PURCHASE_MADE:
        rows = Purchase.objects.filter(
            live_contact_q("contact__"),
            status=Purchase.Status.PAID,
            created_at__gte=since,
            created_at__lte=now,
            purchased_at__gte=max(active_since, now - LATE_PURCHASE_LIMIT),
        )
        first_product = PurchaseItem.objects.filter(purchase_id=OuterRef("pk")).order_by("pk").values("product_id")
        return [
            _Source(
                rows,
                F("contact_id"),
                _key("purchase:", F("pk")),
                _plus(F("purchased_at"), delay),
                purchase=F("pk"),
                product=Subquery(first_product[:1]),
            )
        ]
    if trigger == Trigger.TAG_ADDED:
        rows = ContactTag.objects.filter(
            live_contact_q("contact__"), tag_id=config.get("tag"), created_at__gte=since, created_at__lte=now
        )
        return [_Source(rows, F("contact_id"), _key("tag:", F("pk")), _plus(F("created_at"), delay))]
    if trigger == Trigger.JOINED_COMMUNITY:
        rows = Membership.objects.filter(live_contact_q("contact__"), joined_at__gte=since, joined_at__lte=now)
        if config.get("community"):
            rows = rows.filter(community_id=config["community"])
        return [_Source(rows, F("contact_id"), _key("join:", F("pk")), _plus(F("joined_at"), delay))]
    if trigger == Trigger.BIRTHDAY:
        tz = business_timezone()
        today = timezone.localtime(now, tz).date()
        born_today = Q(birthday__month=today.month, birthday__day=today.day)
        if (today.month, today.day) == (2, 28) and not calendar.isleap(today.year):
            born_today |= Q(birthday__month=2, birthday__day=29)
        due = max(dt.datetime.combine(today, BIRTHDAY_TIME, tzinfo=tz), now) + delay
        rows = Contact.objects.filter(live_contact_q(), birthday__isnull=False).filter(born_today)
        return [_Source(rows, F("pk"), Value(f"birthday:{today.year}"), Value(due, output_field=DateTimeField()))]
    if trigger == Trigger.INACTIVE:
        span = dt.timedelta(days=int(config["days"]))
        # The spell starts at the last interaction (or the acquisition when there was none); it becomes an
        # event span later. Only spells that became events after active_since count.
        rows = (
            Contact.objects.filter(live_contact_q())
            .annotate(r_last=Coalesce("last_interaction_at", "acquired_at"))
            .filter(r_last__lte=now - span, r_last__gte=active_since - span)
        )
        spell_day = TruncDate("r_last", tzinfo=business_timezone())
        return [_Source(rows, F("pk"), _key("inactive:", spell_day), _plus(F("r_last"), span + delay))]
    if trigger == Trigger.REPURCHASE_DUE:
        products = Product.objects.filter(repurchase_cycle_days__isnull=False)
        if config.get("product"):
            products = products.filter(pk=config["product"])
        cycles = sorted(set(products.order_by().values_list("repurchase_cycle_days", flat=True)))
        sources = []
        # One source per cycle length (a handful), so each compares purchase times with a constant.
        for cycle in cycles:
            span = dt.timedelta(days=cycle)
            rows = PurchaseItem.objects.filter(
                live_contact_q("purchase__contact__"),
                product__repurchase_cycle_days=cycle,
                purchase__status=Purchase.Status.PAID,
                purchase__purchased_at__lte=now - span,
                purchase__purchased_at__gte=active_since - span,
            ).filter(
                ~later_paid_purchase(
                    contact="purchase__contact_id",
                    product="product_id",
                    purchased_at="purchase__purchased_at",
                    purchase="purchase_id",
                )
            )
            if config.get("product"):
                rows = rows.filter(product_id=config["product"])
            sources.append(
                _Source(
                    rows,
                    F("purchase__contact_id"),
                    _key("repurchase:", F("purchase_id"), F("product_id")),
                    _plus(F("purchase__purchased_at"), span + delay),
                    purchase=F("purchase_id"),
                    product=F("product_id"),
                )
            )
        return sources
    raise ValueError(f"unknown trigger {trigger!r}")


# --- Writing the runs --------------------------------------------------------------------------


def _insert_runs(automation: Automation, source: _Source, *, chunk_size: int) -> int:
    """Write the source's runs that do not exist yet, in keyset chunks of the source rows (two statements
    a chunk: find the chunk's last id, insert up to it)."""
    existing = AutomationRun.objects.filter(
        automation_id=automation.pk, contact_id=OuterRef("r_contact"), key=OuterRef("r_key")
    )
    rows = source.rows.annotate(r_contact=source.contact, r_key=source.key).filter(~Exists(existing))
    columns: dict[str, Any] = {
        "automation_id": Value(automation.pk),
        "contact_id": F("r_contact"),
        "key": F("r_key"),
        "status": Value(RunStatus.WAITING),
        "due_at": source.due_at,
        "created_at": Value(timezone.now()),
        "error": Value(""),
    }
    if source.purchase is not None:
        columns["purchase_id"] = source.purchase
    if source.product is not None:
        columns["product_id"] = source.product
    inserted = 0
    last = None
    while True:
        page = rows if last is None else rows.filter(pk__gt=last)
        bound = list(page.order_by("pk").values_list("pk", flat=True)[chunk_size - 1 : chunk_size])
        chunk = page.filter(pk__lte=bound[0]) if bound else page
        inserted += insert_select(AutomationRun, chunk, columns)
        if not bound:
            return inserted
        last = bound[0]


def automation_scan(*, automation: Automation, now: dt.datetime | None = None, chunk_size: int = SCAN_CHUNK) -> int:
    """Write the runs of one automation's new trigger events; returns how many runs are new. Reads events
    since ``max(active_since, scanned_until - OVERLAP)``, then moves ``scanned_until`` to ``now`` (never
    backwards: two scans at once are harmless)."""
    now = now or timezone.now()
    if not automation.is_active:
        return 0
    if automation.active_since is None:
        # Switched on behind the services' back (admin, fixtures): it starts from now.
        Automation.objects.filter(pk=automation.pk, active_since__isnull=True).update(active_since=now)
        automation.active_since = now
    if now < automation.active_since:
        return 0
    since = automation.active_since
    if automation.scanned_until is not None:
        since = max(since, automation.scanned_until - OVERLAP)
    inserted = 0
    for source in _sources(automation, since=since, now=now):
        inserted += _insert_runs(automation, source, chunk_size=chunk_size)
    Automation.objects.filter(pk=automation.pk).filter(Q(scanned_until__isnull=True) | Q(scanned_until__lt=now)).update(
        scanned_until=now
    )
    if inserted:
        logger.info("automation %s: %s new runs", automation.pk, inserted)
    return inserted


def automations_scan(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Scan every active automation for new trigger events (see ``automation_scan``). One broken automation
    is logged and does not stop the others."""
    now = now or timezone.now()
    stats = {"automations": 0, "runs": 0, "errors": 0}
    for automation in Automation.objects.filter(is_active=True).order_by("pk"):
        try:
            stats["runs"] += automation_scan(automation=automation, now=now)
            stats["automations"] += 1
        except _TRANSIENT:
            raise
        except Exception:
            logger.exception("automation %s: the trigger scan failed", automation.pk)
            stats["errors"] += 1
    return stats
