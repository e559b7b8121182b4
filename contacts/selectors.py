"""Reads: QuerySets with their joins in place, scoped to what the asking user may see."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from .models import Contact, ContactTag, Purchase, Tag, Touchpoint


def can_see_all_contacts(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm("contacts.view_all_contacts"))


def contacts_visible_to(user) -> QuerySet[Contact]:
    """Live (not merged) contacts the user may see: all of them for managers and integrators, the ones
    they own for operators. Every contact read in the API and the dashboard starts here."""
    qs = Contact.objects.filter(merged_into__isnull=True)
    if not can_see_all_contacts(user):
        qs = qs.filter(owner=user) if user and user.is_authenticated else qs.none()
    return qs


def contact_list(user) -> QuerySet[Contact]:
    return contacts_visible_to(user).select_related("channel", "owner").prefetch_related(
        Prefetch("tags", queryset=Tag.objects.select_related("group"))
    )


def contact_detail(user) -> QuerySet[Contact]:
    return contacts_visible_to(user).select_related("channel", "owner", "referred_by")


def contact_tag_links(contact: Contact) -> QuerySet[ContactTag]:
    return contact.tag_links.select_related("tag__group", "tagged_by").order_by("tag__group__sort_order", "tag__name")


def purchases_visible_to(user) -> QuerySet[Purchase]:
    qs = Purchase.objects.all()
    if not can_see_all_contacts(user):
        qs = qs.filter(contact__owner=user) if user and user.is_authenticated else qs.none()
    return qs


def purchase_list(user) -> QuerySet[Purchase]:
    return purchases_visible_to(user).select_related("contact").prefetch_related("items__product")


def touchpoints_visible_to(user) -> QuerySet[Touchpoint]:
    qs = Touchpoint.objects.all()
    if not can_see_all_contacts(user):
        qs = qs.filter(contact__owner=user) if user and user.is_authenticated else qs.none()
    return qs


def touchpoint_list(user) -> QuerySet[Touchpoint]:
    return touchpoints_visible_to(user).select_related("contact", "staff", "community")
