"""Reads: QuerySets with their joins in place, scoped to what the asking user may see."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, Q, QuerySet

from scrm import roles

from .models import Contact, ContactTag, Purchase, Tag, Touchpoint


def contact_list(user) -> QuerySet[Contact]:
    return (
        Contact.objects.live()
        .visible_to(user)
        .select_related("channel", "owner")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.select_related("group")))
    )


def contact_detail(user) -> QuerySet[Contact]:
    return Contact.objects.live().visible_to(user).select_related("channel", "owner", "referred_by")


def contact_tag_links(contact: Contact) -> QuerySet[ContactTag]:
    return contact.tag_links.select_related("tag__group", "tagged_by").order_by("tag__group__sort_order", "tag__name")


def purchase_list(user) -> QuerySet[Purchase]:
    return Purchase.objects.visible_to(user).select_related("contact").prefetch_related("items__product")


def touchpoint_list(user) -> QuerySet[Touchpoint]:
    return Touchpoint.objects.visible_to(user).select_related("contact", "staff", "community")


def staff_users() -> QuerySet:
    """Active staff who can own contacts (admins, managers, operators), for owner and assignee choices."""
    staff_roles = [roles.ADMIN, roles.MANAGER, roles.OPERATOR]
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name__in=staff_roles))
        .distinct()
        .order_by("first_name", "username")
    )
