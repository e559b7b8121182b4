"""Every write to contacts, tags, purchases and touchpoints goes through these functions.

Views, serializers, forms, admin actions, imports and tasks all call them, so the denormalised facts on
``Contact`` and its lifecycle stage stay right whichever way the data came in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from scrm import limits
from scrm.audit import Action, audit
from scrm.exceptions import ConflictError

from .models import Channel, Contact, ContactTag, Product, Purchase, PurchaseItem, Tag, Touchpoint
from .phones import normalize_phone
from .privacy import contact_erase  # noqa: F401  (the erasure lives with the access request)
from .signals import contact_tags_changed

User = get_user_model()

FACTS_CHUNK = 5000

# Fields a caller may set on a contact through contact_create / contact_update.
CONTACT_EDITABLE_FIELDS = (
    "name",
    "phone",
    "email",
    "external_id",
    "wecom_external_userid",
    "wechat_unionid",
    "gender",
    "birthday",
    "region",
    "city",
    "occupation",
    "channel",
    "acquired_at",
    "owner",
    "intent_level",
    "referred_by",
    "attributes",
)
_NULLABLE_UNIQUE_FIELDS = ("phone", "external_id", "wecom_external_userid", "wechat_unionid")


# --- Lifecycle stage ------------------------------------------------------------------------


def stage_expression() -> Case:
    """The lifecycle stage as a SQL expression of the denormalised facts: the one definition used by
    every write path, bulk refresh and demo data alike."""
    S = Contact.Stage
    return Case(
        When(purchase_count__gte=1, referral_count__gte=1, then=Value(S.ADVOCATE)),
        When(purchase_count__gte=2, then=Value(S.REPEAT)),
        When(purchase_count__gte=1, then=Value(S.CUSTOMER)),
        When(last_interaction_at__isnull=False, then=Value(S.ENGAGED)),
        default=Value(S.LEAD),
    )


def contact_facts_refresh(*, contact_ids: Iterable[int]) -> None:
    """Recompute purchase, interaction and referral facts, then the stage, for the given contacts.

    Recomputes from the rows rather than incrementing, so it is safe to run again and cannot drift.
    Two statements per chunk: SQL evaluates every SET of one UPDATE against the old row, and the stage
    depends on the facts.
    """
    ids = sorted({int(i) for i in contact_ids if i is not None})
    paid = Purchase.objects.filter(contact=OuterRef("pk"), status=Purchase.Status.PAID).order_by().values("contact")
    engaged = (
        Touchpoint.objects.filter(contact=OuterRef("pk"))
        .exclude(kind__in=Touchpoint.OUTBOUND_KINDS)
        .order_by("-occurred_at")
        .values("occurred_at")[:1]
    )
    referrals = (
        Contact.objects.live()
        .filter(referred_by=OuterRef("pk"))
        .order_by()
        .values("referred_by")
        .annotate(n=Count("pk"))
        .values("n")
    )
    for start in range(0, len(ids), FACTS_CHUNK):
        chunk = ids[start : start + FACTS_CHUNK]
        with transaction.atomic():
            Contact.objects.filter(pk__in=chunk).update(
                first_purchase_at=Subquery(paid.annotate(v=Min("purchased_at")).values("v")),
                last_purchase_at=Subquery(paid.annotate(v=Max("purchased_at")).values("v")),
                purchase_count=Coalesce(Subquery(paid.annotate(v=Count("pk")).values("v")), 0),
                total_spent=Coalesce(Subquery(paid.annotate(v=Sum("amount")).values("v")), Value(Decimal("0"))),
                last_interaction_at=Subquery(engaged),
                referral_count=Coalesce(Subquery(referrals), 0),
            )
            Contact.objects.filter(pk__in=chunk).update(stage=stage_expression())


# --- Contacts -------------------------------------------------------------------------------


def _clean_contact_values(values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(CONTACT_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({field: _("This field cannot be set.") for field in sorted(unknown)})
    cleaned = dict(values)
    if "phone" in cleaned:
        cleaned["phone"] = normalize_phone(cleaned["phone"]) if cleaned["phone"] else None
    for field in _NULLABLE_UNIQUE_FIELDS:
        if field in cleaned and field != "phone":
            cleaned[field] = (cleaned[field] or "").strip() or None
    if "attributes" in cleaned and cleaned["attributes"] is None:
        cleaned["attributes"] = {}
    errors = {}
    for field, value in cleaned.items():
        try:
            if field == "attributes":
                limits.json_check(value)
            elif isinstance(value, str):
                limits.text_check(value)
            elif isinstance(value, dt.date):
                limits.date_check(value)
        except ValidationError as exc:
            errors[field] = exc.messages
    if errors:
        raise ValidationError(errors)
    return cleaned


def _full_clean(contact: Contact) -> None:
    try:
        contact.full_clean(exclude=["tags"])
    except ValidationError as exc:
        if "phone" in exc.message_dict:
            raise ValidationError({"phone": [_("A contact with this phone number already exists.")]}) from exc
        raise


def contact_create(
    *,
    actor: User | None = None,
    marketing_consent: bool = False,
    consent_source: str = "",
    tags: Sequence[Tag] = (),
    tag_source: str = ContactTag.Source.MANUAL,
    **values: Any,
) -> Contact:
    """Create a contact. An operator who creates a contact without naming an owner becomes its owner."""
    values = _clean_contact_values(values)
    values.setdefault("acquired_at", timezone.now())
    if values.get("owner") is None and actor is not None and not Contact.objects.sees_all(actor):
        values["owner"] = actor
    contact = Contact(**values)
    now = timezone.now()
    if marketing_consent:
        contact.marketing_consent = True
        contact.consent_at = now
        contact.consent_source = consent_source or "manual"
    _full_clean(contact)
    with transaction.atomic():
        contact.save()
        if tags:
            contacts_tag(contact_ids=[contact.pk], tags=tags, actor=actor, source=tag_source)
        contact_facts_refresh(contact_ids=[contact.pk, contact.referred_by_id])
        if marketing_consent:
            _consent_changed(contact, "given", actor=actor, source=tag_source)
    contact.refresh_from_db()
    return contact


def contact_update(*, contact: Contact, actor: User | None = None, **values: Any) -> Contact:
    """Change a contact's profile fields. Consent has its own services (contact_consent_*)."""
    values = _clean_contact_values(values)
    if (
        "owner" in values
        and values["owner"] != contact.owner
        and actor is not None
        and not Contact.objects.sees_all(actor)
    ):
        # Only managers reassign: an operator can neither give a contact away nor leave it without an
        # owner (it would drop out of every book but the managers').
        raise ValidationError({"owner": [_("Only a manager can change a contact's owner.")]})
    if values.get("referred_by") is not None and values["referred_by"].pk == contact.pk:
        raise ValidationError({"referred_by": [_("A contact cannot refer themselves.")]})
    old_referrer = contact.referred_by_id
    for field, value in values.items():
        setattr(contact, field, value)
    _full_clean(contact)
    with transaction.atomic():
        contact.save()
        if "referred_by" in values and contact.referred_by_id != old_referrer:
            contact_facts_refresh(contact_ids=[old_referrer, contact.referred_by_id])
    return contact


