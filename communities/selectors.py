"""Reads for communities, scoped to what the asking user may see."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from contacts.selectors import contacts_visible_to

from .models import Community, Membership


def can_see_all_communities(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm("communities.view_all_communities"))


def communities_visible_to(user) -> QuerySet[Community]:
    """All communities for managers and integrators; the ones an operator owns or administers."""
    qs = Community.objects.all()
    if can_see_all_communities(user):
        return qs
    if not (user and user.is_authenticated):
        return qs.none()
    return qs.filter(Q(owner=user) | Q(pk__in=Community.admins.through.objects.filter(user=user).values("community")))


def community_list(user) -> QuerySet[Community]:
    return (
        communities_visible_to(user)
        .select_related("owner")
        .prefetch_related("admins")
        .annotate(member_count=Count("memberships", filter=Q(memberships__left_at__isnull=True)))
        .order_by("name", "id")
    )


def memberships_visible_to(user) -> QuerySet[Membership]:
    """Memberships in communities the user runs, and the memberships of contacts the user owns."""
    qs = Membership.objects.all()
    if can_see_all_communities(user) and user.has_perm("contacts.view_all_contacts"):
        return qs
    return qs.filter(
        Q(community__in=communities_visible_to(user).values("pk")) | Q(contact__in=contacts_visible_to(user).values("pk"))
    )


def membership_list(user) -> QuerySet[Membership]:
    return memberships_visible_to(user).select_related("community", "contact", "invited_by")
