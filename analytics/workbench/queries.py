"""The blocks of a staff member's day and the staff figures of the week, each one or two set-based queries.

Scoping: every query starts from the model's own rule (``visible_to(user)``, or ``user_scope_q`` /
``contact_scope_q`` of the analytics metrics, which are that rule written as conditions) and is then
narrowed to one staff member's contacts (``owner_id``) for a personal view. An operator's personal view is
their own book; a manager's "my work" is the contacts they own; the team figures are grouped by owner.

The definitions are the project's own, never restated:

* adds = leads (contacts acquired in the period), conversions = new customers (first paid purchase in the
  period), revenue = paid purchases in the period (a refunded order has status ``refunded`` and never
  counts) — docs/metrics.md, as ``analytics.metrics`` computes them (``scoped_contacts``,
  ``contact_scope_q``, the PAID status; the same periods give the same numbers as ``metrics.kpis``);
* losses (流失) = contacts whose WeCom friendship ended in the period, whichever side deleted the other
  (``FollowRelationship.deleted_at``, set by the ``del_external_contact`` / ``del_follow_user`` callbacks);
* due to buy again = the repurchase-due trigger of the automations
  (``campaigns.automations.triggers``): a paid purchase of a product with a repurchase cycle, with no later
  paid purchase of that product by the contact, is due ``repurchase_cycle_days`` after it was made;
* birthdays as the birthday trigger sees them (29 February → 28 February in other years);
* went quiet = the "inactive for N days" trigger's spell: no interaction since the last one (or since the
  acquisition when there was none) for ``INACTIVE_DAYS`` days, the N-th day falling this week.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import OperationalError, connection, transaction
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    ExpressionWrapper,
    F,
    IntegerField,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce

from analytics.metrics import PAID, Filters, money, scoped_contacts, user_scope_q
from analytics.metrics.numbers import fraction
from analytics.metrics.scope import in_period
from campaigns.automations.triggers import later_paid_purchase, live_contact_q
from campaigns.gateways.wecom import AWAITING_CONFIRMATION
from campaigns.models import Delivery, FollowUpTask
from contacts.models import Contact, Product, Purchase, PurchaseItem
from wecom.models import FollowRelationship

from .week import WorkWeek

#: How many rows a block lists; its count says how many there are in all.
LIST_LIMIT = 8
#: "Went quiet": the N of the "inactive for N days" automation the demo and most brands start with
#: (demo/campaigns.py, "30天未互动→回访任务"). One constant, here, shown on the page.
INACTIVE_DAYS = 30
#: WeCom never tells us that a staff member confirmed a customer broadcast (the gateway records the task as
#: ``awaiting_confirmation`` and nothing updates it), so only the tasks of the last week are listed.
AWAITING_DAYS = 7
#: A list's count stops here ("1,000+"): past it the exact number changes nothing for the person reading,
#: and counting stops early instead of reading every match.
COUNT_CAP = 1000


@dataclass(frozen=True)
class Listing:
    """A block: how many rows there are in all (``capped``: at least ``COUNT_CAP``), and the first of them."""

    count: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    capped: bool = False

    @property
    def more(self) -> int:
        return max(0, self.count - len(self.rows))

    @property
    def shown_count(self) -> str:
        """The count for the page, with thousands separators: "1,234", "1,000+"."""
        return f"{self.count:,}{'+' if self.capped else ''}"

    @property
    def shown_more(self) -> str:
        return f"{self.more:,}{'+' if self.capped else ''}"


def listing_of(rows: QuerySet, limit: int) -> Listing:
    """The first ``limit`` rows with the total, in one query (``COUNT(*) OVER ()``)."""
    found = list(rows.annotate(total_rows=Window(Count("*")))[:limit])
    return Listing(count=found[0]["total_rows"] if found else 0, rows=found)


def capped_listing(rows: QuerySet, limit: int) -> Listing:
    """The first ``limit`` rows, in the queryset's order, and their number up to ``COUNT_CAP`` — two
    queries that each stop early when the order is an index's (``COUNT(*)`` over ``LIMIT COUNT_CAP + 1``)."""
    found = list(rows[:limit])
    if len(found) < limit:
        return Listing(count=len(found), rows=found)
    count = rows.order_by()[: COUNT_CAP + 1].count()
    return Listing(count=min(count, COUNT_CAP), rows=found, capped=count > COUNT_CAP)


def own_contacts(user: Any, owner_id: int) -> QuerySet[Contact]:
    """The live, not erased contacts of ``owner_id`` that ``user`` may see."""
    return Contact.objects.live().visible_to(user).filter(owner_id=owner_id, erased_at__isnull=True)


