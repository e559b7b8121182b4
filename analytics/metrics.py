"""The numbers managers steer by, exactly as defined in docs/metrics.md.

Every metric is a handful of set-based queries through the ORM (aggregate, annotate, Subquery, window
and date-truncation functions in the business time zone); nothing loops over contacts in Python.
Where the definitions allow it the queries read the denormalised facts on ``Contact``
(``first_purchase_at``, ``purchase_count``, ``total_spent``, ``last_interaction_at``,
``referral_count``) instead of joining purchases and touchpoints. The retention matrices read the
months that are over from a nightly rollup (``CohortActivity``, ``analytics.rollups``) and query only
the open months live.

Conventions of the results:

* Money is ``Decimal`` rounded to cents (half up); ratios are ``float`` rounded to 4 places (half up).
  Both are rounded once, here, from exact intermediate values (``Fraction``), so a ratio of two
  rounded numbers is never what is shown.
* A division by zero, or a metric built on spend when spend cannot be attributed (``owner`` or
  ``community`` filter), is ``None``.
* ``Filters.user`` is the person asking: operators get numbers over their own contacts only
  (``Contact.objects.visible_to``). ``user=None`` means an unscoped system read (tasks, benchmarks) and must
  never be passed on behalf of a request.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db.models import (
    Count,
    DateField,
    Exists,
    FilteredRelation,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import Trunc
from django.utils import timezone

from communities.models import Community, Membership
from contacts.models import Channel, ChannelSpend, Contact, Purchase, Touchpoint

from .models import CohortActivity, Layer

PAID = Purchase.Status.PAID
CohortBy = Literal["acquisition", "first_purchase"]
CohortView = Literal["purchase", "engagement"]
Grain = Literal["month", "week", "day"]
FunnelGroupBy = Literal["channel", "cohort"] | None

FUNNEL_STEPS = ("leads", "engaged", "first_purchase", "repeat_purchase", "referrer")
TREND_METRICS = ("revenue", "orders", "buyers", "leads", "new_customers")
LAYER_ORDER = (Layer.CORE, Layer.REPEAT, Layer.FIRST_TIME, Layer.INTENT_ONLY, Layer.DORMANT, Layer.NONE)
MAX_COHORT_MONTHS = 36

_CENTS = 2
_RATIO_PLACES = 4


# --------------------------------------------------------------------------------------------------
# Filters, time and rounding
# --------------------------------------------------------------------------------------------------


def business_timezone() -> dt.tzinfo:
    return timezone.get_default_timezone()


def day_start(day: dt.date) -> dt.datetime:
    """00:00 of ``day`` in the business time zone, as an aware datetime."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=business_timezone())


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def months_between(earlier: dt.date, later: dt.date) -> int:
    return (later.year - earlier.year) * 12 + later.month - earlier.month


def parse_month(value: str, *, field_name: str = "cohort") -> dt.date:
    """``"YYYY-MM"`` → the first day of that month."""
    try:
        year, month = (int(part) for part in value.split("-"))
        return dt.date(year, month, 1)
    except (ValueError, AttributeError) as exc:
        raise ValidationError({field_name: [f"Enter a month as YYYY-MM, not {value!r}."]}) from exc


@dataclass(frozen=True, kw_only=True)
class Filters:
    """The period and filters of a report (docs/metrics.md, "Common ground").

    The period is the whole days ``date_from`` … ``date_to`` in the business time zone. ``channel_id``,
    ``owner_id``, ``community_id`` (ever a member) and ``cohort`` (acquisition month ``YYYY-MM``)
    restrict the *contacts*. ``user`` is the person asking (required; ``None`` = unscoped system read).
    """

    date_from: dt.date
    date_to: dt.date
    user: Any
    channel_id: int | None = None
    owner_id: int | None = None
    community_id: int | None = None
    cohort: str | None = None

    def __post_init__(self) -> None:
        if self.date_to < self.date_from:
            raise ValidationError({"date_to": ["The end of the period is before its start."]})
        if self.cohort is not None:
            parse_month(self.cohort)

    @property
    def start(self) -> dt.datetime:
        return day_start(self.date_from)

    @property
    def end(self) -> dt.datetime:
        """Exclusive end: 00:00 of the day after ``date_to``."""
        return day_start(self.date_to + dt.timedelta(days=1))

    @property
    def cohort_month(self) -> dt.date | None:
        return parse_month(self.cohort) if self.cohort else None

    @property
    def spend_attributable(self) -> bool:
        """Spend belongs to channels and days, not to owners or communities."""
        return self.owner_id is None and self.community_id is None


def _in_period(field_name: str, filters: Filters) -> Q:
    return Q(**{f"{field_name}__gte": filters.start, f"{field_name}__lt": filters.end})


def user_scope_q(user: Any, prefix: str) -> Q:
    """Live contacts the user may see, as a condition through a relation to ``Contact``
    (``prefix="contact__"``): the contacts' own visibility rule (``ContactQuerySet``) written as column
    conditions, so that the reports join contacts once (a semi-join on a queryset reads an operator's
    contacts twice). ``user=None`` is the whole book (commands and nightly jobs)."""
    q = Q(**{f"{prefix}merged_into__isnull": True})
    visible = Contact.objects.visibility_q(user, prefix) if user is not None else None
    return q & visible if visible is not None else q


