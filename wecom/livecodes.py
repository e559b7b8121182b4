"""Channel live codes (渠道活码): create, change and archive them in WeCom (``add_contact_way`` and
friends) and here, keep each code's user list within its members' daily caps, and read its figures.

A code's writes and WeCom's answer go together: when WeCom refuses, the error names the field and
nothing is written here (a code created in WeCom whose local save then fails is deleted there again).
"""

from __future__ import annotations

import datetime as dt
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import segno
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import MessageTemplate
from contacts.models import Channel, ChannelSpend, Tag

from .client import WeComClient, WeComError
from .models import FollowRelationship, LiveCode, LiveCodeStaff, StaffAccount

STATE_PREFIX = "lc"
MAX_ATTACHMENTS = 9  # WeCom takes at most 9 attachments with a welcome
MAX_DAILY_CAP = 100_000
ATTACHMENT_TYPES = ("image", "link", "miniprogram")


@dataclass(frozen=True)
class PoolMember:
    staff: StaffAccount
    daily_cap: int | None = None


def _state_new() -> str:
    return f"{STATE_PREFIX}{secrets.token_urlsafe(12)}"[:30]


def _validate(
    *,
    name: str,
    pool: Sequence[PoolMember],
    welcome_template: MessageTemplate | None,
    welcome_attachments: list,
) -> None:
    errors: dict[str, list[str]] = {}
    if not (name or "").strip():
        errors["name"] = [_("Give the code a name.")]
    elif len(name) > 100:
        errors["name"] = [_("At most %(max)d characters.") % {"max": 100}]
    if not pool:
        errors["pool"] = [_("Choose at least one staff member.")]
    elif len({m.staff.pk for m in pool}) != len(pool):
        errors["pool"] = [_("A staff member is in the pool twice.")]
    elif any(m.daily_cap is not None and not 1 <= m.daily_cap <= MAX_DAILY_CAP for m in pool):
        errors["pool"] = [_("A daily cap is between 1 and %(max)d, or empty for no cap.") % {"max": MAX_DAILY_CAP}]
    if welcome_template is not None and not welcome_template.is_active:
        errors["welcome_template"] = [_("This template is archived.")]
    if not isinstance(welcome_attachments, list) or len(welcome_attachments) > MAX_ATTACHMENTS:
        errors["welcome_attachments"] = [_("At most %(max)d attachments.") % {"max": MAX_ATTACHMENTS}]
    elif not all(_attachment_ok(a) for a in welcome_attachments):
        errors["welcome_attachments"] = [
            _(
                "Each attachment is an image (media_id or an http(s) pic_url), a link (title and an http(s) url) "
                "or a mini-program (title, appid, page, pic_media_id)."
            )
        ]
    if errors:
        raise ValidationError(errors)


def _text(value, max_length: int = 500) -> bool:
    return isinstance(value, str) and 0 < len(value) <= max_length


def _web_url(value) -> bool:
    """An http(s) URL: attachments are shown as links on our pages, so never ``javascript:`` or the like."""
    if not _text(value, 2000):
        return False
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        return False
    return True


def _attachment_ok(attachment) -> bool:
    """The shape WeCom's send_welcome_msg takes for each kind, with only web links."""
    if not isinstance(attachment, dict):
        return False
    kind = attachment.get("msgtype")
    body = attachment.get(kind)
    if kind not in ATTACHMENT_TYPES or not isinstance(body, dict):
        return False
    if kind == "link":
        return (
            _text(body.get("title"), 128)
            and _web_url(body.get("url"))
            and (body.get("picurl") in (None, "") or _web_url(body.get("picurl")))
            and (body.get("desc") in (None, "") or _text(body.get("desc"), 512))
        )
    if kind == "image":
        return _text(body.get("media_id"), 256) or _web_url(body.get("pic_url"))
    return all(_text(body.get(key), 256) for key in ("title", "appid", "page", "pic_media_id"))


def _wecom_error(exc: WeComError) -> Exception:
    """WeCom refusing the code is the user's to fix (a ValidationError naming WeCom's reason); WeCom busy or
    unreachable is not (the WeComError itself: the API answers 502, the pages say WeCom could not be
    reached)."""
    if exc.transient:
        return exc
    return ValidationError({"__all__": [_("WeCom refused the code: %(error)s") % {"error": exc}]})


# --- Who the code sends scanners to ------------------------------------------------------------------


