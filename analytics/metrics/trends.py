"""One metric per month, week or day of a period."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from django.core.exceptions import ValidationError
from django.db.models import Count, DateField, Sum
from django.db.models.functions import Trunc

from contacts.models import Purchase

from .numbers import money
from .scope import (
    PAID,
    Filters,
    add_months,
    business_timezone,
    contact_scope_q,
    in_period,
    month_start,
    scoped_contacts,
)

Grain = Literal["month", "week", "day"]
TREND_METRICS = ("revenue", "orders", "buyers", "leads", "new_customers")
#: How a bucket can be incomplete (``BucketSpan.partial``): it holds today, which is not over ("month to
#: date"); the period cuts it; or it has not begun yet.
TO_DATE, CUT, FUTURE = "to_date", "cut", "future"


@dataclass(frozen=True)
class TrendPoint:
    bucket: dt.date
    value: Decimal | int


@dataclass(frozen=True)
class BucketSpan:
    """The days of a trend bucket that are counted: ``first`` … ``last`` (the bucket cut to the period),
    and ``partial``: None for a whole bucket, else ``TO_DATE`` (it holds today: counted to date), ``CUT``
    (the period starts or ends inside it) or ``FUTURE`` (it starts after today)."""

    bucket: dt.date
    first: dt.date
    last: dt.date
    partial: str | None


def bucket_last_day(bucket: dt.date, grain: Grain) -> dt.date:
    if grain == "month":
        return add_months(month_start(bucket), 1) - dt.timedelta(days=1)
    return bucket + dt.timedelta(days=6 if grain == "week" else 0)


def bucket_spans(
    buckets: list[dt.date], grain: Grain, *, date_from: dt.date, date_to: dt.date, today: dt.date
) -> list[BucketSpan]:
    """Which buckets of a trend are incomplete: the one holding today (the day is not over, so the
    month, week or day is counted *to date*), the ones the period cuts, the ones still to come."""
    spans = []
    for bucket in buckets:
        whole_last = bucket_last_day(bucket, grain)
        first, last = max(bucket, date_from), min(whole_last, date_to)
        if first > today:
            partial: str | None = FUTURE
        elif first <= today <= last:
            partial = TO_DATE
        elif first > bucket or last < whole_last:
            partial = CUT
        else:
            partial = None
        spans.append(BucketSpan(bucket=bucket, first=first, last=last, partial=partial))
    return spans


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
            contact_scope_q(filters), in_period("purchased_at", filters), status=PAID
        ).annotate(bucket=bucket_of("purchased_at"))
        value = {"revenue": Sum("amount"), "orders": Count("pk"), "buyers": Count("contact_id", distinct=True)}[metric]
    elif metric in ("leads", "new_customers"):
        field_name = "acquired_at" if metric == "leads" else "first_purchase_at"
        rows = scoped_contacts(filters).filter(in_period(field_name, filters)).annotate(bucket=bucket_of(field_name))
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
