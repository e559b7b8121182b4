"""The contacts import: the columns, the parsers of their cells, and how a batch of rows becomes new and
changed contacts and tag links.

What an import may write to a contact is ``contacts.services.CONTACT_EDITABLE_FIELDS`` (the one list of
editable fields, shared with the API and the dashboard) minus the fields a CSV cell cannot carry, plus
consent, which an import records (time and source) or withdraws."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from scrm.models import AuditEvent

from ..models import Channel, Contact, ContactTag, Tag
from ..services import CONTACT_EDITABLE_FIELDS
from .driver import _BatchResult, _Importer
from .reading import _bool, _CellError, _choice, _date, _datetime, _phone, _text
from .writing import _copy, _Inserter, _text_array

User = get_user_model()

# --- Columns and fields -------------------------------------------------------------------------

CONTACT_COLUMNS: dict[str, Any] = {
    "external_id": gettext_lazy("Your own customer ID. Matches an existing contact first."),
    "phone": gettext_lazy("Mobile phone; matches an existing contact when there is no external_id match."),
    "name": gettext_lazy("Name."),
    "email": gettext_lazy("Email address."),
    "gender": gettext_lazy("male / female / unknown (also 男 / 女 / 未知)."),
    "birthday": gettext_lazy("Date, YYYY-MM-DD (YYYY/M/D also accepted)."),
    "region": gettext_lazy("Province or region."),
    "city": gettext_lazy("City."),
    "occupation": gettext_lazy("Occupation."),
    "channel": gettext_lazy("Name of an existing acquisition channel; unknown names are rejected."),
    "acquired_at": gettext_lazy("Date or date and time; Asia/Shanghai unless an offset is given."),
    "owner": gettext_lazy("Username of the owning staff member."),
    "intent_level": gettext_lazy("none / low / medium / high (also 无 / 低 / 中 / 高)."),
    "tags": gettext_lazy("Existing tags as group:tag, several joined by |; tags are added, never removed."),
    "marketing_consent": gettext_lazy("true / false (also 1 / 0, yes / no, 是 / 否)."),
    "consent_source": gettext_lazy("Where the consent was given; used when consent is recorded."),
    "wecom_external_userid": gettext_lazy("WeCom external_userid."),
    "wechat_unionid": gettext_lazy("WeChat unionid."),
}

# Editable fields a CSV cell does not carry: a referrer is another contact, attributes are free-form JSON.
NOT_IMPORTED_FIELDS = frozenset({"referred_by", "attributes"})
# The editable fields an import writes, each the column of the same name (channel, owner: by name).
IMPORTED_FIELDS = tuple(name for name in CONTACT_EDITABLE_FIELDS if name not in NOT_IMPORTED_FIELDS)
# Columns that are not contact fields: tags are linked, consent is recorded (see _ContactImporter._changes).
EXTRA_COLUMNS = ("tags", "marketing_consent", "consent_source")

_IMPORTED_ATTNAMES = tuple(Contact._meta.get_field(name).attname for name in IMPORTED_FIELDS)
_CONSENT_FIELDS = ("marketing_consent", "consent_at", "consent_source")
# Fields compared with (and written to) existing contacts.
_CONTACT_FETCH = ("id", *_IMPORTED_ATTNAMES, "marketing_consent", "opted_out_at")
_CONTACT_UPDATABLE = (*_IMPORTED_ATTNAMES, *_CONSENT_FIELDS)
# Unique keys: a row matches by external_id, else by phone; a key that belongs to another contact
# rejects the row.
_KEY_FIELDS = ("external_id", "phone", "wecom_external_userid", "wechat_unionid")
_BELONGS_TO_ANOTHER = {
    "phone": gettext_lazy("This phone number belongs to another contact."),
    "wecom_external_userid": gettext_lazy("This WeCom external_userid belongs to another contact."),
    "wechat_unionid": gettext_lazy("This WeChat unionid belongs to another contact."),
}

_GENDERS = {"male": "male", "m": "male", "男": "male", "female": "female", "f": "female", "女": "female"}
_GENDERS.update({"unknown": "unknown", "未知": "unknown"})
_INTENT = {"none": "none", "low": "low", "medium": "medium", "high": "high", "无": "none", "低": "low", "中": "medium"}
_INTENT["高"] = "high"

_Parser = Callable[[str, dict], None]


def _max_length(name: str) -> int:
    return Contact._meta.get_field(name).max_length


# --- Parsing ------------------------------------------------------------------------------------


class _ContactCells:
    """The parsers of the contact columns; each stores its value(s) in the row dict. Parsing runs in its
    own thread and must not query: everything a parser looks up is loaded here, before it starts."""

    def __init__(self, *, actor, restricted: bool, now: dt.datetime, tz: dt.tzinfo) -> None:
        self.actor = actor
        self.restricted = restricted
        self.tz = tz
        self.cn = settings.SCRM_DEFAULT_PHONE_REGION == "CN"
        self.latest_acquisition = now + dt.timedelta(days=1)
        self.today = timezone.localdate(now)
        self.email_length = _max_length("email")
        self.channels = dict(Channel.objects.values_list("name", "pk"))
        self.tags: dict[tuple[str, str], tuple[int, int, bool]] = {
            (group, name): (pk, group_id, exclusive)
            for pk, name, group_id, group, exclusive in Tag.objects.values_list(
                "pk", "name", "group_id", "group__name", "group__exclusive"
            )
        }
        self.owners = dict(User.objects.filter(is_active=True).values_list(User.USERNAME_FIELD, "pk"))

    def parsers(self, index: dict[str, int]) -> list[tuple[int, str, _Parser]]:
        """(position, column, parser) of every column of the file."""
        special: dict[str, _Parser] = {
            "phone": self.phone,
            "email": self.email,
            "gender": self.gender,
            "birthday": self.birthday,
            "channel": self.channel,
            "acquired_at": self.acquired_at,
            "owner": self.owner,
            "intent_level": self.intent_level,
            "tags": self.tags_cell,
            "marketing_consent": self.consent,
            "consent_source": self.text("consent_source", "_consent_source"),
        }
        return [(position, name, special.get(name) or self.text(name)) for name, position in index.items()]

    def text(self, name: str, key: str | None = None) -> _Parser:
        """Free text of the field's length: every imported text field without a parser of its own."""
        model_field = Contact._meta.get_field(name)
        if not isinstance(model_field, models.CharField):
            raise TypeError(f"contacts.imports has no parser for the contact field {name!r}")
        max_length, key = model_field.max_length, key or name

        def handle(raw: str, values: dict) -> None:
            values[key] = _text(raw, max_length)

        return handle

    def email(self, raw: str, values: dict) -> None:
        value = _text(raw, self.email_length)
        try:
            validate_email(value)
        except ValidationError:
            raise _CellError(_("“%(value)s” is not an email address.") % {"value": value}) from None
        values["email"] = value

    def phone(self, raw: str, values: dict) -> None:
        values["phone"] = _phone(raw, self.cn)

    def acquired_at(self, raw: str, values: dict) -> None:
        value = _datetime(raw, self.tz)
        if value > self.latest_acquisition:
            raise _CellError(_("The acquisition time is in the future."))
        values["acquired_at"] = value

    def birthday(self, raw: str, values: dict) -> None:
        value = _date(raw)
        if value > self.today or value.year < 1900:
            raise _CellError(_("“%(value)s” is not a plausible birthday.") % {"value": raw})
        values["birthday"] = value

    def channel(self, raw: str, values: dict) -> None:
        pk = self.channels.get(raw)
        if pk is None:
            raise _CellError(_("Unknown channel “%(value)s”. Create the channel first.") % {"value": raw})
        values["channel_id"] = pk

    def owner(self, raw: str, values: dict) -> None:
        if self.restricted and raw != self.actor.get_username():
            raise _CellError(
                _("You can only import contacts into your own book: leave owner empty or use your username.")
            )
        pk = self.owners.get(raw)
        if pk is None:
            raise _CellError(_("No active staff member has the username “%(value)s”.") % {"value": raw})
        values["owner_id"] = pk

    def gender(self, raw: str, values: dict) -> None:
        values["gender"] = _GENDERS.get(raw) or _choice(raw, _GENDERS)

    def intent_level(self, raw: str, values: dict) -> None:
        values["intent_level"] = _INTENT.get(raw) or _choice(raw, _INTENT)

    def consent(self, raw: str, values: dict) -> None:
        values["_consent"] = _bool(raw)

    def tags_cell(self, raw: str, values: dict) -> None:
        found, unknown, malformed, exclusive_groups = [], [], [], {}
        for part in raw.split("|"):
            part = part.strip()
            if not part:
                continue
            group, sep, name = part.replace("：", ":").partition(":")
            if not sep or not group.strip() or not name.strip():
                malformed.append(part)
                continue
            tag = self.tags.get((group.strip(), name.strip()))
            if tag is None:
                unknown.append(part)
                continue
            pk, group_id, exclusive = tag
            if exclusive:
                if exclusive_groups.get(group_id, pk) != pk:
                    raise _CellError(
                        _("Only one tag of the group “%(group)s” may be given.") % {"group": group.strip()}
                    )
                exclusive_groups[group_id] = pk
            if pk not in found:
                found.append(pk)
        if malformed:
            raise _CellError(_("Write tags as group:tag (got “%(value)s”).") % {"value": "|".join(malformed)})
        if unknown:
            raise _CellError(_("Unknown tag(s): %(tags)s. Create them first.") % {"tags": "|".join(unknown)})
        values["_tags"] = tuple(found)


