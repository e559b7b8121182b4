"""Reads of campaigns data, scoped to what the user may see.

Who sees which row is declared on the models' QuerySets (``campaigns.models``): managers and approvers
see every broadcast and delivery; operators see the broadcasts they wrote, the deliveries to their own
contacts and their own follow-up tasks; a broadcast reaches only the contacts its author may see
(``broadcast_audience``). A segment's contacts are read in ``campaigns.segments``.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from communities.models import Membership
from contacts.models import Contact, Purchase

from .models import (
    Automation,
    AutomationRun,
    Broadcast,
    Delivery,
    FollowUpTask,
    MessageTemplate,
    OutboxMessage,
    Segment,
)
from .segments import segment_q


def broadcast_list(user) -> QuerySet[Broadcast]:
    return (
        Broadcast.objects.visible_to(user)
        .select_related("segment", "template", "created_by", "approved_by")
        .prefetch_related("communities")
    )


def delivery_list(user) -> QuerySet[Delivery]:
    return Delivery.objects.visible_to(user).select_related("contact", "broadcast", "automation_run__automation")


def broadcast_recipients(user, broadcast: Broadcast) -> QuerySet[Delivery]:
    """A broadcast's deliveries, one per recipient, limited to the contacts ``user`` may see (an operator
    sees the messages to their own contacts), with what the list shows of each contact."""
    return (
        Delivery.objects.visible_to(user)
        .filter(broadcast=broadcast)
        .select_related("contact")
        .only(
            *("id", "status", "reason", "hold", "not_before", "sent_at", "attempts", "error", "medium", "created_at"),
            *("broadcast_id", "contact__id", "contact__name", "contact__owner_id", "contact__erased_at"),
        )
        .order_by("id")
    )


def automation_runs(user, automation: Automation) -> QuerySet[AutomationRun]:
    """An automation's runs for the contacts ``user`` may see, newest first, each with its delivery (the
    message it sent, if any) and its follow-up task, in one query per page."""
    return (
        AutomationRun.objects.visible_to(user)
        .filter(automation=automation)
        .select_related("contact", "product", "delivery", "task")
        .order_by("-due_at", "-id")
    )


def automation_run_counts(user, automation: Automation) -> dict[str, int]:
    """{status: runs} of one automation, for the contacts ``user`` may see (one grouped query)."""
    counts = dict.fromkeys(AutomationRun.Status.values, 0)
    rows = AutomationRun.objects.visible_to(user).filter(automation=automation).values_list("status")
    counts.update(dict(rows.annotate(n=Count("id")).order_by()))
    return counts


def outbox_list(user) -> QuerySet[OutboxMessage]:
    return OutboxMessage.objects.visible_to(user).select_related("contact", "delivery__broadcast")


def segment_list(user) -> QuerySet[Segment]:
    """Segments are shared definitions; what they *count* is scoped by the user (``segment_contacts``)."""
    return Segment.objects.visible_to(user).select_related("created_by")


def template_list(user) -> QuerySet[MessageTemplate]:
    return MessageTemplate.objects.visible_to(user).select_related("created_by")


def automation_list(user) -> QuerySet[Automation]:
    return Automation.objects.visible_to(user).select_related("condition", "template", "tag", "owner")


def task_list(user) -> QuerySet[FollowUpTask]:
    return FollowUpTask.objects.visible_to(user).select_related("contact", "assignee", "automation_run__automation")


def broadcast_segment_rules(broadcast: Broadcast) -> dict:
    """The segment rules a broadcast targets: the ones frozen when it was approved, else (a draft, or a
    broadcast awaiting approval) its segment's current rules."""
    if broadcast.audience_rules is not None:
        return broadcast.audience_rules
    return broadcast.segment.rules


def broadcast_audience(broadcast: Broadcast) -> QuerySet[Contact]:
    """The live contacts a broadcast targets: its segment and/or the current members of its communities,
    limited to the contacts its author may see (an operator's broadcast reaches only their own)."""
    return audience_contacts(
        author=broadcast.created_by,
        rules=broadcast_segment_rules(broadcast) if broadcast.segment_id else None,
        community_ids=list(broadcast.communities.values_list("pk", flat=True)),
    )