def _filters_q(filters: Filters, prefix: str) -> Q:
    q = Q()
    if filters.channel_id is not None:
        q &= Q(**{f"{prefix}channel_id": filters.channel_id})
    if filters.owner_id is not None:
        q &= Q(**{f"{prefix}owner_id": filters.owner_id})
    if filters.community_id is not None:
        members = Membership.objects.filter(community_id=filters.community_id).values("contact_id")
        q &= Q(**{f"{prefix}pk__in": members})
    if filters.cohort_month is not None:
        first = filters.cohort_month
        q &= Q(
            **{
                f"{prefix}acquired_at__gte": day_start(first),
                f"{prefix}acquired_at__lt": day_start(add_months(first, 1)),
            }
        )
    return q


def contact_scope_q(filters: Filters, prefix: str = "contact__") -> Q:
    """The contacts a report counts — live, visible to the user, inside the filters — as a condition
    through a relation to ``Contact`` (purchases, touchpoints, memberships).

    When nothing narrows the contacts, "live" is written as "not one of the (few) merged contacts", an
    anti-join on the merged_into index, so that counting purchases or touchpoints does not have to read
    the whole contacts table."""
    unfiltered = (
        filters.channel_id is None
        and filters.owner_id is None
        and filters.community_id is None
        and filters.cohort is None
        and (filters.user is None or Contact.objects.sees_all(filters.user))
    )
    if unfiltered:
        merged = Contact.objects.filter(pk=OuterRef(prefix.removesuffix("__")), merged_into__isnull=False)
        return ~Q(Exists(merged))
    return user_scope_q(filters.user, prefix) & _filters_q(filters, prefix)


def scoped_contacts(filters: Filters) -> QuerySet[Contact]:
    """The contacts a report counts (all live contacts for ``user=None``)."""
    return Contact.objects.filter(user_scope_q(filters.user, "")).filter(_filters_q(filters, ""))


def _round_half_up(value: Fraction, places: int) -> Decimal:
    scaled = abs(value) * 10**places
    whole = math.floor(scaled + Fraction(1, 2))
    return Decimal(-whole if value < 0 else whole).scaleb(-places)


def money(value: Fraction | Decimal | int | None) -> Decimal | None:
    """Exact value → Decimal rounded to cents, half up."""
    if value is None:
        return None
    return _round_half_up(Fraction(value), _CENTS)


def ratio(value: Fraction | Decimal | int | None) -> float | None:
    """Exact value → float rounded to 4 places, half up."""
    if value is None:
        return None
    return float(_round_half_up(Fraction(value), _RATIO_PLACES))


def divide(numerator, denominator) -> Fraction | None:
    """numerator / denominator as an exact Fraction; None when either is None or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return Fraction(numerator) / Fraction(denominator)


def _fraction(value: Decimal | int | None) -> Fraction:
    return Fraction(value) if value is not None else Fraction(0)


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpis:
    """Headline numbers of a period. ``leads_revenue`` is R of the doc (all paid revenue to date of
    the leads of P); ``repeat_buyers`` / ``buyers`` is the repurchase rate; ``referred_leads`` /
    ``referrers`` is the K-factor."""

    leads: int
    new_customers: int
    spend: Decimal | None
    cpl: Decimal | None
    cac: Decimal | None
    revenue: Decimal
    paid_orders: int
    buyers: int
    aov: Decimal | None
    leads_revenue: Decimal
    clv: Decimal | None
    roi: float | None
    ltv_cac: float | None
    repeat_buyers: int
    repurchase_rate: float | None
    referred_leads: int
    referrers: int
    k_factor: float | None


@dataclass(frozen=True)
class CohortRow:
    """One cohort of the retention matrix: ``counts[k]`` contacts active in month ``month + k`` and
    ``cells[k]`` = counts[k] / size; both ``None`` for months after the report's last month."""

    month: dt.date
    size: int
    counts: list[int | None]
    cells: list[float | None]


@dataclass(frozen=True)
class FunnelStep:
    key: str
    count: int
    step_conversion: float | None
    overall_conversion: float | None


@dataclass(frozen=True)
class FunnelGroup:
    """The funnel of one group: ``key`` is the channel id (None = no channel) or the cohort month."""

    key: Any
    label: str
    steps: list[FunnelStep]


@dataclass(frozen=True)
class Funnel:
    total: list[FunnelStep]
    groups: list[FunnelGroup] = field(default_factory=list)


@dataclass(frozen=True)
class ChannelRow:
    channel_id: int | None
    channel: str
    spend: Decimal | None
    leads: int
    new_customers: int
    cpl: Decimal | None
    cac: Decimal | None
    revenue: Decimal
    clv: Decimal | None
    roi: float | None
    ltv_cac: float | None


@dataclass(frozen=True)
class DecompositionPeriod:
    """The factors of one period: sales = retained_users × fission × conversion × aov × repurchase."""

    retained_users: int
    fission: float | None
    conversion: float | None
    aov: Decimal | None
    repurchase: float | None
    sales: Decimal
    referred_leads: int
    buyers: int
    paid_orders: int


@dataclass(frozen=True)
class DecompositionFactor:
    key: str
    a: float | Decimal | int | None
    b: float | Decimal | int | None
    change: float | None
    share: float | None