# --- The staff figures of the week ------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """One staff member's (or the team's) figures: this week to date and the same days of last week."""

    adds: int = 0
    adds_last: int = 0
    adds_today: int = 0
    conversions: int = 0
    conversions_last: int = 0
    revenue: Decimal = Decimal("0.00")
    revenue_last: Decimal = Decimal("0.00")
    losses: int = 0
    losses_last: int = 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(**{name: getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__})


def _through_contact(filters: Filters) -> Q:
    """The rows of the contacts a period counts, through ``contact__``: live, visible to the user, of the
    owner when there is one (``metrics.contact_scope_q`` with the contact joined, as the figures group by
    its owner anyway: the live-contacts partial indexes then apply)."""
    q = user_scope_q(filters.user, "contact__")
    if filters.owner_id is not None:
        q &= Q(contact__owner_id=filters.owner_id)
    return q


def staff_figures(user: Any, week: WorkWeek, *, owner_id: int | None = None) -> dict[int | None, Figures]:
    """Adds, conversions, revenue and losses of this week to date and of the same days of last week, per
    owner of the contacts (``None``: contacts without an owner), over the contacts ``user`` may see (only
    ``owner_id``'s with it). Three queries: contacts (adds and conversions), paid purchases, ended WeCom
    friendships — each reading the two weeks through its time index."""
    span, this, last = week.both_weeks(user, owner_id), week.this_week(user, owner_id), week.last_week(user, owner_id)
    today = week.today_only(user, owner_id)
    found: dict[int | None, dict[str, Any]] = {}

    contacts = (
        scoped_contacts(span)
        .filter(in_period("acquired_at", span) | in_period("first_purchase_at", span))
        .values("owner_id")
        .annotate(
            adds=Count("pk", filter=in_period("acquired_at", this)),
            adds_last=Count("pk", filter=in_period("acquired_at", last)),
            adds_today=Count("pk", filter=in_period("acquired_at", today)),
            conversions=Count("pk", filter=in_period("first_purchase_at", this)),
            conversions_last=Count("pk", filter=in_period("first_purchase_at", last)),
        )
        .order_by()
    )
    for row in contacts:
        found.setdefault(row.pop("owner_id"), {}).update(row)

    revenue = (
        Purchase.objects.filter(_through_contact(span), in_period("purchased_at", span), status=PAID)
        # Implied by a paid purchase in the span (the last-purchase fact counts paid purchases only); it lets
        # the contacts be read from the recent buyers alone rather than the whole book (see docs/reports.md).
        .filter(contact__last_purchase_at__gte=span.start)
        .values("contact__owner_id")
        .annotate(
            revenue=Sum("amount", filter=in_period("purchased_at", this)),
            revenue_last=Sum("amount", filter=in_period("purchased_at", last)),
        )
        .order_by()
    )
    for row in revenue:
        found.setdefault(row.pop("contact__owner_id"), {}).update(
            revenue=money(fraction(row["revenue"])), revenue_last=money(fraction(row["revenue_last"]))
        )

    losses = (
        FollowRelationship.objects.filter(_through_contact(span), in_period("deleted_at", span))
        .values("contact__owner_id")
        .annotate(
            losses=Count("contact_id", distinct=True, filter=in_period("deleted_at", this)),
            losses_last=Count("contact_id", distinct=True, filter=in_period("deleted_at", last)),
        )
        .order_by()
    )
    for row in losses:
        found.setdefault(row.pop("contact__owner_id"), {}).update(row)

    return {owner: Figures(**values) for owner, values in found.items()}


# --- Follow-up tasks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskBlock:
    """Open follow-up tasks due by the end of today: overdue (due before now) and due later today."""

    overdue: int = 0
    later_today: int = 0
    rows: list[FollowUpTask] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.overdue + self.later_today

    @property
    def more(self) -> int:
        return max(0, self.count - len(self.rows))


def _tasks_due(user: Any, week: WorkWeek) -> QuerySet[FollowUpTask]:
    return FollowUpTask.objects.visible_to(user).filter(status=FollowUpTask.Status.OPEN, due_at__lt=week.tomorrow_start)


def tasks_due(user: Any, week: WorkWeek, *, assignee_id: int, limit: int = LIST_LIMIT) -> TaskBlock:
    """``assignee_id``'s open tasks due by the end of today, the most overdue first. Two queries (the
    counts, the first rows with their contacts) on the (assignee, status) index."""
    tasks = _tasks_due(user, week).filter(assignee_id=assignee_id)
    counts = tasks.aggregate(
        overdue=Count("pk", filter=Q(due_at__lt=week.now)), later_today=Count("pk", filter=Q(due_at__gte=week.now))
    )
    rows = list(
        tasks.select_related("contact")
        .only("pk", "title", "due_at", "status", "contact_id", "contact__name", "contact__phone")
        .order_by("due_at", "pk")[:limit]
    )
    return TaskBlock(overdue=counts["overdue"], later_today=counts["later_today"], rows=rows)


