"""“Also apply to the contacts who match now”: an explicit option when an automation is switched on.

Switching an automation on never replays history (``active_since``). When the person switching it on asks
for it — after seeing how many contacts it concerns (``automation_backfill_count``) — the contacts for whom
the trigger's state holds now get one run each, due at once (``automation_backfill``), written set-based
like the trigger scan (``INSERT … SELECT … ON CONFLICT DO NOTHING`` in keyset chunks).

What "matches now" means per trigger, and the run's key — the very key the scan gives the same event, so
that the scan and a second backfill can never fire it again:

========================  ==========================================================  ==========================
trigger                   contacts                                                    key
========================  ==========================================================  ==========================
contact created           every live contact                                          ``created``
purchase made             each contact's latest paid purchase                         ``purchase:{id}``
tag added                 the contacts who carry the tag                              ``tag:{contact tag id}``
joined a community        current members (of the community), latest membership       ``join:{membership id}``
birthday                  birthday today                                              ``birthday:{year}``
inactive for N days       no interaction for N days or more                           ``inactive:{date}``
repurchase due            a product due again, not bought since                       ``repurchase:{p}:{product}``
========================  ==========================================================  ==========================

The condition segment applies too (as at fire time, where it is checked again).
"""

from __future__ import annotations

import calendar
import datetime as dt

from django.core.exceptions import ValidationError
from django.db.models import DateTimeField, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from analytics.metrics import business_timezone
from communities.models import Membership
from contacts.models import Contact, ContactTag, Product, Purchase, PurchaseItem

from ..models import Automation, AutomationRun
from ..segments import segment_q
from .triggers import SCAN_CHUNK, _insert_runs, _key, _Source, later_paid_purchase, live_contact_q

Trigger = Automation.Trigger


def _sources(automation: Automation, *, now: dt.datetime) -> list[_Source]:
    """The trigger's state as it holds at ``now``: one source per kind of event, due at ``now``."""
    due = Value(now, output_field=DateTimeField())
    config = automation.trigger_config or {}
    trigger = automation.trigger
    if trigger == Trigger.CONTACT_CREATED:
        return [_Source(Contact.objects.filter(live_contact_q()), F("pk"), Value("created"), due)]
    if trigger == Trigger.PURCHASE_MADE:
        later = Purchase.objects.filter(contact_id=OuterRef("contact_id"), status=Purchase.Status.PAID).filter(
            Q(purchased_at__gt=OuterRef("purchased_at"))
            | Q(purchased_at=OuterRef("purchased_at"), pk__gt=OuterRef("pk"))
        )
        rows = Purchase.objects.filter(live_contact_q("contact__"), status=Purchase.Status.PAID).filter(~Exists(later))
        first_product = PurchaseItem.objects.filter(purchase_id=OuterRef("pk")).order_by("pk").values("product_id")
        return [
            _Source(
                rows,
                F("contact_id"),
                _key("purchase:", F("pk")),
                due,
                purchase=F("pk"),
                product=Subquery(first_product[:1]),
            )
        ]
    if trigger == Trigger.TAG_ADDED:
        rows = ContactTag.objects.filter(live_contact_q("contact__"), tag_id=config.get("tag"))
        return [_Source(rows, F("contact_id"), _key("tag:", F("pk")), due)]
    if trigger == Trigger.JOINED_COMMUNITY:
        current = Membership.objects.filter(left_at__isnull=True)
        if config.get("community"):
            current = current.filter(community_id=config["community"])
        # One run per contact: the latest of their current memberships.
        later = current.filter(contact_id=OuterRef("contact_id")).filter(
            Q(joined_at__gt=OuterRef("joined_at")) | Q(joined_at=OuterRef("joined_at"), pk__gt=OuterRef("pk"))
        )
        rows = current.filter(live_contact_q("contact__")).filter(~Exists(later))
        return [_Source(rows, F("contact_id"), _key("join:", F("pk")), due)]
    if trigger == Trigger.BIRTHDAY:
        today = timezone.localtime(now, business_timezone()).date()
        born_today = Q(birthday__month=today.month, birthday__day=today.day)
        if (today.month, today.day) == (2, 28) and not calendar.isleap(today.year):
            born_today |= Q(birthday__month=2, birthday__day=29)
        rows = Contact.objects.filter(live_contact_q(), birthday__isnull=False).filter(born_today)
        return [_Source(rows, F("pk"), Value(f"birthday:{today.year}"), due)]
    if trigger == Trigger.INACTIVE:
        span = dt.timedelta(days=int(config["days"]))
        rows = (
            Contact.objects.filter(live_contact_q())
            .annotate(r_last=Coalesce("last_interaction_at", "acquired_at"))
            .filter(r_last__lte=now - span)
        )
        spell_day = TruncDate("r_last", tzinfo=business_timezone())
        return [_Source(rows, F("pk"), _key("inactive:", spell_day), due)]
    if trigger == Trigger.REPURCHASE_DUE:
        products = Product.objects.filter(repurchase_cycle_days__isnull=False)
        if config.get("product"):
            products = products.filter(pk=config["product"])
        sources = []
        for cycle in sorted(set(products.order_by().values_list("repurchase_cycle_days", flat=True))):
            rows = PurchaseItem.objects.filter(
                live_contact_q("purchase__contact__"),
                product__in=products.filter(repurchase_cycle_days=cycle),
                purchase__status=Purchase.Status.PAID,
                purchase__purchased_at__lte=now - dt.timedelta(days=cycle),
            ).filter(
                ~later_paid_purchase(
                    contact="purchase__contact_id",
                    product="product_id",
                    purchased_at="purchase__purchased_at",
                    purchase="purchase_id",
                )
            )
            sources.append(
                _Source(
                    rows,
                    F("purchase__contact_id"),
                    _key("repurchase:", F("purchase_id"), F("product_id")),
                    due,
                    purchase=F("purchase_id"),
                    product=F("product_id"),
                )
            )
        return sources
    raise ValueError(f"unknown trigger {trigger!r}")


