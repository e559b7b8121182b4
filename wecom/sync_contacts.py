"""One page of ``batch/get_by_user`` applied to our tables, set-based: a fixed number of statements per
page whatever its size, and nothing written for data that has not changed.

For each customer of the page:

- **contact**: the one with its external_userid, else its unionid, else a phone of the staff member's
  remark (``remark_mobiles``, normalised like every phone here) — a contact found by unionid or phone is
  taken only when it has no other external_userid. A found contact gains the identifiers it lacks (when
  no other contact holds them), a name when it has none, a gender when it is unknown, an owner and a
  channel when it has none, and an earlier ``acquired_at`` when a follow is older. A customer matched by
  nothing becomes a new contact (bulk insert): WeCom's name and gender, ``acquired_at`` = the earliest
  follow's ``createtime``, ``channel`` = the live code's channel when that follow's ``state`` is a live
  code's, ``owner`` = the user of that follow's staff account.
- **follow relationship**, upserted on (staff, external_userid). One ended after the add WeCom reports
  (``deleted_at`` later than ``createtime``: the callback was newer than the list) stays ended; one
  ended before it was added again and starts again.
- **touchpoint** ``add_friend`` (medium wecom) for each follow first seen or started again, then the
  contacts' facts and stage through ``contacts.services.contact_facts_refresh``.
- **tags**: the follow's corp tags of linked groups are put on the contact (source wecom).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from contacts import services as contact_services
from contacts.models import Contact, ContactTag, Tag, Touchpoint
from contacts.phones import normalize_phone

from .models import CorpTagLink, FollowRelationship, LiveCode, StaffAccount

GENDERS = {1: Contact.Gender.MALE, 2: Contact.Gender.FEMALE}
_CONTACT_FIELDS = (
    "id",
    "name",
    "gender",
    "phone",
    "wecom_external_userid",
    "wechat_unionid",
    "acquired_at",
    "owner_id",
    "channel_id",
)
_FOLLOW_FIELDS = ("contact_id", "remark", "description", "add_way", "state", "live_code_id", "added_at")


@dataclass
class SyncContext:
    """What every page needs, read once per run: staff accounts, live codes by state, linked corp tags."""

    staff: dict[str, tuple[int, int | None]]  # WeCom userid -> (staff account id, user id)
    live_codes: dict[str, tuple[int, int]]  # state -> (live code id, channel id)
    tag_links: dict[str, int]  # WeCom tag id -> our tag id

    @classmethod
    def for_batch(cls, *, userids: set[str], states: set[str | None]) -> SyncContext:
        """Only what a batch of callbacks needs: its members, its live codes, the linked tags."""
        states = {s for s in states if s}
        return cls(
            staff={
                u: (pk, user)
                for pk, u, user in StaffAccount.objects.filter(userid__in=userids).values_list(
                    "pk", "userid", "user_id"
                )
            },
            live_codes={
                s: (pk, ch)
                for pk, s, ch in LiveCode.objects.filter(state__in=states).values_list("pk", "state", "channel_id")
            },
            tag_links=dict(CorpTagLink.objects.values_list("wecom_id", "tag_id")),
        )

    @classmethod
    def load(cls) -> SyncContext:
        return cls(
            staff={u: (pk, user) for pk, u, user in StaffAccount.objects.values_list("pk", "userid", "user_id")},
            live_codes={s: (pk, ch) for pk, s, ch in LiveCode.objects.values_list("pk", "state", "channel_id")},
            tag_links=dict(CorpTagLink.objects.values_list("wecom_id", "tag_id")),
        )


@dataclass
class PageResult:
    customers_seen: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0
    follows_written: int = 0
    touchpoints: int = 0
    tags_added: int = 0
    skipped: list[dict] = field(default_factory=list)

    @property
    def wrote(self) -> bool:
        return bool(self.contacts_created or self.contacts_updated or self.follows_written or self.tags_added)


def _when(seconds) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds or 0), tz=dt.UTC)


def _phone(mobiles) -> str | None:
    for raw in mobiles or []:
        try:
            return normalize_phone(str(raw))
        except ValidationError:  # a remark that is not a phone number is just not matched on
            continue
    return None


@dataclass
class _Customer:
    external_userid: str
    profile: dict
    follows: list[dict] = field(default_factory=list)  # follow_info, earliest first once sorted
    phone: str | None = None
    unionid: str | None = None

    @property
    def first(self) -> dict:
        return self.follows[0]


def _customers(items: list[dict], context: SyncContext, result: PageResult) -> dict[str, _Customer]:
    customers: dict[str, _Customer] = {}
    for item in items:
        profile = item.get("external_contact") or {}
        follow = item.get("follow_info") or {}
        eid = str(profile.get("external_userid") or "")[:64]
        if not eid or follow.get("userid") not in context.staff:
            result.skipped.append({"external_userid": eid, "userid": follow.get("userid"), "error": "unknown member"})
            continue
        customer = customers.setdefault(eid, _Customer(eid, profile))
        customer.follows.append(follow)
    for customer in customers.values():
        customer.follows.sort(key=lambda f: int(f.get("createtime") or 0))
        customer.unionid = str(customer.profile.get("unionid") or "")[:64] or None
        customer.phone = next((p for f in customer.follows if (p := _phone(f.get("remark_mobiles")))), None)
    return customers


def _desired(customer: _Customer, context: SyncContext) -> dict:
    """What WeCom says about the contact: the values a new contact gets."""
    first = customer.first
    owner = context.staff[first["userid"]][1]
    channel = None
    for follow in customer.follows:
        if (code := context.live_codes.get(follow.get("state") or "")) is not None:
            channel = code[1]
            break
    return {
        "name": str(customer.profile.get("name") or customer.external_userid)[:100],
        "gender": GENDERS.get(customer.profile.get("gender"), Contact.Gender.UNKNOWN),
        "acquired_at": _when(first.get("createtime")),
        "owner_id": owner,
        "channel_id": channel,
    }


def _contacts_upsert(customers: dict[str, _Customer], context: SyncContext, result: PageResult) -> dict[str, int]:
    """Match, fill and create the page's contacts; returns {external_userid: contact id}."""
    eids = list(customers)
    unionids = {c.unionid for c in customers.values() if c.unionid}
    phones = {c.phone for c in customers.values() if c.phone}
    rows = list(
        Contact.objects.filter(
            Q(wecom_external_userid__in=eids) | Q(wechat_unionid__in=unionids) | Q(phone__in=phones)
        ).values(*_CONTACT_FIELDS)
    )
    by_eid = {r["wecom_external_userid"]: r for r in rows if r["wecom_external_userid"]}
    by_union = {r["wechat_unionid"]: r for r in rows if r["wechat_unionid"]}
    by_phone = {r["phone"]: r for r in rows if r["phone"]}
    taken_unions, taken_phones = set(by_union), set(by_phone)
    claimed: set[int] = set()
    contact_of: dict[str, int] = {}
    changed: dict[int, dict] = {}
    new: list[tuple[str, Contact]] = []
    for eid, customer in customers.items():
        row = by_eid.get(eid)
        if row is None:
            for candidate in (by_union.get(customer.unionid or ""), by_phone.get(customer.phone or "")):
                if candidate and candidate["wecom_external_userid"] in (None, eid) and candidate["id"] not in claimed:
                    row = candidate
                    break
        desired = _desired(customer, context)
        if row is None:
            values = dict(desired, wecom_external_userid=eid)
            if customer.unionid and customer.unionid not in taken_unions:
                values["wechat_unionid"] = customer.unionid
                taken_unions.add(customer.unionid)
            if customer.phone and customer.phone not in taken_phones:
                values["phone"] = customer.phone
                taken_phones.add(customer.phone)
            new.append((eid, Contact(**values)))
            continue
        claimed.add(row["id"])
        contact_of[eid] = row["id"]
        updates = {}
        if row["wecom_external_userid"] is None:
            updates["wecom_external_userid"] = eid
        if row["wechat_unionid"] is None and customer.unionid and customer.unionid not in taken_unions:
            updates["wechat_unionid"] = customer.unionid
            taken_unions.add(customer.unionid)
        if row["phone"] is None and customer.phone and customer.phone not in taken_phones:
            updates["phone"] = customer.phone
            taken_phones.add(customer.phone)
        if not row["name"]:
            updates["name"] = desired["name"]
        if row["gender"] == Contact.Gender.UNKNOWN and desired["gender"] != Contact.Gender.UNKNOWN:
            updates["gender"] = desired["gender"]
        if desired["acquired_at"] < row["acquired_at"]:
            updates["acquired_at"] = desired["acquired_at"]
        for key in ("owner_id", "channel_id"):
            if row[key] is None and desired[key] is not None:
                updates[key] = desired[key]
        if updates:
            changed[row["id"]] = {**row, **updates, "_fields": set(updates)}
    if new:
        created = Contact.objects.bulk_create([contact for _eid, contact in new], batch_size=1000)
        for (eid, _contact), contact in zip(new, created, strict=True):
            contact_of[eid] = contact.pk
        result.contacts_created += len(created)
    if changed:
        fields = sorted(set().union(*(values["_fields"] for values in changed.values())))
        now = timezone.now()
        objects = []
        for pk, values in changed.items():
            contact = Contact(pk=pk, updated_at=now)
            for name in fields:
                setattr(contact, name, values[name])
            objects.append(contact)
        Contact.objects.bulk_update(objects, [*fields, "updated_at"], batch_size=500)
        result.contacts_updated += len(objects)
    return contact_of


