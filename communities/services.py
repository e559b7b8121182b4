"""Writes for communities and memberships."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import Contact, Touchpoint
from contacts.services import touchpoint_record

from .models import Community, Membership

_PLATFORM_MEDIUM = {
    Community.Platform.WECHAT_GROUP: Touchpoint.Medium.GROUP,
    Community.Platform.WECOM_GROUP: Touchpoint.Medium.WECOM,
    Community.Platform.OTHER: Touchpoint.Medium.GROUP,
}


def community_create(*, actor=None, admins=(), **values: Any) -> Community:
    """Create a community; an operator who names no owner runs it themselves."""
    if values.get("owner") is None and actor is not None and not Community.objects.sees_all(actor):
        values["owner"] = actor
    community = Community(**values)
    community.full_clean()
    with transaction.atomic():
        community.save()
        if admins:
            community.admins.set(admins)
    return community


def community_update(*, community: Community, actor=None, admins=None, **values: Any) -> Community:
    """Change a community. Only managers (who see every community) change its owner: an operator who runs
    it can neither give it away nor leave it without an owner."""
    if (
        "owner" in values
        and values["owner"] != community.owner
        and actor is not None
        and not Community.objects.sees_all(actor)
    ):
        raise ValidationError({"owner": [_("Only a manager can change a community's owner.")]})
    for field, value in values.items():
        setattr(community, field, value)
    community.full_clean()
    with transaction.atomic():
        community.save()
        if admins is not None:
            community.admins.set(admins)
    return community


def membership_join(
    *,
    community: Community,
    contact: Contact,
    joined_at: dt.datetime | None = None,
    role: str = Membership.Role.MEMBER,
    join_source: str = Membership.JoinSource.STAFF,
    invited_by: Contact | None = None,
    staff=None,
) -> tuple[Membership, bool]:
    """Put a contact in a community; return ``(membership, created)``. Joining while already in is a
    no-op that returns the open membership, so retries are safe. Records a join touchpoint, which makes
    the contact engaged."""
    if community.status != Community.Status.ACTIVE:
        raise ValidationError({"community": [_("This community is archived.")]})
    if contact.merged_into_id or contact.erased_at:
        raise ValidationError({"contact": [_("This contact was merged or erased.")]})
    joined_at = joined_at or timezone.now()
    with transaction.atomic():
        # Lock the community so capacity holds when several joins race.
        Community.objects.select_for_update().filter(pk=community.pk).first()
        open_membership = Membership.objects.filter(community=community, contact=contact, left_at__isnull=True).first()
        if open_membership:
            return open_membership, False
        if Membership.objects.filter(community=community, left_at__isnull=True).count() >= community.capacity:
            raise ValidationError(
                {"community": [_("This community is full (%(n)s members).") % {"n": community.capacity}]}
            )
        try:
            with transaction.atomic():
                membership = Membership.objects.create(
                    community=community,
                    contact=contact,
                    joined_at=joined_at,
                    role=role,
                    join_source=join_source,
                    invited_by=invited_by,
                )
        except IntegrityError:
            return Membership.objects.get(community=community, contact=contact, left_at__isnull=True), False
        touchpoint_record(
            contact=contact,
            medium=_PLATFORM_MEDIUM.get(community.platform, Touchpoint.Medium.GROUP),
            kind=Touchpoint.Kind.JOIN_GROUP,
            occurred_at=joined_at,
            staff=staff,
            community=community,
        )
    return membership, True


def membership_leave(*, membership: Membership, left_at: dt.datetime | None = None) -> Membership:
    """Close a membership. Leaving twice keeps the first leaving time."""
    left_at = left_at or timezone.now()
    if left_at < membership.joined_at:
        raise ValidationError({"left_at": [_("A member cannot leave before joining.")]})
    with transaction.atomic():
        changed = Membership.objects.filter(pk=membership.pk, left_at__isnull=True).update(left_at=left_at)
        if changed:
            community = membership.community
            touchpoint_record(
                contact=membership.contact,
                medium=_PLATFORM_MEDIUM.get(community.platform, Touchpoint.Medium.GROUP),
                kind=Touchpoint.Kind.LEAVE_GROUP,
                occurred_at=left_at,
                community=community,
            )
    membership.refresh_from_db()
    return membership