def _consent_changed(contact: Contact, change: str, *, actor: User | None, source: str) -> None:
    """The consent history (PIPL): each change with its time, actor and way in, in the audit trail. The
    free-text consent source stays on the contact (it is erased with it); the trail keeps the kind."""
    audit(Action.CONSENT_CHANGED, actor=actor, target=contact, detail={"consent": change, "source": source})


@transaction.atomic
def contact_consent_give(
    *, contact: Contact, source: str, at: dt.datetime | None = None, actor: User | None = None, via: str = "api"
) -> Contact:
    """Record marketing consent (and clear an earlier opt-out: the contact has opted back in)."""
    if not source:
        raise ValidationError({"consent_source": [_("Say where the consent was given.")]})
    Contact.objects.filter(pk=contact.pk).update(
        marketing_consent=True, consent_at=at or timezone.now(), consent_source=source[:64], opted_out_at=None
    )
    _consent_changed(contact, "given", actor=actor, source=via)
    contact.refresh_from_db()
    return contact


@transaction.atomic
def contact_opt_out(
    *, contact: Contact, at: dt.datetime | None = None, actor: User | None = None, via: str = "api"
) -> Contact:
    """Record an opt-out: no marketing message reaches the contact from now on. Idempotent: the first
    opt-out time is kept."""
    if Contact.objects.filter(pk=contact.pk, opted_out_at__isnull=True).update(
        opted_out_at=at or timezone.now(), marketing_consent=False
    ):
        _consent_changed(contact, "opted_out", actor=actor, source=via)
    contact.refresh_from_db()
    return contact


