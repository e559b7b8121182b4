"""The sending policy: frequency caps and quiet hours, as data the planner and the senders apply.

Caps count a contact's *marketing* deliveries that are claimed or sent (``sending``/``sent``), by the
time they were claimed. A delivery is claimed inside the same transaction that checks the caps, while
the contact rows are locked (PostgreSQL) or the database is write-locked (SQLite), so two broadcasts
sending to the same contact at once cannot both slip under a cap.

The planner's checks (``recipients_checked``: consent, opt-out, an address for the medium, a cap already
reached) are one SQL expression over contacts: planning writes it into the ledger, and the broadcast editor
counts it grouped by reason (``recipients_estimate``) — the same rules, never restated.

This module reads the policy; changing it is ``policy_update`` in ``campaigns.services``.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from django.db.models import Case, CharField, Count, Q, QuerySet, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from analytics.metrics import business_timezone

from .gateways import gateway_for
from .models import Delivery, FrequencyCap, FrequencyPolicy

COUNTED_STATUSES = (Delivery.Status.SENDING, Delivery.Status.SENT)

# The contact field that addresses a message on each medium (the outbox needs none).
ADDRESS_FIELDS = {
    "wecom": "wecom_external_userid",
    "group": "wecom_external_userid",
    "official_account": "wechat_unionid",
    "sms": "phone",
    "email": "email",
}
# The reasons the planner may give, in the order it checks them (the first that applies wins).
PLANNED_REASONS = (
    Delivery.Reason.OPTED_OUT,
    Delivery.Reason.NO_CONSENT,
    Delivery.Reason.NO_ADDRESS,
    Delivery.Reason.FREQUENCY_CAP,
)


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
        .order_by()  # no ORDER BY inside a UNION (SQLite refuses it)
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


# --- The planner's checks, as SQL --------------------------------------------------------------


def suppression_reason(*, medium: str, needs_address: bool, over_cap) -> Case:
    """The SQL expression that decides, per contact, why a delivery is suppressed ('' = send it)."""
    whens = [
        When(opted_out_at__isnull=False, then=Value(Delivery.Reason.OPTED_OUT)),
        When(marketing_consent=False, then=Value(Delivery.Reason.NO_CONSENT)),
    ]
    if needs_address:
        field = ADDRESS_FIELDS[medium]
        whens.append(When(Q(**{f"{field}__isnull": True}) | Q(**{field: ""}), then=Value(Delivery.Reason.NO_ADDRESS)))
    if over_cap is not None:
        whens.append(When(pk__in=over_cap, then=Value(Delivery.Reason.FREQUENCY_CAP)))
    return Case(*whens, default=Value(""), output_field=CharField())


def recipients_checked(
    contacts: QuerySet, *, medium: str, is_marketing: bool, now: dt.datetime, current: FrequencyPolicy | None = None
) -> QuerySet:
    """``contacts`` annotated with ``d_reason``: why a message on ``medium`` would be suppressed if planned
    at ``now`` ('' = it would be sent): opted out, no consent, no address for the medium, a cap already
    reached. What ``sending.broadcast_plan`` writes, and what the editor's estimate counts."""
    current = current or policy_get()
    over_cap = None
    if caps_apply(is_marketing=is_marketing, policy=current):
        over_cap = over_cap_contacts(cap_windows(medium=medium, now=now))
    reason = suppression_reason(medium=medium, needs_address=gateway_for(medium).needs_address, over_cap=over_cap)
    return contacts.annotate(d_reason=reason)


def recipients_estimate(contacts: QuerySet, *, medium: str, is_marketing: bool, now: dt.datetime) -> dict:
    """Who of ``contacts`` a message would reach if it were planned now: ``{"total", "eligible",
    "by_reason": {reason: n}}`` — one ``COUNT … GROUP BY`` over the planner's own expression."""
    rows = (
        recipients_checked(contacts, medium=medium, is_marketing=is_marketing, now=now)
        .order_by()
        .values("d_reason")
        .annotate(n=Count("pk"))
        .values_list("d_reason", "n")
    )
    by_reason = dict.fromkeys(PLANNED_REASONS, 0)
    for reason, n in rows:
        by_reason[reason] = by_reason.get(reason, 0) + n
    eligible = by_reason.pop("", 0)
    return {"total": eligible + sum(by_reason.values()), "eligible": eligible, "by_reason": by_reason}
