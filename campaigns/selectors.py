"""Reads of campaigns data, scoped to what the user may see.

Managers (and everyone who sees all contacts) see every broadcast and delivery; operators see the
broadcasts they wrote, the deliveries to their own contacts and their own follow-up tasks.
"""

from __future__ import annotations

from django.db.models import Count, QuerySet, Sum

from contacts.models import Purchase
from contacts.selectors import can_see_all_contacts

from .models import Automation, Broadcast, Delivery, FollowUpTask, MessageTemplate, OutboxMessage, Segment


def _sees_all(user) -> bool:
    return can_see_all_contacts(user) or bool(user and user.has_perm("campaigns.approve_broadcast"))


def broadcasts_visible_to(user) -> QuerySet[Broadcast]:
    qs = Broadcast.objects.all()
    if not _sees_all(user):
        qs = qs.filter(created_by=user) if user and user.is_authenticated else qs.none()
    return qs


def broadcast_list(user) -> QuerySet[Broadcast]:
    return (
        broadcasts_visible_to(user)
        .select_related("segment", "template", "created_by", "approved_by")
        .prefetch_related("communities")
    )


def deliveries_visible_to(user) -> QuerySet[Delivery]:
    qs = Delivery.objects.all()
    if not _sees_all(user):
        qs = qs.filter(contact__owner=user) if user and user.is_authenticated else qs.none()
    return qs


def delivery_list(user) -> QuerySet[Delivery]:
    return deliveries_visible_to(user).select_related("contact", "broadcast", "automation_run__automation")


def outbox_visible_to(user) -> QuerySet[OutboxMessage]:
    qs = OutboxMessage.objects.all()
    if not _sees_all(user):
        qs = qs.filter(contact__owner=user) if user and user.is_authenticated else qs.none()
    return qs.select_related("contact", "delivery__broadcast")


def segments_visible_to(user) -> QuerySet[Segment]:
    """Segments are shared definitions; what they *count* is scoped by the user (``segment_contacts``)."""
    return Segment.objects.select_related("created_by")


def templates_visible_to(user) -> QuerySet[MessageTemplate]:
    return MessageTemplate.objects.select_related("created_by")


def automations_visible_to(user) -> QuerySet[Automation]:
    return Automation.objects.select_related("condition", "template", "tag", "owner")


def tasks_visible_to(user) -> QuerySet[FollowUpTask]:
    qs = FollowUpTask.objects.select_related("contact", "assignee", "automation_run__automation")
    if not _sees_all(user):
        qs = qs.filter(assignee=user) if user and user.is_authenticated else qs.none()
    return qs


def broadcast_progress(broadcast: Broadcast) -> dict:
    """Targeted, and how many deliveries are pending, in flight, sent, failed and suppressed (by reason).
    One grouped query over the broadcast's deliveries."""
    counts = {status: 0 for status in Delivery.Status.values}
    reasons = {reason: 0 for reason in Delivery.Reason.values}
    rows = (
        Delivery.objects.filter(broadcast=broadcast).values_list("status", "reason").annotate(n=Count("id")).order_by()
    )
    for status, reason, n in rows:
        counts[status] += n
        if status == Delivery.Status.SUPPRESSED and reason:
            reasons[reason] += n
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
        "done": done,
        "percent": round(100 * done / targeted, 1) if targeted else (100.0 if broadcast.planned_at else 0.0),
    }


def broadcast_results(broadcast: Broadcast) -> dict:
    """Progress plus conversions: recipients who made a paid purchase within the conversion window after
    their message, those orders and their revenue (refunds excluded)."""
    from .sending import conversions_q

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