@transaction.atomic
def contact_merge(*, primary: Contact, duplicate: Contact, actor: User | None = None) -> Contact:
    """Fold ``duplicate`` into ``primary``: purchases, touchpoints, tags, memberships and referrals move
    over, blank profile fields are filled from the duplicate, and the duplicate is kept only as an empty
    pointer (``merged_into``) so that old references still resolve."""
    from communities.models import Membership

    if primary.pk == duplicate.pk:
        raise ValidationError({"duplicate": [_("A contact cannot be merged into itself.")]})
    locked = {c.pk: c for c in Contact.objects.select_for_update().filter(pk__in=[primary.pk, duplicate.pk])}
    primary, duplicate = locked[primary.pk], locked[duplicate.pk]
    for contact, field in ((primary, "primary"), (duplicate, "duplicate")):
        if contact.merged_into_id or contact.erased_at:
            raise ValidationError({field: [_("This contact was merged or erased and cannot be merged.")]})

    Purchase.objects.filter(contact=duplicate).update(contact=primary)
    Touchpoint.objects.filter(contact=duplicate).update(contact=primary)
    Contact.objects.filter(referred_by=duplicate).exclude(pk=primary.pk).update(referred_by=primary)
    existing_tags = ContactTag.objects.filter(contact=primary).values("tag")
    ContactTag.objects.filter(contact=duplicate).exclude(tag__in=existing_tags).update(contact=primary)
    ContactTag.objects.filter(contact=duplicate).delete()
    open_in = Membership.objects.filter(contact=primary, left_at__isnull=True).values("community")
    Membership.objects.filter(contact=duplicate, left_at__isnull=True, community__in=open_in).update(
        left_at=timezone.now()
    )
    Membership.objects.filter(contact=duplicate).update(contact=primary)

    moved_identifiers = {}
    for field in _NULLABLE_UNIQUE_FIELDS:
        if not getattr(primary, field) and getattr(duplicate, field):
            moved_identifiers[field] = getattr(duplicate, field)
    for field in ("name", "email", "region", "city", "occupation", "birthday", "channel_id", "owner_id"):
        if not getattr(primary, field) and getattr(duplicate, field):
            setattr(primary, field, getattr(duplicate, field))
    if primary.gender == Contact.Gender.UNKNOWN:
        primary.gender = duplicate.gender
    if duplicate.acquired_at < primary.acquired_at:
        primary.acquired_at, primary.channel_id = duplicate.acquired_at, duplicate.channel_id or primary.channel_id
    if primary.referred_by_id is None and duplicate.referred_by_id not in (None, primary.pk):
        primary.referred_by_id = duplicate.referred_by_id
    primary.attributes = {**duplicate.attributes, **primary.attributes}
    if duplicate.opted_out_at and not primary.opted_out_at:
        # An opt-out on either record wins: the person said no.
        primary.opted_out_at, primary.marketing_consent = duplicate.opted_out_at, False
    elif duplicate.marketing_consent and not primary.marketing_consent and not primary.opted_out_at:
        primary.marketing_consent = True
        primary.consent_at, primary.consent_source = duplicate.consent_at, duplicate.consent_source

    # Free the duplicate's unique identifiers before the primary takes them.
    Contact.objects.filter(pk=duplicate.pk).update(
        merged_into=primary, phone=None, external_id=None, wecom_external_userid=None, wechat_unionid=None
    )
    for field, value in moved_identifiers.items():
        setattr(primary, field, value)
    primary.save()
    audit(Action.CONTACTS_MERGED, actor=actor, target=primary, detail={"duplicate": duplicate.pk})
    contact_facts_refresh(contact_ids=[primary.pk, duplicate.pk, primary.referred_by_id, duplicate.referred_by_id])
    primary.refresh_from_db()
    return primary


