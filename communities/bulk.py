"""Putting many contacts in a community at once (the contact list's bulk action "add to community").

``membership_join`` adds one contact; this adds a whole set with a constant number of statements whatever
its size: the join touchpoints and the memberships are each one ``INSERT … SELECT`` (``scrm.sql``), and the
contacts' last-interaction fact and stage are brought up to date by two ``UPDATE``s. Everything a single
join does happens here too, for every contact that joins: one open membership, one "joined group"
touchpoint, the contact engaged. Automations with the trigger "joined a community" see the new memberships
like any other (they read ``Membership.joined_at``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, JSONField, Q, QuerySet, Value
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import Contact, Touchpoint
from contacts.services import stage_expression
from scrm.sql import insert_select

from .models import Community, Membership
from .services import _PLATFORM_MEDIUM


@dataclass(frozen=True)
class BulkJoinResult:
    joined: int  # contacts who joined now
    already: int  # contacts who were members already (left as they were)


def memberships_bulk_join(
    *, community: Community, contacts: QuerySet[Contact], actor, joined_at: dt.datetime | None = None
) -> BulkJoinResult:
    """Put every contact of ``contacts`` that ``actor`` may see (live, not erased) in ``community``, which
    ``actor`` must run (or see, as a manager). Contacts already in it stay as they are; others are ignored.

    All or nothing: an archived or unknown community, or more new members than the community has free
    places, raises a ValidationError naming the field and writes nothing. Safe to retry: a second run
    finds everyone already in."""
    if actor is None or not actor.is_authenticated:
        raise ValidationError({"actor": [_("Sign in first.")]})
    if not Community.objects.visible_to(actor).filter(pk=community.pk).exists():
        # Another operator's community reads like one that does not exist.
        raise ValidationError({"community": [_("Choose a community you run.")]})
    joined_at = joined_at or timezone.now()
    chosen = (
        Contact.objects.live().visible_to(actor).filter(erased_at__isnull=True, pk__in=contacts.order_by().values("pk"))
    )
    with transaction.atomic():
        # The lock membership_join takes too: capacity holds when joins race.
        locked = Community.objects.select_for_update().filter(pk=community.pk).first()
        if locked is None or locked.status != Community.Status.ACTIVE:
            raise ValidationError({"community": [_("This community is archived.")]})
        open_members = Membership.objects.filter(community_id=community.pk, left_at__isnull=True)
        newcomers = chosen.exclude(pk__in=open_members.values("contact_id"))
        joining = newcomers.count()
        already = chosen.filter(pk__in=open_members.values("contact_id")).count()
        if not joining:
            return BulkJoinResult(joined=0, already=already)
        free = max(locked.capacity - open_members.count(), 0)
        if joining > free:
            raise ValidationError(
                {
                    "community": [
                        _("%(community)s has %(free)d free places; %(count)d contacts would join. Nothing was changed.")
                        % {"community": locked.name, "free": free, "count": joining}
                    ]
                }
            )
        # The touchpoints first: "newcomers" are the chosen contacts without an open membership, which the
        # second statement then gives them.
        insert_select(
            Touchpoint,
            newcomers,
            {
                "contact_id": F("pk"),
                "medium": Value(_PLATFORM_MEDIUM.get(locked.platform, Touchpoint.Medium.GROUP)),
                "kind": Value(Touchpoint.Kind.JOIN_GROUP),
                "occurred_at": Value(joined_at),
                "staff_id": Value(actor.pk),
                "community_id": Value(locked.pk),
                "metadata": Value({}, output_field=JSONField()),
            },
        )
        joined = insert_select(
            Membership,
            newcomers,
            {
                "community_id": Value(locked.pk),
                "contact_id": F("pk"),
                "role": Value(Membership.Role.MEMBER),
                "joined_at": Value(joined_at),
                "join_source": Value(Membership.JoinSource.STAFF),
            },
        )
        # What touchpoint_record does for one contact: the join is an interaction, so the contact is engaged.
        just_joined = Membership.objects.filter(
            community_id=locked.pk, joined_at=joined_at, left_at__isnull=True
        ).values("contact_id")
        Contact.objects.filter(pk__in=just_joined).filter(
            Q(last_interaction_at__isnull=True) | Q(last_interaction_at__lt=joined_at)
        ).update(last_interaction_at=joined_at)
        Contact.objects.filter(pk__in=just_joined).update(stage=stage_expression())
    return BulkJoinResult(joined=joined, already=already)