def _conditioned(automation: Automation, source: _Source, *, now: dt.datetime) -> _Source:
    """The source limited to the contacts in the automation's condition segment (when it has one)."""
    if not automation.condition_id:
        return source
    try:
        condition = segment_q(automation.condition.rules, now=now)
    except ValidationError:
        return _Source(source.rows.none(), source.contact, source.key, source.due_at, source.purchase, source.product)
    matching = Contact.objects.filter(condition).filter(pk=OuterRef("r_match"))
    rows = source.rows.annotate(r_match=source.contact).filter(Exists(matching))
    return _Source(rows, source.contact, source.key, source.due_at, source.purchase, source.product)


def _new_events(automation: Automation, source: _Source):
    """The source's rows that have no run yet (the same test the insert applies), as ``r_contact``."""
    existing = AutomationRun.objects.filter(
        automation_id=automation.pk, contact_id=OuterRef("r_contact"), key=OuterRef("r_key")
    )
    return source.rows.annotate(r_contact=source.contact, r_key=source.key).filter(~Exists(existing))


def automation_backfill_count(automation: Automation, *, now: dt.datetime | None = None) -> int:
    """How many contacts would get a run if the automation were switched on now with “also apply to the
    contacts who match now” (contacts who already had this very event fire are not counted). One query."""
    now = now or timezone.now()
    sources = [_conditioned(automation, source, now=now) for source in _sources(automation, now=now)]
    parts = [_new_events(automation, source).order_by().values("r_contact") for source in sources]
    if not parts:
        return 0
    if len(parts) == 1:
        return parts[0].distinct().count()
    return parts[0].union(*parts[1:]).count()


def automation_backfill(automation: Automation, *, now: dt.datetime, chunk_size: int = SCAN_CHUNK) -> int:
    """Write a run, due ``now``, for each contact the trigger's state holds for now (see the module's
    table); returns how many runs are new. Set-based, in keyset chunks; rerunning it writes nothing more."""
    inserted = 0
    for source in _sources(automation, now=now):
        inserted += _insert_runs(automation, _conditioned(automation, source, now=now), chunk_size=chunk_size)
    return inserted