def _day_start(now: dt.datetime) -> dt.datetime:
    local = timezone.localtime(now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def live_code_users(*, live_code: LiveCode, now: dt.datetime | None = None) -> list[str]:
    """The userids the code should offer now: the pool members under their daily cap (for "fewest today",
    only those with the fewest adds today), or the backup member when everyone is full."""
    now = now or timezone.now()
    pool = list(live_code.pool.select_related("staff").order_by("position", "id"))
    adds = dict(
        FollowRelationship.objects.filter(live_code=live_code, added_at__gte=_day_start(now))
        .values("staff_id")
        .annotate(n=Count("id"))
        .values_list("staff_id", "n")
    )
    open_members = [m for m in pool if m.daily_cap is None or adds.get(m.staff_id, 0) < m.daily_cap]
    if live_code.assignment == LiveCode.Assignment.FEWEST_TODAY and open_members:
        fewest = min(adds.get(m.staff_id, 0) for m in open_members)
        open_members = [m for m in open_members if adds.get(m.staff_id, 0) == fewest]
    users = [m.staff.userid for m in open_members]
    if not users and live_code.backup_staff_id:
        users = [live_code.backup_staff.userid]
    return users or [m.staff.userid for m in pool]  # no backup: WeCom needs someone; caps are advisory then


def live_code_users_refresh(*, live_code_id: int, client: WeComClient | None = None) -> bool:
    """Give WeCom the code's current user list when it changed (a member reached the cap, a new day
    began). Returns whether WeCom was told. Safe to run at any time and twice at once."""
    live_code = LiveCode.objects.select_related("backup_staff").filter(pk=live_code_id, is_active=True).first()
    if live_code is None or not live_code.config_id:
        return False
    users = live_code_users(live_code=live_code)
    if users == list(live_code.wecom_users):
        return False
    (client or WeComClient()).contact_way_update(live_code.config_id, user=users)
    LiveCode.objects.filter(pk=live_code.pk).update(wecom_users=users)
    return True


def _way_fields(live_code: LiveCode, users: list[str]) -> dict:
    return {
        "type": 2,  # several members (also when one): WeCom cannot change a way's type later, its pool can
        "scene": 2,  # a QR code
        "remark": live_code.name[:30],
        "skip_verify": live_code.skip_verify,
        "state": live_code.state,
        "user": users,
    }


# --- Writes --------------------------------------------------------------------------------------


def _pool_and_tags_set(live_code: LiveCode, pool: Sequence[PoolMember], tags: Sequence[Tag]) -> list[str]:
    """Replace the code's pool and tags; returns the userids it should offer now."""
    live_code.pool.all().delete()
    LiveCodeStaff.objects.bulk_create(
        LiveCodeStaff(live_code=live_code, staff=m.staff, daily_cap=m.daily_cap, position=i) for i, m in enumerate(pool)
    )
    live_code.tags.set(tags)
    return live_code_users(live_code=live_code)


def live_code_create(
    *,
    actor,
    name: str,
    channel: Channel,
    pool: Sequence[PoolMember],
    backup_staff: StaffAccount | None = None,
    assignment: str = LiveCode.Assignment.ROUND_ROBIN,
    skip_verify: bool = True,
    tags: Sequence[Tag] = (),
    welcome_template: MessageTemplate | None = None,
    welcome_attachments: list | None = None,
    client: WeComClient | None = None,
) -> LiveCode:
    welcome_attachments = welcome_attachments or []
    _validate(name=name, pool=pool, welcome_template=welcome_template, welcome_attachments=welcome_attachments)
    client = client or WeComClient()
    live_code = LiveCode(
        name=name.strip(),
        channel=channel,
        state=_state_new(),
        assignment=assignment,
        backup_staff=backup_staff,
        skip_verify=skip_verify,
        welcome_template=welcome_template,
        welcome_attachments=welcome_attachments,
        created_by=actor,
    )
    live_code.full_clean(exclude=["config_id", "qr_code"])
    created_in_wecom = ""
    try:
        with transaction.atomic():
            live_code.save()
            users = _pool_and_tags_set(live_code, pool, tags)
            try:
                created_in_wecom, qr_code = client.contact_way_add(**_way_fields(live_code, users))
            except WeComError as exc:
                raise _wecom_error(exc) from None
            LiveCode.objects.filter(pk=live_code.pk).update(
                config_id=created_in_wecom, qr_code=qr_code, wecom_users=users
            )
    except Exception:
        if created_in_wecom:  # WeCom made the way but our save failed: take it back there too
            client.contact_way_delete(created_in_wecom)
        raise
    live_code.refresh_from_db()
    return live_code


def live_code_update(
    *,
    live_code: LiveCode,
    name: str,
    channel: Channel,
    pool: Sequence[PoolMember],
    backup_staff: StaffAccount | None = None,
    assignment: str = LiveCode.Assignment.ROUND_ROBIN,
    skip_verify: bool = True,
    tags: Sequence[Tag] = (),
    welcome_template: MessageTemplate | None = None,
    welcome_attachments: list | None = None,
    client: WeComClient | None = None,
) -> LiveCode:
    """Change a code here and in WeCom (its state stays: printed posters keep working)."""
    welcome_attachments = welcome_attachments or []
    _validate(name=name, pool=pool, welcome_template=welcome_template, welcome_attachments=welcome_attachments)
    client = client or WeComClient()
    with transaction.atomic():
        live_code = LiveCode.objects.select_for_update().get(pk=live_code.pk)
        live_code.name = name.strip()
        live_code.channel = channel
        live_code.backup_staff = backup_staff
        live_code.assignment = assignment
        live_code.skip_verify = skip_verify
        live_code.welcome_template = welcome_template
        live_code.welcome_attachments = welcome_attachments
        live_code.full_clean(exclude=["config_id", "qr_code"])
        live_code.save()
        users = _pool_and_tags_set(live_code, pool, tags)
        if live_code.config_id:
            try:
                client.contact_way_update(
                    live_code.config_id, **{k: v for k, v in _way_fields(live_code, users).items() if k != "type"}
                )
            except WeComError as exc:
                raise _wecom_error(exc) from None
            LiveCode.objects.filter(pk=live_code.pk).update(wecom_users=users)
    live_code.refresh_from_db()
    return live_code


def live_code_archive(*, live_code: LiveCode, client: WeComClient | None = None) -> LiveCode:
    """Stop a code: its contact way is deleted in WeCom (scans stop working), its figures stay here."""
    if live_code.config_id:
        try:
            (client or WeComClient()).contact_way_delete(live_code.config_id)
        except WeComError as exc:
            if exc.kind != "invalid":  # already gone in WeCom: archive here all the same
                raise _wecom_error(exc) from None
    LiveCode.objects.filter(pk=live_code.pk).update(is_active=False, config_id="", updated_at=timezone.now())
    live_code.refresh_from_db()
    return live_code


# --- Reading -------------------------------------------------------------------------------------


def live_code_qr_png(*, live_code: LiveCode, scale: int = 8) -> bytes:
    """A QR image of the code for posters, drawn here. It encodes WeCom's own QR link when there is one
    (what a customer must scan), else the code's state (a simulation without WeCom)."""
    out = io.BytesIO()
    segno.make(live_code.qr_code or live_code.state, error="m").save(out, kind="png", scale=scale, border=2)
    return out.getvalue()


@dataclass(frozen=True)
class LiveCodeFigures:
    adds: int
    active: int
    deleted_within_7_days: int
    buyers: int
    spend: Decimal | None
    cost_per_add: Decimal | None


def live_code_figures(*, live_codes, user) -> dict[int, LiveCodeFigures]:
    """Per code: adds, follows still active, deletions within 7 days of the add, contacts who bought, and
    the cost per add (the channel's recorded spend over all adds through that channel's codes; None
    when the channel has no spend recorded, never 0). One query per figure
    family, whatever the number of codes; the contacts counted are those ``user`` may see."""
    ids = [c.pk for c in live_codes]
    follows = FollowRelationship.objects.visible_to(user).filter(live_code_id__in=ids)
    week = dt.timedelta(days=7)
    rows = follows.values("live_code_id").annotate(
        adds=Count("id"),
        active=Count("id", filter=Q(deleted_at__isnull=True)),
        lost=Count("id", filter=Q(deleted_at__isnull=False, deleted_at__lt=F("added_at") + week)),
        buyers=Count("contact_id", filter=Q(contact__purchase_count__gt=0), distinct=True),
    )
    counted = {r["live_code_id"]: r for r in rows}
    spend_by_code = _cost_per_add(live_codes)
    out = {}
    for code in live_codes:
        r = counted.get(code.pk, {})
        spend, cost = spend_by_code.get(code.pk, (None, None))
        out[code.pk] = LiveCodeFigures(
            adds=r.get("adds", 0),
            active=r.get("active", 0),
            deleted_within_7_days=r.get("lost", 0),
            buyers=r.get("buyers", 0),
            spend=spend,
            cost_per_add=cost,
        )
    return out


def _cost_per_add(live_codes) -> dict[int, tuple[Decimal | None, Decimal | None]]:
    channel_ids = {c.channel_id for c in live_codes}
    spend = dict(
        ChannelSpend.objects.filter(channel_id__in=channel_ids)
        .values("channel_id")
        .annotate(total=Sum("amount"))
        .values_list("channel_id", "total")
    )
    adds = dict(
        FollowRelationship.objects.filter(live_code__channel_id__in=channel_ids)
        .values("live_code__channel_id")
        .annotate(n=Count("id"))
        .values_list("live_code__channel_id", "n")
    )
    out = {}
    for code in live_codes:
        total = spend.get(code.channel_id)
        n = adds.get(code.channel_id, 0)
        out[code.pk] = (total, (total / n).quantize(Decimal("0.01")) if total is not None and n else None)
    return out
