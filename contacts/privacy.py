"""Everything held about one person, for their PIPL access request (个人信息查阅/复制): as JSON, and as one
CSV in long form (section, row, field, value).

Each app that keeps something about a contact registers a section here (``personal_data_section``) in its
``AppConfig.ready``; contacts registers its own below. Erasure is the other half: ``contact_erase`` (at
the end; ``contacts.services`` re-exports it) and the ``contact_erased`` signal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from scrm.audit import Action, audit, logentries_scrub
from scrm.csv_writer import Text, csv_chunks

from .models import Contact, ContactTag, Purchase, PurchaseItem, Touchpoint
from .signals import contact_erased

Section = Callable[[Contact], list[dict[str, Any]]]
_SECTIONS: dict[str, Section] = {}


def personal_data_section(name: str) -> Callable[[Section], Section]:
    """Register ``fn(contact) -> rows`` as the section ``name`` of a personal data export."""

    def register(fn: Section) -> Section:
        _SECTIONS[name] = fn
        return fn

    return register


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat() if timezone.is_aware(value) else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def personal_data(contact: Contact) -> dict[str, Any]:
    """The export as a JSON-ready dict: when it was made, then every registered section."""
    return {
        "exported_at": _plain(timezone.now()),
        "contact_id": contact.pk,
        **{name: [{k: _plain(v) for k, v in row.items()} for row in fn(contact)] for name, fn in _SECTIONS.items()},
    }


def personal_data_csv(contact: Contact) -> Iterator[str]:
    """The same as CSV: one line per field (section, row number, field, value), values defused."""
    data = personal_data(contact)

    def rows():
        yield ["section", "row", "field", "value"]
        for name, section in data.items():
            if not isinstance(section, list):
                yield [name, "", "", Text(str(section))]
                continue
            for n, row in enumerate(section, start=1):
                for field, value in row.items():
                    yield [name, n, field, Text("" if value is None else str(value))]

    return csv_chunks(rows())


# --- What contacts holds ---------------------------------------------------------------------------

PROFILE_FIELDS = (
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
    "intent_level",
    "attributes",
    "acquired_at",
    "marketing_consent",
    "consent_at",
    "consent_source",
    "opted_out_at",
    "erased_at",
    "stage",
)


@personal_data_section("profile")
def _profile(contact: Contact) -> list[dict]:
    row = {field: getattr(contact, field) for field in PROFILE_FIELDS}
    row["channel"] = contact.channel.name if contact.channel_id else None
    row["owner"] = contact.owner.get_username() if contact.owner_id else None
    return [row]


@personal_data_section("tags")
def _tags(contact: Contact) -> list[dict]:
    return list(
        ContactTag.objects.filter(contact=contact)
        .order_by("created_at")
        .values("tag__group__name", "tag__name", "source", "created_at")
    )


@personal_data_section("touchpoints")
def _touchpoints(contact: Contact) -> list[dict]:
    return list(
        Touchpoint.objects.filter(contact=contact)
        .order_by("occurred_at", "pk")
        .values("occurred_at", "medium", "kind", "community__name", "metadata")
    )


@personal_data_section("purchases")
def _purchases(contact: Contact) -> list[dict]:
    return list(
        Purchase.objects.filter(contact=contact)
        .order_by("purchased_at", "pk")
        .values("external_order_id", "purchased_at", "amount", "status", "refunded_at", "source")
    )


@personal_data_section("purchase_items")
def _items(contact: Contact) -> list[dict]:
    return list(
        PurchaseItem.objects.filter(purchase__contact=contact)
        .order_by("purchase__purchased_at", "pk")
        .values("purchase__external_order_id", "product__name", "quantity", "unit_price")
    )


@personal_data_section("communities")
def _memberships(contact: Contact) -> list[dict]:
    from communities.models import Membership

    return list(
        Membership.objects.filter(contact=contact)
        .order_by("joined_at", "pk")
        .values("community__name", "role", "joined_at", "left_at")
    )


# --- Erasure ---------------------------------------------------------------------------------------


@transaction.atomic
def contact_erase(*, contact: Contact, actor: Any = None) -> Contact:
    """Erase a contact's personal data (PIPL right to erasure). The row stays, anonymous, so that the
    purchases it made still count in historical totals; tags and interaction details go, and every app
    scrubs what it keeps about the person (``contacts.signals.contact_erased``), all in one transaction."""
    from communities.models import Membership

    from .exports import exports_expire_all
    from .imports import import_job_files_delete

    with transaction.atomic():
        Contact.objects.filter(pk=contact.pk).update(
            name="",
            phone=None,
            email="",
            external_id=None,
            wecom_external_userid=None,
            wechat_unionid=None,
            gender=Contact.Gender.UNKNOWN,
            birthday=None,
            region="",
            city="",
            occupation="",
            attributes={},
            marketing_consent=False,
            consent_source="",
            erased_at=timezone.now(),
        )
        ContactTag.objects.filter(contact=contact).delete()
        Touchpoint.objects.filter(contact=contact).update(metadata={})
        Purchase.objects.filter(contact=contact).update(source="")
        Membership.objects.filter(contact=contact, left_at__isnull=True).update(left_at=timezone.now())
        # Export files written before now may hold the person: they are deleted (the jobs stay, expired).
        exports_expire_all(reason=_("The file was deleted because a contact in it was erased."))
        import_job_files_delete(all_finished=True)
        # The change history keeps who changed which field and when, not what it said.
        logentries_scrub(model=Contact, pk=contact.pk)
        for purchase_id in Purchase.objects.filter(contact=contact).values_list("pk", flat=True):
            logentries_scrub(model=Purchase, pk=purchase_id)
        audit(Action.CONTACT_ERASED, actor=actor, target=contact)
        contact_erased.send(sender=Contact, contact_id=contact.pk, actor=actor)
    contact.refresh_from_db()
    return contact