def tasks_due_by_assignee(user: Any, week: WorkWeek) -> dict[int, dict[str, int]]:
    """Per assignee: open tasks overdue and due later today, over the tasks ``user`` may see. One query."""
    rows = (
        _tasks_due(user, week)
        .values("assignee_id")
        .annotate(
            overdue=Count("pk", filter=Q(due_at__lt=week.now)), later_today=Count("pk", filter=Q(due_at__gte=week.now))
        )
        .order_by()
    )
    return {row.pop("assignee_id"): row for row in rows}


# --- People to reach this week ----------------------------------------------------------------------


def newest_contacts(user: Any, week: WorkWeek, *, owner_id: int, limit: int = 5) -> list[dict[str, Any]]:
    """The newest contacts acquired this week (the count is in the figures). One query on the
    (owner, acquired_at) index."""
    return list(
        own_contacts(user, owner_id)
        .filter(acquired_at__gte=week.week_start, acquired_at__lt=week.tomorrow_start)
        .order_by("-acquired_at", "-id")
        .values("pk", "name", "phone", "acquired_at", "channel__name")[:limit]
    )


@dataclass(frozen=True)
class Repurchase:
    """Customers due to buy again: how many customers, how many (customer, product) reminders, the first rows."""

    customers: int = 0
    reminders: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: The database gave up after ``REPURCHASE_TIMEOUT_MS``: too many purchases to work it out on the fly.
    timed_out: bool = False

    @property
    def more(self) -> int:
        return max(0, self.reminders - len(self.rows))


#: How long the repurchase block may keep the database busy (PostgreSQL). Without the denormalised purchase
#: items of docs/reports.md ("Indexes at scale") a book of a million contacts needs seconds; past this the
#: block says so instead of holding a connection for every operator who opens the workbench.
REPURCHASE_TIMEOUT_MS = 2000