@dataclass(frozen=True)
class Decomposition:
    a: DecompositionPeriod
    b: DecompositionPeriod
    sales_change: float | None
    factors: list[DecompositionFactor]


@dataclass(frozen=True)
class LayerRow:
    """One RFM layer (``None`` = contacts not scored yet): revenue is all paid spend to date."""

    layer: str | None
    contacts: int
    revenue: Decimal
    average_spend: Decimal | None
    revenue_in_period: Decimal


@dataclass(frozen=True)
class CommunityHealth:
    community_id: int
    community: str
    members: int
    joins: int
    leaves: int
    active_7d: int
    active_30d: int
    activity_rate: float | None
    buyers: int
    conversion: float | None
    revenue: Decimal


@dataclass(frozen=True)
class KocRow:
    contact_id: int
    name: str
    referrals: int
    total_spent: Decimal
    role: str


@dataclass(frozen=True)
class TrendPoint:
    bucket: dt.date
    value: Decimal | int


@dataclass(frozen=True)
class Overview:
    kpis: Kpis
    cohorts: list[CohortRow]
    funnel: Funnel
    channels: list[ChannelRow]


# --------------------------------------------------------------------------------------------------
# The building blocks, each one query, shared within one report
# --------------------------------------------------------------------------------------------------


def _engaged_q(prefix: str = "") -> Q:
    """Has an inbound touchpoint (the last_interaction_at fact) or a paid purchase, to date."""
    return Q(**{f"{prefix}last_interaction_at__isnull": False}) | Q(**{f"{prefix}purchase_count__gte": 1})


def _funnel_step_q(step: str) -> Q:
    """Funnel step as a condition on a contact already known to be a lead of P."""
    conditions = {
        "leads": Q(),
        "engaged": _engaged_q(),
        "first_purchase": Q(purchase_count__gte=1),
        "repeat_purchase": Q(purchase_count__gte=2),
        "referrer": Q(purchase_count__gte=2, referral_count__gte=1),
    }
    if step not in conditions:
        raise ValidationError({"step": [f"Unknown funnel step {step!r}; one of {', '.join(FUNNEL_STEPS)}."]})
    return conditions[step]


def _funnel_aggregates() -> dict[str, Count]:
    return {step: Count("pk", filter=_funnel_step_q(step)) if step != "leads" else Count("pk") for step in FUNNEL_STEPS}


def _prorated_spend(filters: Filters) -> dict[int, Fraction]:
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