# --- Tags -----------------------------------------------------------------------------------


def contacts_tag(
    *,
    contact_ids: Iterable[int],
    tags: Sequence[Tag],
    actor: User | None = None,
    source: str = ContactTag.Source.MANUAL,
) -> int:
    """Put ``tags`` on every contact in ``contact_ids``; return how many links were new. Safe to retry.
    In an exclusive tag group the new tag replaces the contact's other tags of that group."""
    ids = list(contact_ids)
    tags = list(tags)
    exclusive = {}
    for tag in tags:
        if tag.group.exclusive:
            if tag.group_id in exclusive:
                raise ValidationError(
                    {"tags": [_("Only one tag of the group “%(group)s” may be given.") % {"group": tag.group.name}]}
                )
            exclusive[tag.group_id] = tag.pk
    created = 0
    with transaction.atomic():
        for group_id, tag_id in exclusive.items():
            ContactTag.objects.filter(contact_id__in=ids, tag__group_id=group_id).exclude(tag_id=tag_id).delete()
        for start in range(0, len(ids), FACTS_CHUNK):
            chunk = ids[start : start + FACTS_CHUNK]
            for tag in tags:
                already = set(
                    ContactTag.objects.filter(tag=tag, contact_id__in=chunk).values_list("contact_id", flat=True)
                )
                links = [
                    ContactTag(contact_id=cid, tag=tag, tagged_by=actor, source=source)
                    for cid in chunk
                    if cid not in already
                ]
                ContactTag.objects.bulk_create(links, ignore_conflicts=True)
                created += len(links)
        if created:
            _tags_changed(contact_ids=ids, added=[t.pk for t in tags], removed=[], source=source)
    return created


def contacts_untag(*, contact_ids: Iterable[int], tags: Sequence[Tag]) -> int:
    """Remove ``tags`` from the contacts; return how many links went."""
    ids, tags = list(contact_ids), list(tags)
    deleted, _detail = ContactTag.objects.filter(contact_id__in=ids, tag__in=tags).delete()
    if deleted:
        _tags_changed(contact_ids=ids, added=[], removed=[t.pk for t in tags], source="")
    return deleted


def _tags_changed(*, contact_ids: list[int], added: list[int], removed: list[int], source: str) -> None:
    transaction.on_commit(
        lambda: contact_tags_changed.send(
            sender=ContactTag, contact_ids=contact_ids, added_tag_ids=added, removed_tag_ids=removed, source=source
        )
    )


def _visible_contact_ids(actor: User, contact_ids: Iterable[int]) -> list[int]:
    """``contact_ids``, sorted and unique, if ``actor`` may see every one of them; otherwise a
    ValidationError naming the others. A bulk write never narrows a request quietly: the dashboard and
    the API both reject the whole request and write nothing, so a forged or stale id is noticed."""
    ids = sorted(set(contact_ids))
    visible = set(Contact.objects.live().visible_to(actor).filter(pk__in=ids).values_list("pk", flat=True))
    missing = [i for i in ids if i not in visible]
    if missing:
        shown = ", ".join(str(i) for i in missing[:20])
        raise ValidationError({"contact_ids": [_("Unknown contact id(s): %(ids)s.") % {"ids": shown}]})
    return ids


def contacts_bulk_tag(*, actor: User, contact_ids: Iterable[int], tags: Sequence[Tag], source: str) -> int:
    """Tag contacts chosen by a user (list page, API); every id must be one the user may see."""
    return contacts_tag(contact_ids=_visible_contact_ids(actor, contact_ids), tags=tags, actor=actor, source=source)


def contacts_bulk_untag(*, actor: User, contact_ids: Iterable[int], tags: Sequence[Tag]) -> int:
    """Untag contacts chosen by a user; every id must be one the user may see."""
    return contacts_untag(contact_ids=_visible_contact_ids(actor, contact_ids), tags=tags)