@contextmanager
def _statement_timeout(milliseconds: int):
    """Cancel the statements of the block after ``milliseconds`` (PostgreSQL; elsewhere no limit). Raises
    ``OperationalError`` when it fires; the transaction around the block is then rolled back."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = %s", [int(milliseconds)])
        yield


def repurchase_due(user: Any, week: WorkWeek, *, owner_id: int, limit: int = LIST_LIMIT) -> Repurchase:
    """See ``repurchase_due_rows``; within ``REPURCHASE_TIMEOUT_MS`` or ``timed_out``."""
    try:
        with _statement_timeout(REPURCHASE_TIMEOUT_MS):
            return repurchase_due_rows(user, week, owner_id=owner_id, limit=limit)
    except OperationalError:
        if connection.vendor != "postgresql":
            raise
        return Repurchase(timed_out=True)


def repurchase_due_rows(user: Any, week: WorkWeek, *, owner_id: int, limit: int = LIST_LIMIT) -> Repurchase:
    """The (contact, product) pairs due to be bought again this week, as the repurchase-due trigger
    defines it: the contact's last paid purchase of the product was ``repurchase_cycle_days`` before a day
    of this week (Monday to Sunday). Three queries: the cycle lengths (a handful), the counts, the first
    rows by due date. As in the trigger, each cycle compares
    the purchase time with a constant, so that the purchases' time index serves every cycle's week."""
    cycles = sorted(
        set(
            Product.objects.filter(repurchase_cycle_days__isnull=False)
            .order_by()
            .values_list("repurchase_cycle_days", flat=True)
        )
    )
    if not cycles:
        return Repurchase()
    in_window, due_at = [], []
    for cycle in cycles:
        span = dt.timedelta(days=cycle)
        in_window.append(
            Q(
                product__repurchase_cycle_days=cycle,
                purchase__purchased_at__gte=week.week_start - span,
                purchase__purchased_at__lt=week.next_week_start - span,
            )
        )
        due_at.append(
            When(
                product__repurchase_cycle_days=cycle,
                then=ExpressionWrapper(F("purchase__purchased_at") + Value(span), output_field=DateTimeField()),
            )
        )
    items = (
        PurchaseItem.objects.filter(functools.reduce(operator.or_, in_window))
        .filter(
            user_scope_q(user, "purchase__contact__"),
            live_contact_q("purchase__contact__"),
            purchase__contact__owner_id=owner_id,
            purchase__status=PAID,
        )
        .filter(
            ~later_paid_purchase(
                contact="purchase__contact_id",
                product="product_id",
                purchased_at="purchase__purchased_at",
                purchase="purchase_id",
            )
        )
    )
    counts = items.aggregate(customers=Count("purchase__contact_id", distinct=True), reminders=Count("*"))
    rows = list(
        items.annotate(due_at=Case(*due_at, output_field=DateTimeField()))
        .order_by("due_at", "pk")
        .values(
            "due_at",
            contact_id=F("purchase__contact_id"),
            contact_name=F("purchase__contact__name"),
            contact_phone=F("purchase__contact__phone"),
            product_name=F("product__name"),
            cycle=F("product__repurchase_cycle_days"),
        )[:limit]
    )
    return Repurchase(customers=counts["customers"], reminders=counts["reminders"], rows=rows)


def birthdays(user: Any, week: WorkWeek, *, owner_id: int, limit: int = LIST_LIMIT) -> Listing:
    """The contacts whose birthday falls this week (Monday to Sunday), in the order of the days. One query."""
    days = week.birthday_days()
    born = functools.reduce(operator.or_, (condition for _day, condition in days))
    day_index = Case(
        *[When(condition, then=Value(i)) for i, (_day, condition) in enumerate(days)], output_field=IntegerField()
    )
    rows = (
        own_contacts(user, owner_id)
        .filter(born, birthday__isnull=False)
        .annotate(day_index=day_index)
        .order_by("day_index", "name", "pk")
        .values("pk", "name", "phone", "birthday", "day_index")
    )
    listing = listing_of(rows, limit)
    for row in listing.rows:
        row["day"] = days[row["day_index"]][0]
    return listing


def friendships_ended(user: Any, week: WorkWeek, *, owner_id: int, limit: int = LIST_LIMIT) -> Listing:
    """The WeCom friendships of ``owner_id``'s contacts that ended this week, newest first (one row per
    staff member and customer; the figures count customers). One query."""
    rows = (
        FollowRelationship.objects.visible_to(user)
        .filter(
            contact__owner_id=owner_id,
            contact__merged_into__isnull=True,
            deleted_at__gte=week.week_start,
            deleted_at__lt=week.tomorrow_start,
        )
        .order_by("-deleted_at", "-pk")
        .values(
            "contact_id",
            "ended_by",
            "deleted_at",
            contact_name=F("contact__name"),
            contact_phone=F("contact__phone"),
            staff_name=F("staff__name"),
            staff_userid=F("staff__userid"),
        )
    )
    return listing_of(rows, limit)


def went_quiet(user: Any, week: WorkWeek, *, owner_id: int, limit: int = LIST_LIMIT) -> Listing:
    """``owner_id``'s contacts that reached ``INACTIVE_DAYS`` days without an interaction this week: as
    the inactive trigger has it, the spell starts at the last interaction (the ``last_interaction_at``
    fact: inbound touchpoints only) or, without one, at the acquisition. Longest silent first. Two queries
    (the list, the capped count), both reading the spell's index in order when it exists."""
    span = dt.timedelta(days=INACTIVE_DAYS)
    rows = (
        own_contacts(user, owner_id)
        .annotate(last_seen=Coalesce("last_interaction_at", "acquired_at"))
        .filter(last_seen__gte=week.week_start - span, last_seen__lte=week.now - span)
        .order_by("last_seen", "pk")
        .values("pk", "name", "phone", "last_seen", "last_interaction_at")
    )
    return capped_listing(rows, limit)


def awaiting_confirmation(user: Any, week: WorkWeek, *, owner_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """WeCom messages to ``owner_id``'s contacts that WeCom accepted in the last ``AWAITING_DAYS`` days
    and that wait for the staff member to confirm them in their WeCom client (企业微信 → 客户联系 →
    群发助手), per broadcast or automation, oldest first. One query."""
    return list(
        Delivery.objects.visible_to(user)
        .filter(
            contact__owner_id=owner_id,
            contact__merged_into__isnull=True,
            gateway_state=AWAITING_CONFIRMATION,
            sent_at__gte=week.now - dt.timedelta(days=AWAITING_DAYS),
        )
        .values(
            "broadcast_id",
            broadcast_name=F("broadcast__name"),
            broadcast_author=F("broadcast__created_by_id"),
            automation_id=F("automation_run__automation_id"),
            automation_name=F("automation_run__automation__name"),
        )
        .annotate(messages=Count("*"), since=Min("sent_at"))
        .order_by("since", "broadcast_id")[:limit]
    )
