"""The blocks only those who run the team see: the team table (per staff member: tasks due, the week's
figures), broadcasts waiting for approval, failed imports, WeCom syncs and callbacks that failed or
stalled, and the groups that need attention. Each block is one query, scoped with ``visible_to``; the
views show a block only to users holding its permission."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce

from campaigns.models import Broadcast
from communities.models import Community, Membership
from contacts.models import ImportJob, Touchpoint
from contacts.selectors import staff_users
from wecom.inbox import STUCK_AFTER
from wecom.models import CallbackEvent, SyncRun
from wecom.services import STALE_AFTER

from .queries import LIST_LIMIT, Figures, Listing, listing_of, staff_figures, tasks_due_by_assignee
from .week import WorkWeek

User = get_user_model()

#: Failed imports, failed syncs and failed callbacks of this many days are listed.
RECENT_DAYS = 7
#: A group is quiet when none of its members interacted in it (an inbound touchpoint in the group) for this
#: many days; groups younger than that are not judged yet.
QUIET_GROUP_DAYS = 14
#: A group is nearly full from this share of its capacity (a WeChat group holds 500): 9 in 10.
NEAR_CAPACITY = (9, 10)


@dataclass(frozen=True)
class StaffRow:
    """One line of the team table: a staff member (``user_id`` None: contacts without an owner)."""

    user_id: int | None
    name: str
    overdue: int
    later_today: int
    figures: Figures

    @property
    def due(self) -> int:
        return self.overdue + self.later_today


def team_table(user: Any, week: WorkWeek) -> tuple[list[StaffRow], Figures]:
    """Every active staff member (and anyone else who owns contacts or has tasks) with their open tasks
    due by tonight and their figures of the week, by name; contacts without an owner last. And the team's
    totals. Five queries (figures 3, tasks 1, names 1), whatever the size of the team."""
    figures = staff_figures(user, week)
    tasks = tasks_due_by_assignee(user, week)
    ids = {pk for pk in (*figures, *tasks) if pk is not None}
    people = (
        User.objects.filter(Q(pk__in=ids) | Q(pk__in=staff_users().values("pk")))
        .order_by("first_name", "username", "pk")
        .only("pk", "username", "first_name", "last_name")
    )
    rows = []
    for person in people:
        task_counts = tasks.get(person.pk, {})
        rows.append(
            StaffRow(
                user_id=person.pk,
                name=person.get_full_name() or person.get_username(),
                overdue=task_counts.get("overdue", 0),
                later_today=task_counts.get("later_today", 0),
                figures=figures.get(person.pk, Figures()),
            )
        )
    if None in figures:
        rows.append(StaffRow(user_id=None, name="", overdue=0, later_today=0, figures=figures[None]))
    total = sum((row.figures for row in rows), Figures())
    return rows, total


def pending_broadcasts(user: Any, *, limit: int = 5) -> Listing:
    """Broadcasts waiting for approval, the soonest send time first (the order of the approval queue,
    ``campaigns:broadcast_pending``). One query."""
    rows = (
        Broadcast.objects.visible_to(user)
        .filter(status=Broadcast.Status.PENDING_APPROVAL)
        .order_by(F("scheduled_at").asc(nulls_last=True), "created_at", "pk")
        .values(
            "pk",
            "name",
            "scheduled_at",
            "created_at",
            "medium",
            "audience_count",
            author_first=F("created_by__first_name"),
            author_last=F("created_by__last_name"),
            author_username=F("created_by__username"),
        )
    )
    return listing_of(rows, limit)


def failed_imports(user: Any, week: WorkWeek, *, limit: int = 5) -> Listing:
    """Imports that failed in the last ``RECENT_DAYS`` days, newest first. One query."""
    rows = (
        ImportJob.objects.visible_to(user)
        .filter(status=ImportJob.Status.FAILED, created_at__gte=week.now - dt.timedelta(days=RECENT_DAYS))
        .order_by("-created_at", "-pk")
        .values(
            "pk",
            "kind",
            "filename",
            "message",
            "created_at",
            "error_count",
            author_first=F("created_by__first_name"),
            author_last=F("created_by__last_name"),
            author_username=F("created_by__username"),
        )
    )
    return listing_of(rows, limit)


def sync_problems(user: Any, week: WorkWeek, *, limit: int = 3) -> Listing:
    """WeCom syncs that failed in the last ``RECENT_DAYS`` days, and a running one that stopped giving
    signs of life (no heartbeat for ``wecom.services.STALE_AFTER``: *Sync now* resumes it). One query."""
    stale = week.now - STALE_AFTER
    rows = (
        SyncRun.objects.visible_to(user)
        .filter(
            Q(status=SyncRun.Status.FAILED, started_at__gte=week.now - dt.timedelta(days=RECENT_DAYS))
            | Q(status=SyncRun.Status.RUNNING)
            & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale))
        )
        .order_by("-started_at", "-pk")
        .values("pk", "status", "started_at", "heartbeat_at", "error", "customers_seen")
    )
    return listing_of(rows, limit)


def callback_problems(user: Any, week: WorkWeek) -> dict[str, int]:
    """WeCom callbacks that failed in the last ``RECENT_DAYS`` days, and those stuck (processing, or never
    picked up, for longer than the inbox's ``STUCK_AFTER``). One query on the unfinished-callbacks index."""
    stuck_before = week.now - STUCK_AFTER
    return (
        CallbackEvent.objects.visible_to(user)
        .exclude(status__in=(CallbackEvent.Status.DONE, CallbackEvent.Status.IGNORED))
        .aggregate(
            failed=Count(
                "pk",
                filter=Q(
                    status=CallbackEvent.Status.FAILED, received_at__gte=week.now - dt.timedelta(days=RECENT_DAYS)
                ),
            ),
            stuck=Count(
                "pk",
                filter=Q(status=CallbackEvent.Status.PROCESSING, claimed_at__lt=stuck_before)
                | Q(status=CallbackEvent.Status.PENDING, received_at__lt=stuck_before),
            ),
        )
    )


def groups_needing_attention(user: Any, week: WorkWeek, *, limit: int = LIST_LIMIT) -> Listing:
    """Active groups the user runs or sees that are nearly full (members ≥ 9/10 of the capacity) or quiet
    (no member interaction in the group for ``QUIET_GROUP_DAYS`` days, once the group is that old); the
    fullest first. One query: per group, its open memberships are counted on the (community, left_at)
    index and its latest inbound touchpoint is probed through the touchpoints' community column."""
    quiet_since = week.now - dt.timedelta(days=QUIET_GROUP_DAYS)
    members = (
        Membership.objects.filter(community_id=OuterRef("pk"), left_at__isnull=True)
        .order_by()
        .values("community_id")
        .annotate(n=Count("*"))
        .values("n")
    )
    recent_activity = Touchpoint.objects.filter(community_id=OuterRef("pk"), occurred_at__gte=quiet_since).exclude(
        kind__in=Touchpoint.OUTBOUND_KINDS
    )
    numerator, denominator = NEAR_CAPACITY
    rows = (
        Community.objects.visible_to(user)
        .filter(status=Community.Status.ACTIVE)
        .annotate(members=Coalesce(Subquery(members, output_field=IntegerField()), Value(0)))
        .annotate(
            full_enough=F("members") * denominator - F("capacity") * numerator,
            quiet=ExpressionWrapper(
                ~Exists(recent_activity) & Q(created_at__lt=quiet_since), output_field=BooleanField()
            ),
        )
        .filter(Q(full_enough__gte=0) | Q(quiet=True))
        .order_by("-members", "name", "pk")
        .values("pk", "name", "capacity", "members", "quiet", "full_enough", "platform")
    )
    return listing_of(rows, limit)