def _follows_upsert(
    customers: dict[str, _Customer], contact_of: dict[str, int], context: SyncContext, result: PageResult
) -> list[Touchpoint]:
    """Upsert the page's follow relationships; returns the add_friend touchpoints of those first seen or
    started again."""
    staff_ids = {context.staff[f["userid"]][0] for c in customers.values() for f in c.follows}
    existing = {
        (row["staff_id"], row["external_userid"]): row
        for row in FollowRelationship.objects.filter(
            staff_id__in=staff_ids, external_userid__in=list(customers)
        ).values("id", "staff_id", "external_userid", "deleted_at", "event_at", *_FOLLOW_FIELDS)
    }
    create: list[FollowRelationship] = []
    update: list[FollowRelationship] = []
    update_fields: set[str] = set()
    touchpoints: list[Touchpoint] = []
    now = timezone.now()
    for eid, customer in customers.items():
        contact_id = contact_of[eid]
        for follow in customer.follows:
            userid = follow["userid"]
            staff_id, user_id = context.staff[userid]
            state = str(follow.get("state") or "")[:30]
            added_at = _when(follow.get("createtime"))
            desired = {
                "contact_id": contact_id,
                "remark": str(follow.get("remark") or "")[:100],
                "description": str(follow.get("description") or "")[:300],
                "add_way": follow.get("add_way"),
                "state": state,
                "live_code_id": (context.live_codes.get(state) or (None,))[0] if state else None,
                "added_at": added_at,
            }
            row = existing.get((staff_id, eid))
            started = False
            if row is None:
                create.append(FollowRelationship(staff_id=staff_id, external_userid=eid, event_at=added_at, **desired))
                started = True
            else:
                changes = {k: v for k, v in desired.items() if row[k] != v}
                if row["deleted_at"] is not None:
                    if row["deleted_at"] >= added_at:
                        continue  # ended after this add: the list WeCom gave us is older than the callback
                    changes.update(deleted_at=None, ended_by="", event_at=added_at)
                    started = True
                if changes:
                    update.append(FollowRelationship(**{**row, **changes, "updated_at": now}))
                    update_fields |= set(changes)
            if started:
                touchpoints.append(
                    Touchpoint(
                        contact_id=contact_id,
                        medium=Touchpoint.Medium.WECOM,
                        kind=Touchpoint.Kind.ADD_FRIEND,
                        occurred_at=added_at,
                        staff_id=user_id,
                        metadata={"external_userid": eid, "userid": userid, "state": state, "source": "sync"},
                    )
                )
    if create:
        FollowRelationship.objects.bulk_create(create, batch_size=1000)
    if update:
        FollowRelationship.objects.bulk_update(update, [*sorted(update_fields), "updated_at"], batch_size=500)
    result.follows_written += len(create) + len(update)
    return touchpoints