# --- Resolving a batch --------------------------------------------------------------------------


@dataclass
class _ContactBatch:
    """One batch on its way from rows to writes: the stored contacts it names, and what it will write."""

    by_key: dict[str, dict[str, dict]]  # key field → value → stored (or pending new) contact
    tag_links: dict[int, dict[int, int]]  # contact id → tag id → link id
    result: _BatchResult = field(default_factory=_BatchResult)
    claimed: dict[int, int] = field(default_factory=dict)  # contact id → line (new contacts: negative ids)
    released: dict[tuple[str, str], int] = field(default_factory=dict)  # keys moved away → line
    creates: list[tuple[int, dict]] = field(default_factory=list)  # (line, new contact)
    updates: list[tuple[int, dict]] = field(default_factory=list)  # (contact id, changes)
    new_links: list[tuple[int, int]] = field(default_factory=list)  # (contact id, or -n for the n-th new; tag id)
    drop_links: list[int] = field(default_factory=list)


class _ContactImporter(_Importer):
    columns = CONTACT_COLUMNS
    required = [("external_id", "phone")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        cells = _ContactCells(actor=self.actor, restricted=self.restricted, now=self.now, tz=self.tz)
        self.handlers = cells.parsers(self.index)
        self.tags_by_id = {info[0]: info for info in cells.tags.values()}
        # Over the whole file: contact id → the line that claimed it, and keys an earlier line moved away
        # from a contact. A later row naming either is a duplicate, wherever the batch boundaries fall.
        self.claimed: dict[int, int] = {}
        self.released: dict[tuple[str, str], int] = {}
        self.contacts = _Inserter(Contact, use_copy=self.use_copy)
        self.links = _Inserter(ContactTag, use_copy=self.use_copy)
        self.consent_events = _Inserter(AuditEvent, use_copy=self.use_copy)

    def parse(self, line, cells):
        values: dict[str, Any] = {}
        problems = []
        count = len(cells)
        for index, name, handler in self.handlers:
            if index < count and (raw := cells[index]) and (raw := raw.strip()):
                try:
                    handler(raw, values)
                except _CellError as exc:
                    problems.append((name, exc.message))
        if "external_id" not in values and "phone" not in values:
            if not any(name in ("external_id", "phone") for name, _message in problems):
                problems.append(("external_id", _("Give an external_id or a phone number.")))
        return values, problems

    def write(self, rows):
        batch = self._lookup(rows)
        for line, v in rows:
            problems = self._moved_away(batch, v) if batch.released or self.released else None
            target = None
            if not problems:
                target, problems = self._resolve(batch, v)
            if problems:
                batch.result.errors.extend((line, name, message) for name, message in problems)
            elif target is None:
                self._plan_create(batch, line, v)
            else:
                self._plan_update(batch, line, v, target)
        ids = self._store(batch)
        batch.result.commit = lambda: self._remember(batch, ids)
        return batch.result

    def _moved_away(self, batch: _ContactBatch, v: dict) -> list[tuple[str, str]]:
        """A key an earlier line of the file moved away from a contact: that row must come separately."""
        problems = []
        for name in _KEY_FIELDS:
            if name in v and (mover := batch.released.get((name, v[name])) or self.released.get((name, v[name]))):
                message = _(
                    "Line %(line)s of this file moved this value away from another contact; import this row separately."
                )
                problems.append((name, message % {"line": mover}))
        return problems

    def _lookup(self, rows: list[tuple[int, dict]]) -> _ContactBatch:
        """The stored contacts the rows name, indexed by each key, and their tags when rows add tags."""
        found = self._fetch({name: [v[name] for _line, v in rows if name in v] for name in _KEY_FIELDS})
        by_key: dict[str, dict[str, dict]] = {name: {} for name in _KEY_FIELDS}
        for record in found:
            for name in _KEY_FIELDS:
                if record[name] is not None:
                    by_key[name][record[name]] = record
        tag_links: dict[int, dict[int, int]] = {}
        if found and any("_tags" in v for _line, v in rows):
            for link_id, contact_id, tag_id in self._fetch_links([record["id"] for record in found]):
                tag_links.setdefault(contact_id, {})[tag_id] = link_id
        return _ContactBatch(by_key=by_key, tag_links=tag_links)

    def _claimed_by(self, batch: _ContactBatch, record: dict) -> int | None:
        return batch.claimed.get(record["id"]) or self.claimed.get(record["id"])

    def _resolve(self, batch: _ContactBatch, v: dict) -> tuple[dict | None, list[tuple[str, str]]]:
        """The contact a row updates (``None``: it creates one), or the problems that reject it."""
        problems = []
        ext, phone = v.get("external_id"), v.get("phone")
        target = batch.by_key["external_id"].get(ext) if ext is not None else None
        via = "external_id"
        if phone is not None:
            holder = batch.by_key["phone"].get(phone)
            if holder is not None and holder is not target:
                if target is None and (ext is None or holder["external_id"] is None):
                    target, via = holder, "phone"
                else:
                    problems.append(("phone", self._taken(batch, holder, "phone")))
        for name in ("wecom_external_userid", "wechat_unionid"):
            if (value := v.get(name)) is not None:
                holder = batch.by_key[name].get(value)
                if holder is not None and holder is not target:
                    problems.append((name, self._taken(batch, holder, name)))
        if target is not None:
            line_before = self._claimed_by(batch, target)
            if line_before:
                problems = [(via, _("Duplicate of line %(line)s.") % {"line": line_before})]
            elif self.restricted and target["owner_id"] != self.actor.pk:
                problems = [(via, _("This contact is in another staff member's book; ask a manager to import it."))]
        return target, problems

    def _taken(self, batch: _ContactBatch, holder: dict, name: str) -> str:
        line = self._claimed_by(batch, holder)
        return _("Duplicate of line %(line)s.") % {"line": line} if line else str(_BELONGS_TO_ANOTHER[name])

    def _plan_create(self, batch: _ContactBatch, line: int, v: dict) -> None:
        record = self._new_contact(v)
        pending = {"id": -(len(batch.creates) + 1), **{name: record.get(name) for name in _KEY_FIELDS}}
        for name in _KEY_FIELDS:
            if pending[name] is not None:
                batch.by_key[name][pending[name]] = pending
        batch.claimed[pending["id"]] = line
        batch.creates.append((line, record))
        batch.new_links.extend((pending["id"], tag_id) for tag_id in v.get("_tags", ()))
        batch.result.created += 1

    def _plan_update(self, batch: _ContactBatch, line: int, v: dict, target: dict) -> None:
        batch.claimed[target["id"]] = line
        changes = self._changes(target, v)
        have = batch.tag_links.get(target["id"], {})
        adding = [tag_id for tag_id in v.get("_tags", ()) if tag_id not in have]
        for tag_id in adding:
            _pk, group_id, exclusive = self.tags_by_id[tag_id]
            if exclusive:
                batch.drop_links.extend(
                    link for other, link in have.items() if other != tag_id and self.tags_by_id[other][1] == group_id
                )
            batch.new_links.append((target["id"], tag_id))
        if not changes and not adding:
            batch.result.unchanged += 1
            return
        for name in _KEY_FIELDS:
            if name in changes:
                # A later row naming the old value must not find this contact; one naming the new value must.
                if target[name] is not None:
                    batch.released[(name, target[name])] = line
                batch.by_key[name][changes[name]] = target
        batch.updates.append((target["id"], changes))
        batch.result.updated += 1

    def _new_contact(self, v: dict) -> dict:
        record = v.copy()
        for name in ("_tags", "_consent", "_consent_source"):
            record.pop(name, None)
        record.setdefault("acquired_at", self.now)
        if self.restricted:
            record["owner_id"] = self.actor.pk
        if v.get("_consent"):
            record["marketing_consent"] = True
            record["consent_at"] = self.now
            record["consent_source"] = v.get("_consent_source") or "import"
        return record

    def _changes(self, current: dict, v: dict) -> dict:
        changes = {}
        for name, value in v.items():
            if name[0] != "_" and name != "external_id" and current[name] != value:
                changes[name] = value
        if "external_id" in v and current["external_id"] is None:
            changes["external_id"] = v["external_id"]
        consent = v.get("_consent")
        if consent and not current["marketing_consent"] and current["opted_out_at"] is None:
            # Consent is recorded once, with its time and source. An opted-out contact is never
            # re-subscribed by an import: that takes the contact's own new consent.
            changes.update(
                marketing_consent=True, consent_at=self.now, consent_source=v.get("_consent_source") or "import"
            )
        elif consent is False and current["marketing_consent"]:
            changes["marketing_consent"] = False
        return changes

    def _remember(self, batch: _ContactBatch, ids: list[int]) -> None:
        """Once the batch is committed: its claims and released keys hold for the rest of the file."""
        for (line, _record), pk in zip(batch.creates, ids, strict=True):
            self.claimed[pk] = line
        self.claimed.update((pk, line) for pk, line in batch.claimed.items() if pk > 0)
        self.released.update(batch.released)

    # Reading and writing the database ------------------------------------------------------------

    def _fetch(self, keys: dict[str, list[str]]) -> list[dict]:
        """The stored contacts any of the keys name, as dicts of ``_CONTACT_FETCH``: one query."""
        if not any(keys.values()):
            return []
        if not self.use_copy:
            lookup = Q()
            for name, values in keys.items():
                if values:
                    lookup |= Q(**{f"{name}__in": values})
            return list(Contact.objects.filter(lookup).values(*_CONTACT_FETCH))
        # PostgreSQL: one array parameter per key instead of thousands of IN placeholders (far less to build).
        qn = connection.ops.quote_name
        columns = [Contact._meta.get_field(name).column for name in _CONTACT_FETCH]
        where = " OR ".join(f"{qn(Contact._meta.get_field(name).column)} = ANY(%s::text[])" for name in _KEY_FIELDS)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join(qn(c) for c in columns)} FROM {qn(Contact._meta.db_table)} WHERE {where}",
                [_text_array(keys[name]) for name in _KEY_FIELDS],
            )
            return [dict(zip(_CONTACT_FETCH, row, strict=True)) for row in cursor.fetchall()]

    def _fetch_links(self, contact_ids: list[int]) -> list[tuple[int, int, int]]:
        """(link id, contact id, tag id) of the contacts' tags."""
        if not self.use_copy:
            return list(ContactTag.objects.filter(contact_id__in=contact_ids).values_list("pk", "contact_id", "tag_id"))
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {qn('id')}, {qn('contact_id')}, {qn('tag_id')} FROM {qn(ContactTag._meta.db_table)} "
                f"WHERE {qn('contact_id')} = ANY(%s)",
                [contact_ids],
            )
            return cursor.fetchall()

    def _store(self, batch: _ContactBatch) -> list[int]:
        """Write the batch; returns the ids of the new contacts, in order."""
        self._update(batch.updates, timezone.now())
        ids = self.contacts.insert([record for _line, record in batch.creates])
        if batch.drop_links:
            ContactTag.objects.filter(pk__in=batch.drop_links).delete()
        actor_id = self.actor.pk if self.actor is not None else None
        self.links.insert(
            [
                {
                    "contact_id": ids[-pk - 1] if pk < 0 else pk,
                    "tag_id": tag_id,
                    "tagged_by_id": actor_id,
                    "source": ContactTag.Source.IMPORT,
                }
                for pk, tag_id in batch.new_links
            ],
            want_ids=False,
        )
        self._consent_history(batch, ids)
        return ids

    def _consent_history(self, batch: _ContactBatch, ids: list[int]) -> None:
        """The consent each row recorded or withdrew, in the audit trail, set-based like the rest."""
        changes = [
            (ids[n], "given") for n, (_line, record) in enumerate(batch.creates) if record.get("marketing_consent")
        ]
        changes += [
            (pk, "given" if values["marketing_consent"] else "withdrawn")
            for pk, values in batch.updates
            if "marketing_consent" in values
        ]
        if not changes:
            return
        actor = self.actor
        name = actor.get_username() if actor is not None else ""
        now = timezone.now()
        self.consent_events.insert(
            [
                {
                    "at": now,
                    "actor_id": actor.pk if actor is not None else None,
                    "actor_name": name,
                    "action": AuditEvent.Action.CONSENT_CHANGED,
                    "target_type": "contacts.contact",
                    "target_id": str(pk),
                    "detail": {"consent": change, "source": "import"},
                    "via": "import",
                }
                for pk, change in changes
            ],
            want_ids=False,
        )

    def _update(self, updates: list[tuple[int, dict]], now: dt.datetime) -> None:
        if not updates:
            return
        if not self.use_copy:
            groups: dict[tuple[str, ...], list[Contact]] = {}
            for pk, changes in updates:
                groups.setdefault(tuple(sorted(changes)), []).append(Contact(pk=pk, updated_at=now, **changes))
            for names, objs in groups.items():
                Contact.objects.bulk_update(objs, [*names, "updated_at"])
            return
        _update_with_copy(updates, now)


