"""CSV export of a contact list, in the columns of the contacts import so that an export can be edited and
imported again (docs/csv-import.md)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet
from django.utils import timezone

from scrm.csv_writer import Text, csv_chunks

from ..imports import CONTACT_COLUMNS
from ..models import Contact, ContactTag
from ..phones import mask_phone

EXPORT_CHUNK = 2000

# Free-text columns a spreadsheet could read as a formula: written as ``Text``, which the CSV writer
# defuses with a leading quote (the import removes it again).
_TEXT_COLUMNS = frozenset(
    {"external_id", "name", "email", "region", "city", "occupation", "channel", "owner", "consent_source"}
    | {"wecom_external_userid", "wechat_unionid", "tags"}
)
_FIELDS = (
    "pk",
    "external_id",
    "phone",
    "name",
    "email",
    "gender",
    "birthday",
    "region",
    "city",
    "occupation",
    "channel__name",
    "acquired_at",
    "owner__username",
    "intent_level",
    "marketing_consent",
    "consent_source",
    "wecom_external_userid",
    "wechat_unionid",
)


def _tags_by_contact(contact_ids: list[int]) -> dict[int, str]:
    tags: dict[int, list[str]] = {}
    links = (
        ContactTag.objects.filter(contact_id__in=contact_ids)
        .order_by("tag__group__sort_order", "tag__group__name", "tag__name")
        .values_list("contact_id", "tag__group__name", "tag__name")
    )
    for contact_id, group, name in links:
        tags.setdefault(contact_id, []).append(f"{group}:{name}")
    return {contact_id: "|".join(names) for contact_id, names in tags.items()}


def contact_csv_rows(
    queryset: QuerySet[Contact], *, chunk_size: int = EXPORT_CHUNK, mask_phones: bool = False
) -> Iterator[str]:
    """Yield the contacts of ``queryset`` as CSV text: a UTF-8 BOM and the header first (so that Excel
    reads the Chinese text right), then one piece per chunk of contacts."""
    for text, _count in contact_csv_chunks(queryset, chunk_size=chunk_size, mask_phones=mask_phones):
        yield text


def contact_csv_chunks(
    queryset: QuerySet[Contact], *, chunk_size: int = EXPORT_CHUNK, mask_phones: bool = False
) -> Iterator[tuple[str, int]]:
    """``contact_csv_rows`` with the number of contacts in each piece (0 for the header).

    Walks the queryset by primary key (keyset pagination: no long-open cursor, constant memory) with two
    queries per chunk, the contacts and their tags. Contacts come out in id order. With ``mask_phones`` the
    phone column holds what the list pages show (``138****5678``, ``contacts.phones.mask_phone``)."""
    yield "".join(csv_chunks([list(CONTACT_COLUMNS)])), 0
    queryset = queryset.order_by("pk")
    last_pk = 0
    while True:
        rows = list(queryset.filter(pk__gt=last_pk).values_list(*_FIELDS)[:chunk_size])
        if not rows:
            return
        last_pk = rows[-1][0]
        tags = _tags_by_contact([row[0] for row in rows])
        yield "".join(csv_chunks((_cells(row, tags, mask_phones) for row in rows), bom=False)), len(rows)
        if len(rows) < chunk_size:
            return


def _cells(row: tuple, tags: dict[int, str], mask_phones: bool = False) -> list[str]:
    """One contact as the cells of the import columns, in their order."""
    record = dict(zip(_FIELDS, row, strict=True))
    phone = record["phone"] or ""
    values = {
        "external_id": record["external_id"] or "",
        "phone": mask_phone(phone) if mask_phones else phone,
        "name": record["name"],
        "email": record["email"],
        "gender": record["gender"],
        "birthday": record["birthday"].isoformat() if record["birthday"] else "",
        "region": record["region"],
        "city": record["city"],
        "occupation": record["occupation"],
        "channel": record["channel__name"] or "",
        "acquired_at": timezone.localtime(record["acquired_at"]).isoformat(),
        "owner": record["owner__username"] or "",
        "intent_level": record["intent_level"],
        "tags": tags.get(record["pk"], ""),
        "marketing_consent": "true" if record["marketing_consent"] else "false",
        "consent_source": record["consent_source"],
        "wecom_external_userid": record["wecom_external_userid"] or "",
        "wechat_unionid": record["wechat_unionid"] or "",
    }
    return [Text(values[c]) if c in _TEXT_COLUMNS else values[c] for c in CONTACT_COLUMNS]