def contact_tags_set(*, contact: Contact, tags: Sequence[Tag], actor: User | None, source: str) -> None:
    """Make ``tags`` exactly the contact's tags: remove the others, add the missing ones (with ``source``).
    Tags the contact already carries keep their original link (who tagged, and when)."""
    current = set(contact.tag_links.values_list("tag_id", flat=True))
    wanted = {tag.pk for tag in tags}
    with transaction.atomic():
        contacts_untag(contact_ids=[contact.pk], tags=list(Tag.objects.filter(pk__in=current - wanted)))
        contacts_tag(
            contact_ids=[contact.pk], tags=[t for t in tags if t.pk not in current], actor=actor, source=source
        )


# --- Owners ---------------------------------------------------------------------------------


def contacts_reassign(*, contacts: QuerySet[Contact], owner: User, actor: User | None = None) -> int:
    """Make ``owner`` the owner of every contact in ``contacts``; return how many changed."""
    if not owner.is_active:
        raise ValidationError({"owner": [_("The new owner is not an active user.")]})
    moved = contacts.exclude(owner=owner).update(owner=owner, updated_at=timezone.now())
    audit(Action.CONTACTS_REASSIGNED, actor=actor, target_type="auth.user", target_id=owner.pk, count=moved)
    return moved


@transaction.atomic
def contacts_handover(
    *, from_user: User, to_user: User, actor: User | None = None, include_communities: bool = True
) -> dict[str, int]:
    """离职继承: hand every contact (and, by default, every community) of a departing staff member to
    another, in one transaction. Running it again moves nothing more."""
    if from_user.pk == to_user.pk:
        raise ValidationError({"to_user": [_("Choose a different staff member to hand over to.")]})
    if not to_user.is_active:
        raise ValidationError({"to_user": [_("The new owner is not an active user.")]})
    from communities.models import Community

    moved_contacts = Contact.objects.filter(owner=from_user).update(owner=to_user, updated_at=timezone.now())
    moved_communities = Community.objects.filter(owner=from_user).update(owner=to_user) if include_communities else 0
    audit(
        Action.HANDOVER,
        actor=actor,
        target_type="auth.user",
        target_id=from_user.pk,
        count=moved_contacts,
        detail={"to_user": to_user.pk, "communities": moved_communities},
    )
    return {"contacts": moved_contacts, "communities": moved_communities}


# --- Purchases ------------------------------------------------------------------------------


def _purchase_matches(purchase: Purchase, *, contact: Contact, amount: Decimal) -> None:
    if purchase.contact_id != contact.pk:
        raise ConflictError(
            _("Order %(id)s is already recorded for another contact.") % {"id": purchase.external_order_id},
            field="contact",
        )
    if purchase.amount != amount:
        raise ConflictError(
            _("Order %(id)s is already recorded with amount %(amount)s.")
            % {"id": purchase.external_order_id, "amount": purchase.amount},
            field="amount",
        )


