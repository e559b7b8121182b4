"""Cohort retention: the share of each monthly cohort active in each later month, read from the nightly
rollup for the months that are over and live for the open ones."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from contacts.models import Contact, Purchase, Touchpoint

from ..models import CohortActivity
from .numbers import divide, ratio
from .scope import (
    PAID,
    Filters,
    add_months,
    contact_scope_q,
    day_start,
    month_start,
    month_trunc,
    months_between,
    scoped_contacts,
)

CohortBy = Literal["acquisition", "first_purchase"]
CohortView = Literal["purchase", "engagement"]
MAX_COHORT_MONTHS = 36


@dataclass(frozen=True)
class CohortRow:
    """One cohort of the retention matrix: ``counts[k]`` contacts active in month ``month + k`` and
    ``cells[k]`` = counts[k] / size; both ``None`` for months after the report's last month."""

    month: dt.date
    size: int
    counts: list[int | None]
    cells: list[float | None]


@dataclass(frozen=True)
class PartialMonth:
    """The calendar month of a retention matrix that is counted only in part: up to ``through`` (today,
    which is not over: ``to_date``; or the end of the period, before the month ends)."""

    month: dt.date
    through: dt.date
    to_date: bool


def partial_month(date_to: dt.date, today: dt.date | None = None) -> PartialMonth | None:
    """The month of the matrix (as of the end of P) whose cells count only part of it: the month of today
    when P reaches today (today is not over), else the month of ``date_to`` when P ends before that
    month does; None when the last month counted is complete."""
    today = today or timezone.localdate()
    if date_to >= today:
        return PartialMonth(month=month_start(today), through=today, to_date=True)
    if add_months(month_start(date_to), 1) - dt.timedelta(days=1) != date_to:
        return PartialMonth(month=month_start(date_to), through=date_to, to_date=False)
    return None


def cohort_date_field(by: CohortBy) -> str:
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
    cohort_field = cohort_date_field(by)
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
