"""The building blocks of the reports, each one query, shared within one report: the funnel steps as
conditions on a lead, the spend of the period per channel, and ``ReportQueries``, which runs each query of
a report at most once (the overview shares them between its parts)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from fractions import Fraction
from functools import cached_property
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet, Sum

from contacts.models import ChannelSpend, Contact, Purchase

from .numbers import fraction
from .scope import PAID, Filters, add_months, contact_scope_q, in_period, scoped_contacts

FUNNEL_STEPS = ("leads", "engaged", "first_purchase", "repeat_purchase", "referrer")


def engaged_q(prefix: str = "") -> Q:
    """Has an inbound touchpoint (the last_interaction_at fact) or a paid purchase, to date."""
    return Q(**{f"{prefix}last_interaction_at__isnull": False}) | Q(**{f"{prefix}purchase_count__gte": 1})


def funnel_step_q(step: str) -> Q:
    """Funnel step as a condition on a contact already known to be a lead of P."""
    conditions = {
        "leads": Q(),
        "engaged": engaged_q(),
        "first_purchase": Q(purchase_count__gte=1),
        "repeat_purchase": Q(purchase_count__gte=2),
        "referrer": Q(purchase_count__gte=2, referral_count__gte=1),
    }
    if step not in conditions:
        raise ValidationError({"step": [f"Unknown funnel step {step!r}; one of {', '.join(FUNNEL_STEPS)}."]})
    return conditions[step]


def funnel_aggregates() -> dict[str, Count]:
    return {step: Count("pk", filter=funnel_step_q(step)) if step != "leads" else Count("pk") for step in FUNNEL_STEPS}


def prorated_spend(filters: Filters) -> dict[int, Fraction]:
    """Spend in P per channel: Σ amount × overlap_days / range_days over the ChannelSpend rows that
    overlap P (and the cohort month, with a cohort filter), exactly. One query; the arithmetic runs over
    the few overlapping spend rows, not over contacts."""
    first, last = filters.date_from, filters.date_to
    if filters.cohort_month is not None:
        first = max(first, filters.cohort_month)
        last = min(last, add_months(filters.cohort_month, 1) - dt.timedelta(days=1))
    spend: dict[int, Fraction] = defaultdict(Fraction)
    if last < first:
        return spend
    rows = ChannelSpend.objects.filter(start_date__lte=last, end_date__gte=first)
    if filters.channel_id is not None:
        rows = rows.filter(channel_id=filters.channel_id)
    for channel_id, start_date, end_date, amount in rows.values_list("channel_id", "start_date", "end_date", "amount"):
        overlap = (min(end_date, last) - max(start_date, first)).days + 1
        range_days = (end_date - start_date).days + 1
        spend[channel_id] += Fraction(amount) * overlap / range_days
    return spend


class ReportQueries:
    """The queries of one report, each run at most once (``overview`` shares them between parts)."""

    def __init__(self, filters: Filters) -> None:
        self.filters = filters

    @cached_property
    def contacts(self) -> QuerySet[Contact]:
        return scoped_contacts(self.filters)

    @cached_property
    def leads_by_channel(self) -> list[dict[str, Any]]:
        """Leads of P per acquisition channel with their revenue to date and funnel steps."""
        return list(
            self.contacts.filter(in_period("acquired_at", self.filters))
            .values("channel_id")
            .annotate(
                leads_revenue=Sum("total_spent"),
                referred=Count("pk", filter=Q(referred_by__isnull=False)),
                **funnel_aggregates(),
            )
            .order_by()
        )

    @cached_property
    def new_customers_by_channel(self) -> dict[int | None, int]:
        # COUNT(*), not COUNT(id): the partial index (first_purchase_at, channel) then answers it alone.
        rows = (
            self.contacts.filter(in_period("first_purchase_at", self.filters))
            .values("channel_id")
            .annotate(n=Count("*"))
            .order_by()
        )
        return {row["channel_id"]: row["n"] for row in rows}

    @cached_property
    def referrers(self) -> int:
        return self.contacts.filter(in_period("acquired_at", self.filters), referred_by__isnull=False).aggregate(
            n=Count("referred_by", distinct=True)
        )["n"]

    @cached_property
    def purchases(self) -> dict[str, Any]:
        """Revenue, paid orders, buyers and repeat buyers (≥ 2 paid orders) in P. COUNT(*), not COUNT(id),
        so that the covering indexes on paid purchases (by time, by contact) serve it without the table."""
        totals = (
            Purchase.objects.filter(contact_scope_q(self.filters), in_period("purchased_at", self.filters))
            .filter(status=PAID)
            .values("contact_id")
            .annotate(orders=Count("*"), spent=Sum("amount"))
            .order_by()
            .aggregate(
                buyers=Count("contact_id"),
                repeat_buyers=Count("contact_id", filter=Q(orders__gte=2)),
                paid_orders=Sum("orders"),
                revenue=Sum("spent"),
            )
        )
        return {
            "buyers": totals["buyers"] or 0,
            "repeat_buyers": totals["repeat_buyers"] or 0,
            "paid_orders": totals["paid_orders"] or 0,
            "revenue": fraction(totals["revenue"]),
        }

    @cached_property
    def spend_by_channel(self) -> dict[int, Fraction] | None:
        return prorated_spend(self.filters) if self.filters.spend_attributable else None

    def total(self, key: str) -> Any:
        values = [row[key] for row in self.leads_by_channel]
        if key == "leads_revenue":
            return sum((fraction(v) for v in values), Fraction(0))
        return sum(values)
