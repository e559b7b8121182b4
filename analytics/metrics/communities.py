"""Community health and the KOC ranking of a community."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, FilteredRelation, OuterRef, Q, Sum

from communities.models import Community, Membership
from contacts.models import Touchpoint

from .numbers import divide, fraction, money, ratio
from .scope import PAID, Filters, contact_scope_q, day_start, in_period, user_scope_q


@dataclass(frozen=True)
class CommunityHealth:
    community_id: int
    community: str
    members: int
    joins: int
    leaves: int
    active_7d: int
    active_30d: int
    activity_rate: float | None
    buyers: int
    conversion: float | None
    revenue: Decimal


@dataclass(frozen=True)
class KocRow:
    contact_id: int
    name: str
    referrals: int
    total_spent: Decimal
    role: str


def _member_at(moment: dt.datetime, prefix: str = "") -> Q:
    """An open membership at ``moment``: joined before it and not left by then."""
    return Q(**{f"{prefix}joined_at__lt": moment}) & (
        Q(**{f"{prefix}left_at__isnull": True}) | Q(**{f"{prefix}left_at__gte": moment})
    )


def _active_since(since: dt.datetime, until: dt.datetime) -> Q:
    """The membership's contact had an inbound touchpoint in [since, until). The last_interaction_at
    fact rules out most contacts before the touchpoint index is probed."""
    inbound = (
        Touchpoint.objects.filter(contact_id=OuterRef("contact_id"), occurred_at__gte=since, occurred_at__lt=until)
        .exclude(kind__in=Touchpoint.OUTBOUND_KINDS)
        .values("pk")
    )
    return Q(contact__last_interaction_at__gte=since) & Q(Exists(inbound))


def community_health(filters: Filters) -> list[CommunityHealth]:
    """Per community the user may see (only ``community_id`` with that filter), over the filtered
    contacts: members (open memberships at the end of P), joins and leaves in P, members active (inbound
    touchpoint anywhere) in the 7 and 30 days ending with ``date_to``, activity rate = active 30d /
    members, members who bought in P, conversion = those buyers / members, and their revenue in P.
    Three queries."""
    end = filters.end
    since_7 = day_start(filters.date_to - dt.timedelta(days=6))
    since_30 = day_start(filters.date_to - dt.timedelta(days=29))
    communities = Community.objects.all()
    if filters.user is not None:
        communities = communities.visible_to(filters.user)
    if filters.community_id is not None:
        communities = communities.filter(pk=filters.community_id)
    names = list(communities.order_by("name", "id").values_list("pk", "name"))
    ids = [pk for pk, _name in names]
    member = _member_at(end)
    stats = {
        row["community_id"]: row
        for row in Membership.objects.filter(contact_scope_q(filters), community_id__in=ids)
        .values("community_id")
        .annotate(
            members=Count("contact_id", distinct=True, filter=member),
            joins=Count("pk", filter=in_period("joined_at", filters)),
            leaves=Count("pk", filter=in_period("left_at", filters)),
            active_7d=Count("contact_id", distinct=True, filter=member & _active_since(since_7, end)),
            active_30d=Count("contact_id", distinct=True, filter=member & _active_since(since_30, end)),
        )
        .order_by()
    }
    # One membership row per (community, member): a merge can leave a contact with two rows that are both
    # open at the end of P (its own and the duplicate's), which must not count its purchases twice.
    earlier_stay = Membership.objects.filter(
        _member_at(end), community_id=OuterRef("community_id"), contact_id=OuterRef("contact_id"), pk__lt=OuterRef("pk")
    )
    paid_in_p = Q(contact__purchases__status=PAID) & in_period("contact__purchases__purchased_at", filters)
    buyers = {
        row["community_id"]: row
        for row in Membership.objects.filter(contact_scope_q(filters), member, community_id__in=ids)
        .filter(~Exists(earlier_stay))
        .annotate(paid=FilteredRelation("contact__purchases", condition=paid_in_p))
        .values("community_id")
        .annotate(buyers=Count("paid__contact_id", distinct=True), revenue=Sum("paid__amount"))
        .order_by()
    }
    result = []
    for pk, name in names:
        row = stats.get(pk, {})
        members = row.get("members", 0)
        bought = buyers.get(pk, {})
        result.append(
            CommunityHealth(
                community_id=pk,
                community=name,
                members=members,
                joins=row.get("joins", 0),
                leaves=row.get("leaves", 0),
                active_7d=row.get("active_7d", 0),
                active_30d=row.get("active_30d", 0),
                activity_rate=ratio(divide(row.get("active_30d", 0), members)),
                buyers=bought.get("buyers", 0),
                conversion=ratio(divide(bought.get("buyers", 0), members)),
                revenue=money(fraction(bought.get("revenue"))),
            )
        )
    return result


def koc_ranking(*, user: Any, community_id: int, limit: int = 10) -> list[KocRow]:
    """Current members of a community the user may see, ranked by live contacts referred, then by paid
    spend to date (then by id). Operators see only their own contacts. One query (two for operators)."""
    if user is not None and not Community.objects.visible_to(user).filter(pk=community_id).exists():
        return []
    rows = (
        Membership.objects.filter(user_scope_q(user, "contact__"), community_id=community_id, left_at__isnull=True)
        .order_by("-contact__referral_count", "-contact__total_spent", "contact_id")
        .values_list("contact_id", "contact__name", "contact__referral_count", "contact__total_spent", "role")[:limit]
    )
    return [
        KocRow(contact_id=cid, name=name, referrals=referrals, total_spent=money(spent), role=role)
        for cid, name, referrals, spent, role in rows
    ]