class _Report:
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
            self.contacts.filter(_in_period("acquired_at", self.filters))
            .values("channel_id")
            .annotate(
                leads_revenue=Sum("total_spent"),
                referred=Count("pk", filter=Q(referred_by__isnull=False)),
                **_funnel_aggregates(),
            )
            .order_by()
        )

    @cached_property
    def new_customers_by_channel(self) -> dict[int | None, int]:
        # COUNT(*), not COUNT(id): the partial index (first_purchase_at, channel) then answers it alone.
        rows = (
            self.contacts.filter(_in_period("first_purchase_at", self.filters))
            .values("channel_id")
            .annotate(n=Count("*"))
            .order_by()
        )
        return {row["channel_id"]: row["n"] for row in rows}

    @cached_property
    def referrers(self) -> int:
        return self.contacts.filter(_in_period("acquired_at", self.filters), referred_by__isnull=False).aggregate(
            n=Count("referred_by", distinct=True)
        )["n"]

    @cached_property
    def purchases(self) -> dict[str, Any]:
        """Revenue, paid orders, buyers and repeat buyers (≥ 2 paid orders) in P. COUNT(*), not COUNT(id),
        so that the covering indexes on paid purchases (by time, by contact) serve it without the table."""
        totals = (
            Purchase.objects.filter(contact_scope_q(self.filters), _in_period("purchased_at", self.filters))
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
            "revenue": _fraction(totals["revenue"]),
        }

    @cached_property
    def spend_by_channel(self) -> dict[int, Fraction] | None:
        return _prorated_spend(self.filters) if self.filters.spend_attributable else None

    def total(self, key: str) -> Any:
        values = [row[key] for row in self.leads_by_channel]
        if key == "leads_revenue":
            return sum((_fraction(v) for v in values), Fraction(0))
        return sum(values)

    # --- the parts ------------------------------------------------------------------------------

    def kpis(self) -> Kpis:
        leads = self.total("leads")
        new_customers = sum(self.new_customers_by_channel.values())
        spend = sum(self.spend_by_channel.values(), Fraction(0)) if self.spend_by_channel is not None else None
        purchases = self.purchases
        leads_revenue = self.total("leads_revenue")
        referred = self.total("referred")
        cpl = divide(spend, leads)
        cac = divide(spend, new_customers)
        clv = divide(leads_revenue, leads)
        return Kpis(
            leads=leads,
            new_customers=new_customers,
            spend=money(spend),
            cpl=money(cpl),
            cac=money(cac),
            revenue=money(purchases["revenue"]),
            paid_orders=purchases["paid_orders"],
            buyers=purchases["buyers"],
            aov=money(divide(purchases["revenue"], purchases["paid_orders"])),
            leads_revenue=money(leads_revenue),
            clv=money(clv),
            roi=ratio(divide(leads_revenue - spend, spend) if spend is not None else None),
            ltv_cac=ratio(divide(clv, cac)),
            repeat_buyers=purchases["repeat_buyers"],
            repurchase_rate=ratio(divide(purchases["repeat_buyers"], purchases["buyers"])),
            referred_leads=referred,
            referrers=self.referrers,
            k_factor=ratio(divide(referred, self.referrers)),
        )

    def channel_table(self) -> list[ChannelRow]:
        leads = {row["channel_id"]: row for row in self.leads_by_channel}
        new = self.new_customers_by_channel
        spend = self.spend_by_channel
        ids = set(leads) | set(new) | set(spend or ())
        names = dict(Channel.objects.filter(pk__in=[i for i in ids if i is not None]).values_list("pk", "name"))
        rows = []
        for channel_id in ids:
            row = leads.get(channel_id, {})
            n_leads = row.get("leads", 0)
            n_new = new.get(channel_id, 0)
            revenue = _fraction(row.get("leads_revenue"))
            channel_spend = spend.get(channel_id, Fraction(0)) if spend is not None else None
            cac = divide(channel_spend, n_new)
            clv = divide(revenue, n_leads)
            rows.append(
                ChannelRow(
                    channel_id=channel_id,
                    channel=names.get(channel_id, "") if channel_id is not None else "",
                    spend=money(channel_spend),
                    leads=n_leads,
                    new_customers=n_new,
                    cpl=money(divide(channel_spend, n_leads)),
                    cac=money(cac),
                    revenue=money(revenue),
                    clv=money(clv),
                    roi=ratio(divide(revenue - channel_spend, channel_spend) if channel_spend is not None else None),
                    ltv_cac=ratio(divide(clv, cac)),
                )
            )
        rows.sort(key=lambda r: (r.channel_id is None, r.channel, r.channel_id or 0))
        return rows

    def funnel(self, group_by: FunnelGroupBy = None) -> Funnel:
        total = _funnel_steps({step: self.total(step) for step in FUNNEL_STEPS})
        if group_by is None:
            return Funnel(total=total)
        if group_by == "channel":
            names = dict(Channel.objects.values_list("pk", "name"))
            groups = [
                FunnelGroup(
                    key=row["channel_id"],
                    label=names.get(row["channel_id"], "") if row["channel_id"] is not None else "",
                    steps=_funnel_steps(row),
                )
                for row in self.leads_by_channel
            ]
            groups.sort(key=lambda g: (g.key is None, g.label, g.key or 0))
            return Funnel(total=total, groups=groups)
        if group_by == "cohort":
            rows = (
                self.contacts.filter(_in_period("acquired_at", self.filters))
                .annotate(month=Trunc("acquired_at", "month", output_field=DateField(), tzinfo=business_timezone()))
                .values("month")
                .annotate(**_funnel_aggregates())
                .order_by("month")
            )
            groups = [
                FunnelGroup(key=row["month"], label=f"{row['month']:%Y-%m}", steps=_funnel_steps(row)) for row in rows
            ]
            return Funnel(total=total, groups=groups)
        raise ValidationError({"group_by": ["Group the funnel by channel or cohort."]})


def _funnel_steps(counts: dict[str, int]) -> list[FunnelStep]:
    leads = counts["leads"]
    steps, previous = [], None
    for step in FUNNEL_STEPS:
        count = counts[step]
        steps.append(
            FunnelStep(
                key=step,
                count=count,
                step_conversion=ratio(divide(count, previous)) if previous is not None else None,
                overall_conversion=ratio(divide(count, leads)),
            )
        )
        previous = count
    return steps


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def kpis(filters: Filters) -> Kpis:
    """Leads, new customers, spend, CPL, CAC, revenue, orders, buyers, AOV, CLV (R/M), ROI, LTV:CAC,
    repurchase rate and K-factor of the period (five queries)."""
    return _Report(filters).kpis()


def channel_table(filters: Filters) -> list[ChannelRow]:
    """Per acquisition channel (and "no channel"): spend in P, leads, new customers, CPL, CAC, revenue to
    date of the leads (R), CLV, ROI, LTV:CAC. Four queries whatever the number of channels."""
    return _Report(filters).channel_table()


def funnel(filters: Filters, *, group_by: FunnelGroupBy = None) -> Funnel:
    """The strictly nested funnel of the leads of P (facts to date), in total and per channel or per
    acquisition month. One query (two with ``group_by="cohort"``)."""
    return _Report(filters).funnel(group_by)


def _cohort_field(by: CohortBy) -> str:
    if by == "acquisition":
        return "acquired_at"
    if by == "first_purchase":
        return "first_purchase_at"
    raise ValidationError({"by": ["Cohorts are by acquisition or by first_purchase."]})


def _cohort_window(filters: Filters, months: int) -> tuple[dt.date, dt.date, dt.date]:
    """(first cohort month, last cohort month, last month with data): cohorts are the ``months``
    months ending with the month of date_to; months after that one or after the current month are in
    the future."""
    if not 1 <= months <= MAX_COHORT_MONTHS:
        raise ValidationError({"months": [f"Choose between 1 and {MAX_COHORT_MONTHS} months."]})
    last = month_start(filters.date_to)
    first = add_months(last, -(months - 1))
    last_data = min(last, month_start(timezone.localdate()))
    return first, last, last_data