def _update_with_copy(updates: list[tuple[int, dict]], now: dt.datetime) -> None:
    """One UPDATE for the batch (PostgreSQL): each row carries a bit mask of the columns it changes, so a
    column the row does not change keeps whatever is stored (even if it changed since we read it)."""
    qn = connection.ops.quote_name
    fields = [Contact._meta.get_field(name) for name in _CONTACT_UPDATABLE]
    columns = [f.column for f in fields]
    staging = f"import_contact_changes_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE {qn(staging)} ON COMMIT DROP AS SELECT id, 0 AS mask, "
            f"{', '.join(qn(c) for c in columns)}, {qn('updated_at')} FROM {qn(Contact._meta.db_table)} WITH NO DATA"
        )
    rows = []
    for pk, changes in updates:
        mask = 0
        values = []
        for bit, f in enumerate(fields):
            if f.attname in changes:
                mask |= 1 << bit
                values.append(changes[f.attname])
            else:
                values.append(None)
        rows.append((pk, mask, *values, now))
    _copy(
        staging,
        ["id", "mask", *columns, "updated_at"],
        rows,
        not_null=[f.column for f in fields if not f.null and isinstance(f, models.CharField)],
    )
    assignments = ", ".join(
        f"{qn(c)} = CASE WHEN s.mask & {1 << bit} <> 0 THEN s.{qn(c)} ELSE c.{qn(c)} END"
        for bit, c in enumerate(columns)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(Contact._meta.db_table)} AS c SET {assignments}, {qn('updated_at')} = s.{qn('updated_at')} "
            f"FROM {qn(staging)} AS s WHERE c.id = s.id"
        )
        cursor.execute(f"DROP TABLE {qn(staging)}")
