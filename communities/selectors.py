"""Reads for communities, scoped to what the asking user may see."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from .models import Community, Membership


def community_list(user) -> QuerySet[Community]:
    return (
        Community.objects.visible_to(user)
        .select_related("owner")
        .prefetch_related("admins")
        .annotate(member_count=Count("memberships", filter=Q(memberships__left_at__isnull=True)))
        .order_by("name", "id")
    )


def membership_list(user) -> QuerySet[Membership]:
    return Membership.objects.visible_to(user).select_related("community", "contact", "invited_by")