def _tags_apply(customers: dict[str, _Customer], contact_of: dict[str, int], context: SyncContext, result) -> None:
    """Put the follows' corp tags of linked groups on the contacts (never removes: a contact followed by
    two members carries the tags of both, and a tag put here is pushed to WeCom by ``tags_push``)."""
    wanted: dict[int, set[int]] = defaultdict(set)  # our tag id -> contact ids
    for eid, customer in customers.items():
        for follow in customer.follows:
            for wecom_id in follow.get("tag_id") or []:
                if (tag_id := context.tag_links.get(wecom_id)) is not None:
                    wanted[tag_id].add(contact_of[eid])
    if not wanted:
        return
    contact_ids = {cid for ids in wanted.values() for cid in ids}
    have = set(
        ContactTag.objects.filter(contact_id__in=contact_ids, tag_id__in=list(wanted)).values_list(
            "tag_id", "contact_id"
        )
    )
    missing = {tag_id: sorted(c for c in ids if (tag_id, c) not in have) for tag_id, ids in wanted.items()}
    missing = {tag_id: ids for tag_id, ids in missing.items() if ids}
    if not missing:
        return
    tags = Tag.objects.select_related("group").in_bulk(list(missing))
    for tag_id, ids in missing.items():
        result.tags_added += contact_services.contacts_tag(
            contact_ids=ids, tags=[tags[tag_id]], source=ContactTag.Source.WECOM
        )


def contacts_page_apply(*, items: list[dict], context: SyncContext) -> PageResult:
    """Apply one ``batch/get_by_user`` page (``external_contact_list``). Call inside a transaction."""
    result = PageResult(customers_seen=len(items))
    customers = _customers(items, context, result)
    if not customers:
        return result
    contact_of = _contacts_upsert(customers, context, result)
    touchpoints = _follows_upsert(customers, contact_of, context, result)
    if touchpoints:
        Touchpoint.objects.bulk_create(touchpoints, batch_size=1000)
        result.touchpoints += len(touchpoints)
        contact_services.contact_facts_refresh(contact_ids={t.contact_id for t in touchpoints})
    _tags_apply(customers, contact_of, context, result)
    return result
