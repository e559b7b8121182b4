"""The contacts behind a number of a report, for a filtered contact list."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, OuterRef, QuerySet

from contacts.models import Contact, Purchase, Touchpoint

from ..models import Layer
from .cohorts import CohortBy, CohortView, cohort_date_field
from .queries import funnel_step_q
from .scope import PAID, Filters, add_months, day_start, in_period, parse_month, scoped_contacts

DRILLDOWN_METRICS = ("leads", "new_customers", "buyers", "repeat_buyers", "referred_leads", "funnel", "cohort", "rfm")


def drilldown(
    filters: Filters,
    *,
    metric: str,
    step: str | None = None,
    cohort: str | None = None,
    offset: int | None = None,
    by: CohortBy = "acquisition",
    view: CohortView = "purchase",
    layer: str | None = None,
) -> QuerySet[Contact]:
    """The contacts behind a number, as a QuerySet for a filtered contact list:

    * ``leads``, ``new_customers``, ``buyers``, ``repeat_buyers`` (≥ 2 paid orders in P),
      ``referred_leads`` (leads of P with a referrer) — as in ``kpis``;
    * ``funnel`` with ``step`` (one of FUNNEL_STEPS);
    * ``cohort`` with ``cohort="YYYY-MM"`` and ``by``; with ``offset=k`` and ``view`` the contacts of
      the cell (cohort, k), without it the whole cohort (as of the end of P, like the matrix);
    * ``rfm`` with ``layer`` (the stored layer; ``layer=None`` = not scored yet).
    """
    contacts = scoped_contacts(filters)
    paid_in_p = Purchase.objects.filter(in_period("purchased_at", filters), status=PAID)
    if metric == "leads":
        return contacts.filter(in_period("acquired_at", filters))
    if metric == "new_customers":
        return contacts.filter(in_period("first_purchase_at", filters))
    if metric == "buyers":
        return contacts.filter(Exists(paid_in_p.filter(contact_id=OuterRef("pk"))))
    if metric == "repeat_buyers":
        repeat = paid_in_p.values("contact_id").annotate(n=Count("pk")).filter(n__gte=2).values("contact_id")
        return contacts.filter(pk__in=repeat)
    if metric == "referred_leads":
        return contacts.filter(in_period("acquired_at", filters), referred_by__isnull=False)
    if metric == "funnel":
        return contacts.filter(in_period("acquired_at", filters)).filter(funnel_step_q(step or ""))
    if metric == "cohort":
        if not cohort:
            raise ValidationError({"cohort": ["Name the cohort month (YYYY-MM)."]})
        cohort_field = cohort_date_field(by)
        first = parse_month(cohort)
        members = contacts.filter(
            **{f"{cohort_field}__gte": day_start(first), f"{cohort_field}__lt": day_start(add_months(first, 1))}
        ).filter(**{f"{cohort_field}__lt": filters.end})
        if offset is None:
            return members
        if offset < 0:
            raise ValidationError({"offset": ["The month offset cannot be negative."]})
        month = add_months(first, offset)
        since, until = day_start(month), min(day_start(add_months(month, 1)), filters.end)
        if view == "purchase":
            activity = Purchase.objects.filter(status=PAID, purchased_at__gte=since, purchased_at__lt=until)
        elif view == "engagement":
            activity = Touchpoint.objects.filter(occurred_at__gte=since, occurred_at__lt=until).exclude(
                kind__in=Touchpoint.OUTBOUND_KINDS
            )
        else:
            raise ValidationError({"view": ["The view is purchase or engagement."]})
        return members.filter(Exists(activity.filter(contact_id=OuterRef("pk"))))
    if metric == "rfm":
        if layer is None:
            return contacts.filter(score__isnull=True)
        if layer not in Layer.values:
            raise ValidationError({"layer": [f"Unknown layer {layer!r}."]})
        return contacts.filter(score__layer=layer)
    raise ValidationError({"metric": [f"Unknown metric {metric!r}; one of {', '.join(DRILLDOWN_METRICS)}."]})