def month_trunc(field_name: str) -> Trunc:
    """The calendar month (its first day) of a datetime column, in the business time zone."""
    return Trunc(field_name, "month", output_field=DateField(), tzinfo=business_timezone())


def activity_rows(
    view: CohortView, *, contact_q: Q, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> QuerySet:
    """The activity behind the retention cells — paid purchases (``view="purchase"``) or inbound
    touchpoints (``view="engagement"``) in [since, until) of the contacts matching ``contact_q`` (a
    condition through ``contact__``) — with its month. Only the rows of the needed months are read,
    through the purchased_at / occurred_at indexes."""
    bounds = {key: value for key, value in (("gte", since), ("lt", until)) if value is not None}
    if view == "purchase":
        rows = Purchase.objects.filter(contact_q, status=PAID, **{f"purchased_at__{k}": v for k, v in bounds.items()})
        when = "purchased_at"
    elif view == "engagement":
        rows = Touchpoint.objects.filter(contact_q, **{f"occurred_at__{k}": v for k, v in bounds.items()}).exclude(
            kind__in=Touchpoint.OUTBOUND_KINDS
        )
        when = "occurred_at"
    else:
        raise ValidationError({"view": ["The view is purchase or engagement."]})
    return rows.annotate(month=month_trunc(when))


def _rollup_slice(filters: Filters, by: CohortBy) -> dict[str, Any] | None:
    """The conditions on ``CohortActivity`` that select exactly the filtered contacts, or None when the
    rollup cannot (a community filter, a cohort filter on first-purchase cohorts, an anonymous user).
    Operators see the contacts they own (``ContactQuerySet``), which is the rollup's owner slice."""
    if filters.community_id is not None or (filters.cohort is not None and by != "acquisition"):
        return None
    conditions: dict[str, Any] = {}
    user = filters.user
    if user is not None and not Contact.objects.sees_all(user):
        if not user.is_authenticated or (filters.owner_id is not None and filters.owner_id != user.pk):
            return None
        conditions["owner_id"] = user.pk
    if filters.owner_id is not None:
        conditions["owner_id"] = filters.owner_id
    if filters.channel_id is not None:
        conditions["channel_id"] = filters.channel_id
    if filters.cohort_month is not None:
        conditions["cohort_month"] = filters.cohort_month
    return conditions


_LAST_ACTIVITY_FACT = {"purchase": "last_purchase_at", "engagement": "last_interaction_at"}


def _active_in_month(
    filters: Filters, cohort_field: str, view: CohortView, *, first: dt.date, month: dt.date
) -> list[tuple[dt.date, int]]:
    """(cohort month, contacts) of the cohorts from ``first`` with activity in ``month`` (up to the end of
    P), read from the contacts' last-activity fact (``last_purchase_at``, ``last_interaction_at``): a
    contact has activity in [start, until) exactly when its last activity is at or after ``start`` and
    either before ``until`` or an activity row in [start, until) exists — a look-up only the (rare)
    contacts with activity after ``until`` need. For the last month with data this reads the few contacts
    active since its start (the index contact_live_last_purchase alone, for purchases) instead of joining
    that month's activity rows to the contacts of twelve cohorts. One query."""
    start = day_start(month)
    until = min(day_start(add_months(month, 1)), filters.end)
    fact = _LAST_ACTIVITY_FACT[view]
    later = activity_rows(view, contact_q=Q(contact_id=OuterRef("pk")), since=start, until=until)
    return list(
        scoped_contacts(filters)
        .filter(**{f"{cohort_field}__gte": day_start(first), f"{cohort_field}__lt": filters.end})
        .filter(Q(**{f"{fact}__gte": start}), Q(**{f"{fact}__lt": until}) | Exists(later))
        .annotate(cohort=month_trunc(cohort_field))
        .values("cohort")
        .annotate(n=Count("*"))
        .order_by()
        .values_list("cohort", "n")
    )


def cohort_retention(
    filters: Filters,
    *,
    by: CohortBy = "acquisition",
    view: CohortView = "purchase",
    months: int = 12,
    live: bool = False,
) -> list[CohortRow]:
    """Retention matrix: cohorts are the ``months`` months ending with the month of ``date_to`` (by
    acquisition or first paid purchase month); cell (c, k) is the share of cohort c with a paid purchase
    (``view="purchase"``) or an inbound touchpoint (``view="engagement"``) in calendar month c + k.
    Everything is as of the end of P: contacts and activity after ``date_to`` are not counted, and cells
    after the month of ``date_to`` (or after the current month) are ``None``.

    The months that were over when the nightly rollup (``CohortActivity``) was built and lie wholly
    inside the report come from it (one query); the other months — normally just the current one — are
    queried live: cohort sizes, and the distinct active contacts per (cohort, month) — from the
    contacts' last-activity fact when only the last month is live (``_active_in_month``), from the
    activity rows otherwise: two queries. With ``live=True``, or filters the rollup cannot answer
    (community), everything is live.
    """
    cohort_field = _cohort_field(by)
    first, last, last_data = _cohort_window(filters, months)
    if view not in ("purchase", "engagement"):
        raise ValidationError({"view": ["The view is purchase or engagement."]})
    sizes: dict[dt.date, int] = {}
    active: dict[tuple[dt.date, int], int] = {}
    live_from = first
    rollup_slice = None if live else _rollup_slice(filters, by)
    if rollup_slice is not None:
        rows = list(
            CohortActivity.objects.filter(
                by=by, kind__in=[CohortActivity.Kind.SIZE, view], cohort_month__gte=first, cohort_month__lte=last
            )
            .filter(**rollup_slice)
            .values("kind", "cohort_month", "month")
            .annotate(n=Sum("contacts"), refreshed=Max("refreshed_at"))
            .order_by()
        )
        if rows:
            built_in = month_start(timezone.localtime(max(row["refreshed"] for row in rows)).date())
            month_is_whole = (filters.date_to + dt.timedelta(days=1)).day == 1
            live_from = max(first, min(built_in, last if not month_is_whole else add_months(last, 1)))
            for row in rows:
                if row["kind"] == CohortActivity.Kind.SIZE:
                    if row["cohort_month"] < live_from:
                        sizes[row["cohort_month"]] = row["n"]
                elif row["month"] < live_from:
                    active[(row["cohort_month"], months_between(row["cohort_month"], row["month"]))] = row["n"]
    if live_from <= last_data:
        since = day_start(live_from)
        sizes.update(
            scoped_contacts(filters)
            .filter(**{f"{cohort_field}__gte": since, f"{cohort_field}__lt": filters.end})
            .annotate(cohort=month_trunc(cohort_field))
            .values("cohort")
            .annotate(n=Count("*"))  # not COUNT(id): a partial index on live contacts answers it alone
            .order_by()
            .values_list("cohort", "n")
        )
        if live_from == last_data:
            # The usual case, a current rollup: only the last month is live. Read it from the contacts'
            # last-activity fact rather than joining its activity rows to twelve cohorts of contacts.
            for cohort, n in _active_in_month(filters, cohort_field, view, first=first, month=last_data):
                if cohort <= last_data:
                    active[(cohort, months_between(cohort, last_data))] = n
        else:
            cohorts_q = contact_scope_q(filters) & Q(
                **{f"contact__{cohort_field}__gte": day_start(first), f"contact__{cohort_field}__lt": filters.end}
            )
            for row in (
                activity_rows(view, contact_q=cohorts_q, since=since, until=filters.end)
                .annotate(cohort=month_trunc(f"contact__{cohort_field}"))
                .values("cohort", "month")
                .annotate(n=Count("contact_id", distinct=True))
                .order_by()
            ):
                offset = months_between(row["cohort"], row["month"])
                if offset >= 0:
                    active[(row["cohort"], offset)] = row["n"]
    matrix = []
    for index in range(months):
        cohort = add_months(first, index)
        size = sizes.get(cohort, 0)
        counts: list[int | None] = []
        cells: list[float | None] = []
        for k in range(months):
            if add_months(cohort, k) > last_data:
                counts.append(None)
                cells.append(None)
            else:
                n = active.get((cohort, k), 0)
                counts.append(n)
                cells.append(ratio(divide(n, size)))
        matrix.append(CohortRow(month=cohort, size=size, counts=counts, cells=cells))
    return matrix


def decomposition_factors(filters: Filters) -> dict[str, Any]:
    """The exact (unrounded) factors of one period: U, F, C, AOV, R and the sales they multiply to."""
    report = _Report(filters)
    referred_in_p = _in_period("acquired_at", filters) & Q(referred_by__isnull=False)
    counts = report.contacts.filter(acquired_at__lt=filters.end).aggregate(
        retained=Count("pk", filter=_engaged_q() & ~referred_in_p),
        referred=Count("pk", filter=referred_in_p),
    )
    purchases = report.purchases
    retained, referred = counts["retained"], counts["referred"]
    buyers, orders, sales = purchases["buyers"], purchases["paid_orders"], purchases["revenue"]
    fission = divide(retained + referred, retained)
    return {
        "retained_users": retained,
        "fission": fission,
        "conversion": divide(buyers, retained + referred) if fission is not None else None,
        "aov": divide(sales, orders),
        "repurchase": divide(orders, buyers),
        "sales": sales,
        "referred_leads": referred,
        "buyers": buyers,
        "paid_orders": orders,
    }


DECOMPOSITION_FACTORS = ("retained_users", "fission", "conversion", "aov", "repurchase")


def sales_decomposition(*, period_a: Filters, period_b: Filters) -> Decomposition:
    """Sales = retained users × fission × conversion × AOV × repurchase for periods A and B (an exact
    identity), each factor's change B/A, and its LMDI share of the change:
    share(f) = ln(f_B / f_A) / ln(S_B / S_A). Shares are empty when a factor or the sales are zero or
    empty in either period, or when the sales did not change."""
    exact_a, exact_b = decomposition_factors(period_a), decomposition_factors(period_b)
    sales_a, sales_b = exact_a["sales"], exact_b["sales"]
    sales_change = divide(sales_b, sales_a)
    usable = (
        sales_a > 0
        and sales_b > 0
        and sales_a != sales_b
        and all(exact[key] for exact in (exact_a, exact_b) for key in DECOMPOSITION_FACTORS)
    )
    factors = []
    for key in DECOMPOSITION_FACTORS:
        change = divide(exact_b[key], exact_a[key])
        share = math.log(change) / math.log(sales_change) if usable else None
        factors.append(
            DecompositionFactor(
                key=key,
                a=_factor_display(key, exact_a[key]),
                b=_factor_display(key, exact_b[key]),
                change=ratio(change),
                share=ratio(Fraction(share)) if share is not None else None,
            )
        )
    return Decomposition(
        a=_decomposition_period(exact_a),
        b=_decomposition_period(exact_b),
        sales_change=ratio(sales_change),
        factors=factors,
    )


def _factor_display(key: str, value: Any) -> Any:
    if key == "retained_users":
        return value
    if key == "aov":
        return money(value)
    return ratio(value)


def _decomposition_period(exact: dict[str, Any]) -> DecompositionPeriod:
    return DecompositionPeriod(
        retained_users=exact["retained_users"],
        fission=ratio(exact["fission"]),
        conversion=ratio(exact["conversion"]),
        aov=money(exact["aov"]),
        repurchase=ratio(exact["repurchase"]),
        sales=money(exact["sales"]),
        referred_leads=exact["referred_leads"],
        buyers=exact["buyers"],
        paid_orders=exact["paid_orders"],
    )


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
    in_period = dict(
        Purchase.objects.filter(contact_scope_q(filters), _in_period("purchased_at", filters))
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
        revenue = _fraction(row["revenue"] if row else None)
        rows.append(
            LayerRow(
                layer=layer.value if layer is not None else None,
                contacts=contacts,
                revenue=money(revenue),
                average_spend=money(divide(revenue, contacts)),
                revenue_in_period=money(_fraction(in_period.get(layer))),
            )
        )
    return rows


def _member_at(moment: dt.datetime, prefix: str = "") -> Q:
    """An open membership at ``moment``: joined before it and not left by then."""
    return Q(**{f"{prefix}joined_at__lt": moment}) & (
        Q(**{f"{prefix}left_at__isnull": True}) | Q(**{f"{prefix}left_at__gte": moment})
    )


def _active_since(since: dt.datetime, until: dt.datetime) -> Q:
    """The membership's contact had an inbound touchpoint in [since, until). The last_interaction_at
    fact rules out most contacts before the touchpoint index is probed."""
    inbound = (
        Touchpoint.objects.filter(contact_id=OuterRef("contact_id"), occurred_at__gte=since, occurred_at__lt=until)
        .exclude(kind__in=Touchpoint.OUTBOUND_KINDS)
        .values("pk")
    )
    return Q(contact__last_interaction_at__gte=since) & Q(Exists(inbound))


def community_health(filters: Filters) -> list[CommunityHealth]:
    """Per community the user may see (only ``community_id`` with that filter), over the filtered
    contacts: members (open memberships at the end of P), joins and leaves in P, members active (inbound
    touchpoint anywhere) in the 7 and 30 days ending with ``date_to``, activity rate = active 30d /
    members, members who bought in P, conversion = those buyers / members, and their revenue in P.
    Three queries."""
    end = filters.end
    since_7 = day_start(filters.date_to - dt.timedelta(days=6))
    since_30 = day_start(filters.date_to - dt.timedelta(days=29))
    communities = Community.objects.all()
    if filters.user is not None:
        communities = communities.visible_to(filters.user)
    if filters.community_id is not None:
        communities = communities.filter(pk=filters.community_id)
    names = list(communities.order_by("name", "id").values_list("pk", "name"))
    ids = [pk for pk, _name in names]
    member = _member_at(end)
    stats = {
        row["community_id"]: row
        for row in Membership.objects.filter(contact_scope_q(filters), community_id__in=ids)
        .values("community_id")
        .annotate(
            members=Count("contact_id", distinct=True, filter=member),
            joins=Count("pk", filter=_in_period("joined_at", filters)),
            leaves=Count("pk", filter=_in_period("left_at", filters)),
            active_7d=Count("contact_id", distinct=True, filter=member & _active_since(since_7, end)),
            active_30d=Count("contact_id", distinct=True, filter=member & _active_since(since_30, end)),
        )
        .order_by()
    }
    # One membership row per (community, member): a merge can leave a contact with two rows that are both
    # open at the end of P (its own and the duplicate's), which must not count its purchases twice.
    earlier_stay = Membership.objects.filter(
        _member_at(end), community_id=OuterRef("community_id"), contact_id=OuterRef("contact_id"), pk__lt=OuterRef("pk")
    )
    paid_in_p = Q(contact__purchases__status=PAID) & _in_period("contact__purchases__purchased_at", filters)
    buyers = {
        row["community_id"]: row
        for row in Membership.objects.filter(contact_scope_q(filters), member, community_id__in=ids)
        .filter(~Exists(earlier_stay))
        .annotate(paid=FilteredRelation("contact__purchases", condition=paid_in_p))
        .values("community_id")
        .annotate(buyers=Count("paid__contact_id", distinct=True), revenue=Sum("paid__amount"))
        .order_by()
    }
    result = []
    for pk, name in names:
        row = stats.get(pk, {})
        members = row.get("members", 0)
        bought = buyers.get(pk, {})
        result.append(
            CommunityHealth(
                community_id=pk,
                community=name,
                members=members,
                joins=row.get("joins", 0),
                leaves=row.get("leaves", 0),
                active_7d=row.get("active_7d", 0),
                active_30d=row.get("active_30d", 0),
                activity_rate=ratio(divide(row.get("active_30d", 0), members)),
                buyers=bought.get("buyers", 0),
                conversion=ratio(divide(bought.get("buyers", 0), members)),
                revenue=money(_fraction(bought.get("revenue"))),
            )
        )
    return result


def koc_ranking(*, user: Any, community_id: int, limit: int = 10) -> list[KocRow]:
    """Current members of a community the user may see, ranked by live contacts referred, then by paid
    spend to date (then by id). Operators see only their own contacts. One query (two for operators)."""
    if user is not None and not Community.objects.visible_to(user).filter(pk=community_id).exists():
        return []
    rows = (
        Membership.objects.filter(user_scope_q(user, "contact__"), community_id=community_id, left_at__isnull=True)
        .order_by("-contact__referral_count", "-contact__total_spent", "contact_id")
        .values_list("contact_id", "contact__name", "contact__referral_count", "contact__total_spent", "role")[:limit]
    )
    return [
        KocRow(contact_id=cid, name=name, referrals=referrals, total_spent=money(spent), role=role)
        for cid, name, referrals, spent, role in rows
    ]


def _buckets(first: dt.date, last: dt.date, grain: Grain) -> list[dt.date]:
    if grain == "month":
        bucket, step = month_start(first), None
    elif grain == "week":
        bucket, step = first - dt.timedelta(days=first.weekday()), dt.timedelta(days=7)
    elif grain == "day":
        bucket, step = first, dt.timedelta(days=1)
    else:
        raise ValidationError({"grain": ["The grain is month, week or day."]})
    buckets = []
    while bucket <= last:
        buckets.append(bucket)
        bucket = add_months(bucket, 1) if step is None else bucket + step
    return buckets


def trend(filters: Filters, *, metric: str, grain: Grain = "month") -> list[TrendPoint]:
    """One metric per month, week (from Monday) or day of P, every bucket present (0 when empty); the
    first and last buckets may be partial. Metrics: revenue, orders, buyers (distinct per bucket),
    leads, new_customers. One query."""
    buckets = _buckets(filters.date_from, filters.date_to, grain)
    tz = business_timezone()

    def bucket_of(field_name: str) -> Trunc:
        return Trunc(field_name, grain, output_field=DateField(), tzinfo=tz)

    if metric in ("revenue", "orders", "buyers"):
        rows = Purchase.objects.filter(
            contact_scope_q(filters), _in_period("purchased_at", filters), status=PAID
        ).annotate(bucket=bucket_of("purchased_at"))
        value = {"revenue": Sum("amount"), "orders": Count("pk"), "buyers": Count("contact_id", distinct=True)}[metric]
    elif metric in ("leads", "new_customers"):
        field_name = "acquired_at" if metric == "leads" else "first_purchase_at"
        rows = scoped_contacts(filters).filter(_in_period(field_name, filters)).annotate(bucket=bucket_of(field_name))
        value = Count("pk")
    else:
        raise ValidationError({"metric": [f"Unknown trend metric {metric!r}; one of {', '.join(TREND_METRICS)}."]})
    found = dict(rows.values("bucket").annotate(v=value).order_by().values_list("bucket", "v"))
    zero: Decimal | int = Decimal("0.00") if metric == "revenue" else 0
    return [
        TrendPoint(
            bucket=bucket,
            value=money(found[bucket]) if metric == "revenue" and bucket in found else found.get(bucket, zero),
        )
        for bucket in buckets
    ]


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
    paid_in_p = Purchase.objects.filter(_in_period("purchased_at", filters), status=PAID)
    if metric == "leads":
        return contacts.filter(_in_period("acquired_at", filters))
    if metric == "new_customers":
        return contacts.filter(_in_period("first_purchase_at", filters))
    if metric == "buyers":
        return contacts.filter(Exists(paid_in_p.filter(contact_id=OuterRef("pk"))))
    if metric == "repeat_buyers":
        repeat = paid_in_p.values("contact_id").annotate(n=Count("pk")).filter(n__gte=2).values("contact_id")
        return contacts.filter(pk__in=repeat)
    if metric == "referred_leads":
        return contacts.filter(_in_period("acquired_at", filters), referred_by__isnull=False)
    if metric == "funnel":
        return contacts.filter(_in_period("acquired_at", filters)).filter(_funnel_step_q(step or ""))
    if metric == "cohort":
        if not cohort:
            raise ValidationError({"cohort": ["Name the cohort month (YYYY-MM)."]})
        cohort_field = _cohort_field(by)
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


def overview(filters: Filters) -> Overview:
    """Everything the overview page shows, sharing queries: KPIs, the 12 × 12 acquisition-cohort
    purchase-retention matrix, the funnel and the channel table (at most nine queries)."""
    report = _Report(filters)
    return Overview(
        kpis=report.kpis(),
        cohorts=cohort_retention(filters),
        funnel=report.funnel(),
        channels=report.channel_table(),
    )