def audience_contacts(*, author, rules: dict | None, community_ids: list[int]) -> QuerySet[Contact]:
    """The live contacts matching segment ``rules`` and/or currently in ``community_ids``, among those
    ``author`` may see: a broadcast's audience, also before it is saved (the editor's estimate). Raises
    ``ValidationError`` when the rules do not compile."""
    parts = []
    if rules is not None:
        parts.append(segment_q(rules))
    if community_ids:
        members = Membership.objects.filter(
            contact_id=OuterRef("pk"), community_id__in=community_ids, left_at__isnull=True
        )
        parts.append(Q(Exists(members)))
    contacts = Contact.objects.live().visible_to(author).filter(erased_at__isnull=True)
    if not parts:
        return contacts.none()
    audience = parts[0]
    for part in parts[1:]:
        audience |= part
    return contacts.filter(audience)


def broadcast_progress(broadcast: Broadcast, *, now: dt.datetime | None = None) -> dict:
    """Targeted, and how many deliveries are pending, in flight, sent, failed and suppressed (by reason),
    and what holds the pending ones (``holds``: quiet hours until when, retries). One grouped query over
    the broadcast's deliveries."""
    now = now or timezone.now()
    counts = {status: 0 for status in Delivery.Status.values}
    reasons = {reason: 0 for reason in Delivery.Reason.values}
    held = Q(status=Delivery.Status.PENDING, not_before__gt=now)
    rows = (
        Delivery.objects.filter(broadcast=broadcast)
        .values_list("status", "reason", "hold")
        .annotate(n=Count("id"), held=Count("id", filter=held), first=Min("not_before", filter=held))
        .annotate(last=Max("not_before", filter=held))
        .order_by()
    )
    holds: dict[str, dict] = {}
    for status, reason, hold, n, n_held, first, last in rows:
        counts[status] += n
        if status == Delivery.Status.SUPPRESSED and reason:
            reasons[reason] += n
        if n_held:
            # The quiet hours hold everything until one moment (their end); retries wait each its own backoff.
            entry = holds.setdefault(hold, {"hold": hold, "count": 0, "first": first, "last": last})
            entry["count"] += n_held
            entry["first"], entry["last"] = min(entry["first"], first), max(entry["last"], last)
    targeted = sum(counts.values())
    done = targeted - counts[Delivery.Status.PENDING] - counts[Delivery.Status.SENDING]
    return {
        "status": broadcast.status,
        "targeted": targeted,
        "pending": counts[Delivery.Status.PENDING],
        "sending": counts[Delivery.Status.SENDING],
        "sent": counts[Delivery.Status.SENT],
        "failed": counts[Delivery.Status.FAILED],
        "suppressed": counts[Delivery.Status.SUPPRESSED],
        "suppressed_by_reason": reasons,
        "holds": [
            {**h, "until": h["last"] if h["hold"] == Delivery.Hold.QUIET_HOURS else h["first"]}
            for h in sorted(holds.values(), key=lambda h: (h["hold"] != Delivery.Hold.QUIET_HOURS, h["hold"]))
        ],
        "done": done,
        "percent": round(100 * done / targeted, 1) if targeted else (100.0 if broadcast.planned_at else 0.0),
    }


def broadcast_results(broadcast: Broadcast) -> dict:
    """Progress plus conversions: recipients who made a paid purchase within the conversion window after
    their message, those orders and their revenue (refunds excluded)."""
    results = broadcast_progress(broadcast)
    purchases = Purchase.objects.filter(conversions_q(broadcast))
    totals = purchases.aggregate(orders=Count("id"), revenue=Sum("amount"), buyers=Count("contact_id", distinct=True))
    sent = results["sent"]
    results.update(
        conversion_window_days=broadcast.conversion_window_days,
        converted_contacts=totals["buyers"] or 0,
        conversion_orders=totals["orders"] or 0,
        conversion_revenue=totals["revenue"] or 0,
        conversion_rate=round((totals["buyers"] or 0) / sent, 4) if sent else None,
    )
    return results


def conversions_q(broadcast: Broadcast) -> Q:
    """Paid purchases by the broadcast's recipients within its conversion window after their message."""
    window = dt.timedelta(days=broadcast.conversion_window_days)
    sent = Delivery.objects.filter(
        broadcast=broadcast,
        status=Delivery.Status.SENT,
        contact_id=OuterRef("contact_id"),
        sent_at__lte=OuterRef("purchased_at"),
        sent_at__gt=OuterRef("purchased_at") - window,
    )
    return Q(status=Purchase.Status.PAID) & Q(Exists(sent))
