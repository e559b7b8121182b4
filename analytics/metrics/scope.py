"""Filters, time and scoping: the period and filters of a report (``Filters``), the business calendar,
and the conditions that pick the contacts a report counts — live, visible to the person asking
(``Contact.objects.visibility_q``), inside the filters."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import DateField, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Trunc
from django.utils import timezone

from communities.models import Membership
from contacts.models import Contact, Purchase

PAID = Purchase.Status.PAID


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


def month_trunc(field_name: str) -> Trunc:
    """The calendar month (its first day) of a datetime column, in the business time zone."""
    return Trunc(field_name, "month", output_field=DateField(), tzinfo=business_timezone())


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


def in_period(field_name: str, filters: Filters) -> Q:
    return Q(**{f"{field_name}__gte": filters.start, f"{field_name}__lt": filters.end})


def user_scope_q(user: Any, prefix: str) -> Q:
    """Live contacts the user may see, as a condition through a relation to ``Contact``
    (``prefix="contact__"``): the contacts' own visibility rule (``ContactQuerySet``) written as column
    conditions, so that the reports join contacts once (a semi-join on a queryset reads an operator's
    contacts twice). ``user=None`` is the whole book (commands and nightly jobs)."""
    q = Q(**{f"{prefix}merged_into__isnull": True})
    visible = Contact.objects.visibility_q(user, prefix) if user is not None else None
    return q & visible if visible is not None else q


def filters_q(filters: Filters, prefix: str) -> Q:
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
    return user_scope_q(filters.user, prefix) & filters_q(filters, prefix)


def scoped_contacts(filters: Filters) -> QuerySet[Contact]:
    """The contacts a report counts (all live contacts for ``user=None``)."""
    return Contact.objects.filter(user_scope_q(filters.user, "")).filter(filters_q(filters, ""))
