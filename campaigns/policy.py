"""The sending policy: frequency caps and quiet hours, as data the planner and the senders apply.

Caps count a contact's *marketing* deliveries that are claimed or sent (``sending``/``sent``), by the
time they were claimed. A delivery is claimed inside the same transaction that checks the caps, while
the contact rows are locked (PostgreSQL) or the database is write-locked (SQLite), so two broadcasts
sending to the same contact at once cannot both slip under a cap.

This module reads the policy; changing it is ``policy_update`` in ``campaigns.services``.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from analytics.metrics import business_timezone

from .models import Delivery, FrequencyCap, FrequencyPolicy

COUNTED_STATUSES = (Delivery.Status.SENDING, Delivery.Status.SENT)


@dataclass(frozen=True)
class CapWindow:
    """One cap resolved at a moment: count deliveries claimed since ``since`` (on ``medium`` or on all
    media when it is empty); a contact with ``limit`` or more may not receive another."""

    cap_id: int
    medium: str
    since: dt.datetime
    limit: int

    def deliveries(self) -> QuerySet[Delivery]:
        rows = Delivery.objects.filter(status__in=COUNTED_STATUSES, is_marketing=True, claimed_at__gte=self.since)
        return rows.filter(medium=self.medium) if self.medium else rows

    def applies_to(self, medium: str) -> bool:
        return not self.medium or self.medium == medium

    def describe(self) -> str:
        return _("%(limit)s since %(since)s") % {"limit": self.limit, "since": self.since.isoformat()}


def policy_get() -> FrequencyPolicy:
    """The workspace policy row (created by the migration; recreated with defaults if someone deleted it)."""
    policy, _created = FrequencyPolicy.objects.get_or_create(pk=1)
    return policy


def cap_windows(*, medium: str | None, now: dt.datetime | None = None) -> list[CapWindow]:
    """The caps that apply to a message on ``medium`` sent at ``now`` (every cap when ``medium`` is None)."""
    now = now or timezone.now()
    local = timezone.localtime(now, business_timezone())
    windows = []
    for cap in FrequencyCap.objects.all():
        if medium is not None and cap.medium and cap.medium != medium:
            continue
        if cap.window == FrequencyCap.Window.CALENDAR_MONTH:
            month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            days = calendar.monthrange(local.year, local.month)[1]
            windows.append(CapWindow(cap.pk, cap.medium, month_start, cap.max_messages or days))
        else:
            windows.append(CapWindow(cap.pk, cap.medium, now - dt.timedelta(days=cap.window_days), cap.max_messages))
    return windows


def caps_apply(*, is_marketing: bool, policy: FrequencyPolicy) -> bool:
    """Service messages (an order thank-you) skip the caps when the policy says so; never consent."""
    return is_marketing or not policy.exempt_service_messages


def over_cap_contacts(windows: list[CapWindow]) -> QuerySet | None:
    """A subquery of the contact ids already at or over any of ``windows`` (set-based, for planning)."""
    subqueries = [
        window.deliveries()
        .values("contact_id")
        .annotate(n=Count("id"))
        .filter(n__gte=window.limit)
        .values("contact_id")
        for window in windows
    ]
    if not subqueries:
        return None
    query = subqueries[0]
    for other in subqueries[1:]:
        query = query.union(other)
    return query


def cap_counts(windows: list[CapWindow], contact_ids: list[int]) -> dict[int, dict[int, int]]:
    """{cap id: {contact id: deliveries counted}} for a chunk of contacts (one query per cap)."""
    counts: dict[int, dict[int, int]] = {}
    for window in windows:
        rows = (
            window.deliveries()
            .filter(contact_id__in=contact_ids)
            .values("contact_id")
            .annotate(n=Count("id"))
            .values_list("contact_id", "n")
        )
        counts[window.cap_id] = dict(rows)
    return counts


def quiet_hours_end(now: dt.datetime | None = None, *, policy: FrequencyPolicy) -> dt.datetime | None:
    """When ``now`` falls in the quiet hours (in the business time zone, every contact's default), the
    moment they end; otherwise None. Quiet hours may wrap midnight (22:00–08:00)."""
    if not policy.quiet_hours_enabled or policy.quiet_start == policy.quiet_end:
        return None
    tz = business_timezone()
    local = timezone.localtime(now or timezone.now(), tz)
    start, end, clock = policy.quiet_start, policy.quiet_end, local.time()
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:
        inside = clock >= start or clock < end
        end_day = local.date() + dt.timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    return dt.datetime.combine(end_day, end, tzinfo=tz)


PRESETS = {
    # WeCom's own default for customer broadcasts, and the two stricter settings its admins may choose.
    "wecom_monthly": [{"medium": "", "window": "month", "max_messages": None}],
    "weekly_7": [{"medium": "", "window": "rolling", "window_days": 7, "max_messages": 7}],
    "daily_1": [{"medium": "", "window": "rolling", "window_days": 1, "max_messages": 1}],
}


def consent_q(prefix: str = "") -> Q:
    """Contacts we may message at all: consent given, not opted out, not erased or merged."""
    return Q(
        **{
            f"{prefix}marketing_consent": True,
            f"{prefix}opted_out_at__isnull": True,
            f"{prefix}erased_at__isnull": True,
            f"{prefix}merged_into__isnull": True,
        }
    )
