"""Reads of campaigns data, scoped to what the user may see.

Who sees which row is declared on the models' QuerySets (``campaigns.models``): managers and approvers
see every broadcast and delivery; operators see the broadcasts they wrote, the deliveries to their own
contacts and their own follow-up tasks; a broadcast reaches only the contacts its author may see
(``broadcast_audience``). A segment's contacts are read in ``campaigns.segments``.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum

from communities.models import Membership
from contacts.models import Contact, Purchase

from .models import Automation, Broadcast, Delivery, FollowUpTask, MessageTemplate, OutboxMessage, Segment
from .segments import segment_q


def broadcast_list(user) -> QuerySet[Broadcast]:
    return (
        Broadcast.objects.visible_to(user)
        .select_related("segment", "template", "created_by", "approved_by")
        .prefetch_related("communities")
    )


def delivery_list(user) -> QuerySet[Delivery]:
    return Delivery.objects.visible_to(user).select_related("contact", "broadcast", "automation_run__automation")


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
    parts = []
    if broadcast.segment_id:
        parts.append(segment_q(broadcast_segment_rules(broadcast)))
    community_ids = list(broadcast.communities.values_list("pk", flat=True))
    if community_ids:
        members = Membership.objects.filter(
            contact_id=OuterRef("pk"), community_id__in=community_ids, left_at__isnull=True
        )
        parts.append(Q(Exists(members)))
    contacts = Contact.objects.live().visible_to(broadcast.created_by).filter(erased_at__isnull=True)
    if not parts:
        return contacts.none()
    audience = parts[0]
    for part in parts[1:]:
        audience |= part
    return contacts.filter(audience)


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