def purchase_record(
    *,
    contact: Contact,
    external_order_id: str,
    purchased_at: dt.datetime,
    amount: Decimal,
    status: str = Purchase.Status.PAID,
    items: Sequence[dict[str, Any]] = (),
    source: str = "",
    refunded_at: dt.datetime | None = None,
) -> tuple[Purchase, bool]:
    """Record an order; return ``(purchase, created)``.

    Idempotent on ``external_order_id``: sending the same order again returns the stored purchase and
    changes nothing, even when retries race (the unique constraint decides, the loser reads the winner's
    row). Re-sending a paid order as refunded applies the refund. Re-sending it with another contact or
    amount is a ``ConflictError``.
    """
    external_order_id = (external_order_id or "").strip()
    if not external_order_id:
        raise ValidationError({"external_order_id": [_("This field is required.")]})
    if amount is None or Decimal(amount) < 0:
        raise ValidationError({"amount": [_("Enter an amount of zero or more.")]})
    if status not in Purchase.Status.values:
        raise ValidationError({"status": [_("Unknown status “%(value)s”.") % {"value": status}]})
    if contact.merged_into_id:
        contact = Contact.objects.get(pk=contact.merged_into_id)
    amount = Decimal(amount).quantize(Decimal("0.01"))
    for index, item in enumerate(items):
        if not isinstance(item.get("product"), Product):
            raise ValidationError({f"items[{index}].product": [_("Unknown product.")]})
        if int(item.get("quantity", 1)) < 1:
            raise ValidationError({f"items[{index}].quantity": [_("Enter a quantity of at least 1.")]})

    existing = Purchase.objects.filter(external_order_id=external_order_id).first()
    if existing is None:
        try:
            with transaction.atomic():
                # Lock the contact: purchases of one contact are recorded one after another, so the
                # facts recomputed below always see every committed purchase.
                Contact.objects.select_for_update().filter(pk=contact.pk).first()
                purchase = Purchase.objects.create(
                    contact=contact,
                    external_order_id=external_order_id,
                    purchased_at=purchased_at,
                    amount=amount,
                    status=status,
                    refunded_at=refunded_at or (timezone.now() if status == Purchase.Status.REFUNDED else None),
                    source=source[:32],
                )
                PurchaseItem.objects.bulk_create(
                    [
                        PurchaseItem(
                            purchase=purchase,
                            product=item["product"],
                            quantity=int(item.get("quantity", 1)),
                            unit_price=Decimal(item.get("unit_price", item["product"].price)),
                        )
                        for item in items
                    ]
                )
                contact_facts_refresh(contact_ids=[contact.pk])
            return purchase, True
        except IntegrityError:
            existing = Purchase.objects.filter(external_order_id=external_order_id).first()
            if existing is None:
                raise
    _purchase_matches(existing, contact=contact, amount=amount)
    if status == Purchase.Status.REFUNDED and existing.status == Purchase.Status.PAID:
        existing = purchase_refund(purchase=existing, refunded_at=refunded_at)
    return existing, False


def purchase_refund(*, purchase: Purchase, refunded_at: dt.datetime | None = None) -> Purchase:
    """Mark an order refunded: it stops counting as revenue and as a purchase. Idempotent."""
    with transaction.atomic():
        Contact.objects.select_for_update().filter(pk=purchase.contact_id).first()
        changed = Purchase.objects.filter(pk=purchase.pk, status=Purchase.Status.PAID).update(
            status=Purchase.Status.REFUNDED, refunded_at=refunded_at or timezone.now()
        )
        if changed:
            contact_facts_refresh(contact_ids=[purchase.contact_id])
    purchase.refresh_from_db()
    return purchase


# --- Touchpoints ----------------------------------------------------------------------------


def touchpoint_record(
    *,
    contact: Contact,
    medium: str,
    kind: str,
    occurred_at: dt.datetime | None = None,
    staff: User | None = None,
    community=None,
    metadata: dict | None = None,
) -> Touchpoint:
    """Append one interaction and bring the contact's last-interaction fact and stage up to date."""
    errors = {}
    if medium not in Touchpoint.Medium.values:
        errors["medium"] = [_("Unknown medium “%(value)s”.") % {"value": medium}]
    if kind not in Touchpoint.Kind.values:
        errors["kind"] = [_("Unknown kind “%(value)s”.") % {"value": kind}]
    try:
        limits.json_check(metadata or {})
    except ValidationError as exc:
        errors["metadata"] = exc.messages
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        touchpoint = Touchpoint.objects.create(
            contact=contact,
            medium=medium,
            kind=kind,
            occurred_at=occurred_at or timezone.now(),
            staff=staff,
            community=community,
            metadata=metadata or {},
        )
        if kind not in Touchpoint.OUTBOUND_KINDS:
            Contact.objects.filter(pk=contact.pk).filter(
                Q(last_interaction_at__isnull=True) | Q(last_interaction_at__lt=touchpoint.occurred_at)
            ).update(last_interaction_at=touchpoint.occurred_at)
            Contact.objects.filter(pk=contact.pk).update(stage=stage_expression())
    return touchpoint


# --- Reference data -------------------------------------------------------------------------


def channel_get_or_create(*, name: str) -> Channel:
    channel, _created = Channel.objects.get_or_create(name=name.strip())
    return channel
