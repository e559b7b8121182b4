"""Processing the callback inbox: one handler per WeCom event, each safe to run again.

A handler's writes and the row's ``done`` mark commit together, so a worker killed mid-event leaves the
row to be swept and processed again from scratch, and a processed row is never processed twice. The
only call out that must not repeat, the welcome message (欢迎语), is claimed in the Delivery ledger
(unique per WelcomeCode) inside that transaction and sent after commit.

Order: WeCom may deliver an add and a delete of the same follow out of order. Each relationship keeps
the WeCom time of the last event applied (``event_at``); an older event changes nothing, and an add
that finds a later delete of the same pair already in the inbox starts the relationship as ended.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import services as campaign_services
from campaigns.content import template_preview
from campaigns.models import Delivery, Medium
from contacts import services as contact_services
from contacts.models import Contact, ContactTag, Touchpoint
from contacts.phones import normalize_phone

from .client import WeComClient, WeComError
from .inbox import MAX_ATTEMPTS, callback_event_claim, callback_event_still_ours
from .livecodes import live_code_users_refresh
from .models import CallbackEvent, FollowRelationship, LiveCode, StaffAccount

logger = logging.getLogger(__name__)

GENDERS = {1: Contact.Gender.MALE, 2: Contact.Gender.FEMALE}
ADD_EVENTS = ("add_external_contact", "add_half_external_contact")
WELCOME_WINDOW = dt.timedelta(seconds=20)  # WeCom takes a welcome only this long after the add
DELETE_EVENTS = {
    "del_external_contact": FollowRelationship.EndedBy.STAFF,
    "del_follow_user": FollowRelationship.EndedBy.CUSTOMER,
}


_clients = threading.local()


def worker_client() -> WeComClient:
    """One client per worker thread, kept between tasks: its HTTP connections to WeCom and its token are
    reused instead of being set up again for every event."""
    key = (settings.WECOM_API_BASE, settings.WECOM_CORP_ID, settings.WECOM_CORP_SECRET)
    if getattr(_clients, "key", None) != key:
        _clients.client, _clients.key = WeComClient(), key
    return _clients.client


class _Superseded(Exception):
    """The sweeper gave the row to another worker while this one was slow: leave it to that one."""


@dataclass
class Outcome:
    note: str = ""
    after_commit: Callable[[], None] | None = None


# --- Processing one inbox row ------------------------------------------------------------------


def callback_process(*, event_id: int, client: WeComClient | None = None) -> str:
    """Process one inbox row; returns its new status (or "skipped" when another worker has it).

    WeCom being busy (or the network failing) puts the row back to pending for a retry; an id WeCom no
    longer knows ends it as ``ignored`` with the reason; any other error fails it with the message."""
    event = callback_event_claim(event_id=event_id)
    if event is None:
        return "skipped"
    handler = _handler(event)
    if handler is None:
        _finish(event, CallbackEvent.Status.IGNORED, f"not an event we act on: {event.event}/{event.change_type}")
        return CallbackEvent.Status.IGNORED
    client = client or worker_client()
    try:
        with transaction.atomic():
            if not callback_event_still_ours(event):
                raise _Superseded
            outcome = handler(event, client)
            _finish(event, CallbackEvent.Status.DONE, outcome.note)
    except _Superseded:
        return "skipped"
    except WeComError as exc:
        if exc.kind == "invalid":
            _finish(event, CallbackEvent.Status.IGNORED, f"WeCom: {exc}")
            return CallbackEvent.Status.IGNORED
        retry = exc.kind in ("busy", "token") and event.attempts < MAX_ATTEMPTS
        status = CallbackEvent.Status.PENDING if retry else CallbackEvent.Status.FAILED
        _finish(event, status, f"WeCom: {exc}")
        return status
    except Exception as exc:  # recorded on the row for support; the row is not retried by itself
        logger.exception("WeCom callback %s failed", event_id)
        _finish(event, CallbackEvent.Status.FAILED, f"{type(exc).__name__}: {exc}")
        return CallbackEvent.Status.FAILED
    if outcome.after_commit:
        outcome.after_commit()
    return CallbackEvent.Status.DONE


def _finish(event: CallbackEvent, status: str, note: str) -> None:
    done = status in (CallbackEvent.Status.DONE, CallbackEvent.Status.IGNORED, CallbackEvent.Status.FAILED)
    CallbackEvent.objects.filter(pk=event.pk).update(
        status=status, error=note[:2000], processed_at=timezone.now() if done else None
    )


def _handler(event: CallbackEvent) -> Callable[[CallbackEvent, WeComClient], Outcome] | None:
    if event.event == "change_external_contact":
        if event.change_type in ADD_EVENTS:
            return contact_added
        if event.change_type in DELETE_EVENTS:
            return follow_ended
        if event.change_type == "edit_external_contact":
            return contact_edited
        if event.change_type == "transfer_fail":
            return transfer_failed
    if event.event == "change_external_tag":
        return corp_tags_changed
    return None


# --- Shared pieces ---------------------------------------------------------------------------------


def _event_time(event: CallbackEvent) -> dt.datetime:
    return event.event_at or event.received_at


def staff_for(userid: str) -> StaffAccount:
    """The account of a WeCom userid; an unknown member gets one (without a Django user) so nothing is
    lost, and shows on the connection page as unmapped."""
    staff = StaffAccount.objects.select_related("user").filter(userid=userid[:64]).first()
    if staff is None:
        staff, _created = StaffAccount.objects.get_or_create(userid=userid[:64])
    return staff


def _contact_match(external_userid: str, unionid: str, phones: list[str]) -> Contact | None:
    live = Contact.objects.live()
    contact = live.filter(wecom_external_userid=external_userid).first()
    if contact is None and unionid:
        contact = live.filter(wechat_unionid=unionid).first()
    if contact is None and phones:
        contact = live.filter(phone__in=phones).order_by("pk").first()
    return contact


def _phones(follow: dict) -> list[str]:
    out = []
    for raw in follow.get("remark_mobiles") or []:
        try:
            out.append(normalize_phone(str(raw)))
        except ValidationError:  # a remark that is not a phone number is just not matched on
            continue
    return out


def contact_from_profile(
    *, profile: dict, follow: dict, staff: StaffAccount, live_code: LiveCode | None, added_at: dt.datetime
) -> tuple[Contact, bool]:
    """The contact of a WeCom customer: the one with its external_userid, else its unionid, else a
    phone in the staff member's remark; created when none. A found contact gains the ids it lacks, and
    an owner and channel when it has none."""
    external = profile.get("external_contact") or {}
    external_userid = external.get("external_userid", "")
    unionid = external.get("unionid") or ""
    phones = _phones(follow)
    contact = _contact_match(external_userid, unionid, phones)
    if contact is None:
        values = {
            "name": (external.get("name") or external_userid)[:100],
            "wecom_external_userid": external_userid,
            "gender": GENDERS.get(external.get("gender"), Contact.Gender.UNKNOWN),
            "acquired_at": added_at,
            "owner": staff.user,
            "channel": live_code.channel if live_code else None,
        }
        if unionid and not Contact.objects.filter(wechat_unionid=unionid).exists():
            values["wechat_unionid"] = unionid
        if phones and not Contact.objects.filter(phone=phones[0]).exists():
            values["phone"] = phones[0]
        try:
            with transaction.atomic():
                return contact_services.contact_create(**values), True
        except IntegrityError:
            # Another worker created it a moment ago (a customer added by two staff at once).
            contact = _contact_match(external_userid, unionid, phones)
            if contact is None:
                raise
    changes = {}
    if not contact.wecom_external_userid:
        changes["wecom_external_userid"] = external_userid
    if unionid and not contact.wechat_unionid and not Contact.objects.filter(wechat_unionid=unionid).exists():
        changes["wechat_unionid"] = unionid
    if contact.owner_id is None and staff.user_id:
        changes["owner"] = staff.user
    if contact.channel_id is None and live_code is not None:
        changes["channel"] = live_code.channel
    if changes:
        contact = contact_services.contact_update(contact=contact, **changes)
    return contact, False


def _follow_fields(follow: dict) -> dict:
    return {
        "remark": (follow.get("remark") or "")[:100],
        "description": (follow.get("description") or "")[:300],
        "add_way": follow.get("add_way"),
    }


def _later_delete(event: CallbackEvent, userid: str, external_userid: str) -> CallbackEvent | None:
    """A delete of the same follow that WeCom sent after this add but that arrived first."""
    return (
        CallbackEvent.objects.filter(
            external_userid=external_userid,
            userid=userid,
            change_type__in=list(DELETE_EVENTS),
            event="change_external_contact",
            event_at__gt=_event_time(event),
        )
        .order_by("-event_at")
        .first()
    )


# --- Handlers ---------------------------------------------------------------------------------------


def contact_added(event: CallbackEvent, client: WeComClient) -> Outcome:
    """A customer added a staff member (or was added): contact, follow, channel, owner, tags, timeline,
    and the live code's welcome message."""
    payload = event.payload
    userid, external_userid = payload.get("UserID", ""), payload.get("ExternalUserID", "")
    if not (userid and external_userid):
        return Outcome(note="no UserID or ExternalUserID")
    state, welcome_code = payload.get("State", ""), payload.get("WelcomeCode", "")
    profile = client.external_contact_get(external_userid)
    at = _event_time(event)
    staff = staff_for(userid)
    live_code = (
        LiveCode.objects.filter(state=state).select_related("channel", "welcome_template").first() if state else None
    )
    follow = next((f for f in profile.get("follow_user") or [] if f.get("userid") == userid), {})
    added_at = at
    if str(follow.get("createtime", "")).isdigit():
        added_at = dt.datetime.fromtimestamp(int(follow["createtime"]), tz=dt.UTC)
    contact, created = contact_from_profile(
        profile=profile, follow=follow, staff=staff, live_code=live_code, added_at=added_at
    )
    relationship = (
        FollowRelationship.objects.select_for_update().filter(staff=staff, external_userid=external_userid).first()
    )
    if relationship is not None and relationship.event_at and relationship.event_at > at:
        return Outcome(note="a later event of this follow was already applied")
    ended = _later_delete(event, userid, external_userid)
    values = {
        **_follow_fields(follow),
        "contact": contact,
        "state": state[:30],
        "live_code": live_code,
        "added_at": added_at,
        "deleted_at": _event_time(ended) if ended else None,
        "ended_by": DELETE_EVENTS[ended.change_type] if ended else "",
        "event_at": _event_time(ended) if ended else at,
    }
    was_active = relationship is not None and relationship.deleted_at is None
    FollowRelationship.objects.update_or_create(staff=staff, external_userid=external_userid, defaults=values)
    if not was_active:
        contact_services.touchpoint_record(
            contact=contact,
            medium=Touchpoint.Medium.WECOM,
            kind=Touchpoint.Kind.ADD_FRIEND,
            occurred_at=added_at,
            staff=staff.user,
            metadata={"wecom_userid": userid, "state": state, "live_code": live_code.pk if live_code else None},
        )
    if live_code is not None:
        tags = list(live_code.tags.all())
        if tags:
            contact_services.contacts_tag(contact_ids=[contact.pk], tags=tags, source=ContactTag.Source.WECOM)
    send = None
    if welcome_code and live_code is not None and live_code.welcome_template_id and not ended:
        send = welcome_claim(
            welcome_code=welcome_code,
            contact=contact,
            live_code=live_code,
            client=client,
            received_at=event.received_at,
        )

    def after_commit() -> None:
        if send is not None:  # first: WeCom takes a welcome only within 20 s of the add
            send()
        if live_code is not None:  # a member may have reached their daily cap
            try:
                live_code_users_refresh(live_code_id=live_code.pk, client=client)
            except WeComError:
                logger.warning("could not refresh the users of live code %s", live_code.pk, exc_info=True)

    return Outcome(note="contact created" if created else "contact matched", after_commit=after_commit)


def follow_ended(event: CallbackEvent, client: WeComClient) -> Outcome:
    """Either side deleted the other: the relationship ends, the timeline says so, the owner is told."""
    payload = event.payload
    userid, external_userid = payload.get("UserID", ""), payload.get("ExternalUserID", "")
    at = _event_time(event)
    ended_by = DELETE_EVENTS[event.change_type]
    relationship = (
        FollowRelationship.objects.select_for_update()
        .select_related("contact", "staff")
        .filter(staff__userid=userid, external_userid=external_userid)
        .first()
    )
    if relationship is None:
        # The add has not been processed yet (or happened before we were connected): the add will see
        # this delete in the inbox and start the relationship as ended.
        return Outcome(note="no follow relationship yet")
    if relationship.event_at and relationship.event_at >= at:
        return Outcome(note="a later event of this follow was already applied")
    FollowRelationship.objects.filter(pk=relationship.pk).update(
        deleted_at=at, ended_by=ended_by, event_at=at, updated_at=timezone.now()
    )
    contact = relationship.contact
    kind = Touchpoint.Kind.DELETE_FRIEND if ended_by == FollowRelationship.EndedBy.CUSTOMER else Touchpoint.Kind.REMOVED
    contact_services.touchpoint_record(
        contact=contact,
        medium=Touchpoint.Medium.WECOM,
        kind=kind,
        occurred_at=at,
        staff=relationship.staff.user,
        metadata={"wecom_userid": userid, "source": payload.get("Source", "")},
    )
    if ended_by == FollowRelationship.EndedBy.CUSTOMER:
        _alert_owner(contact, title=_("%(name)s deleted you in WeCom (流失)") % {"name": contact.name})
    return Outcome(note=f"ended by {ended_by}")


def contact_edited(event: CallbackEvent, client: WeComClient) -> Outcome:
    """The staff member changed their remark or description of the customer."""
    payload = event.payload
    userid, external_userid = payload.get("UserID", ""), payload.get("ExternalUserID", "")
    profile = client.external_contact_get(external_userid)
    follow = next((f for f in profile.get("follow_user") or [] if f.get("userid") == userid), None)
    if follow is None:
        return Outcome(note="the staff member no longer follows this customer")
    updated = FollowRelationship.objects.filter(staff__userid=userid, external_userid=external_userid).update(
        **_follow_fields(follow), updated_at=timezone.now()
    )
    return Outcome(note="remark updated" if updated else "no follow relationship yet")


def transfer_failed(event: CallbackEvent, client: WeComClient) -> Outcome:
    """A transfer (在职/离职继承) to ``UserID`` failed: the contact's owner is told why."""
    payload = event.payload
    contact = Contact.objects.live().filter(wecom_external_userid=payload.get("ExternalUserID", "")).first()
    if contact is None:
        return Outcome(note="unknown customer")
    reason = payload.get("FailReason", "")
    _alert_owner(
        contact, title=_("WeCom could not transfer %(name)s (%(reason)s)") % {"name": contact.name, "reason": reason}
    )
    return Outcome(note=f"transfer failed: {reason}")


def corp_tags_changed(event: CallbackEvent, client: WeComClient) -> Outcome:
    """A corp tag or group was created, renamed, deleted or reordered in WeCom: mirror WeCom's list."""
    from .sync_tags import corp_tags_pull

    corp_tags_pull(client=client)
    return Outcome(note=f"corp tags pulled ({event.change_type})")


def _alert_owner(contact: Contact, *, title: str) -> None:
    if contact.owner_id is None or not contact.owner.is_active:
        return
    campaign_services.follow_up_task_create(
        assignee=contact.owner, contact=contact, title=title[:200], due_at=timezone.now()
    )


# --- Welcome messages (欢迎语) ---------------------------------------------------------------------


def welcome_claim(
    *,
    welcome_code: str,
    contact: Contact,
    live_code: LiveCode,
    client: WeComClient,
    received_at: dt.datetime | None = None,
) -> Callable[[], None] | None:
    """Claim the welcome of one add in the Delivery ledger (one row per WelcomeCode, ever) and return
    the send to run after commit; None when it was claimed before or may not go out. A welcome answers
    the customer's own add, so it is a service message: no marketing consent needed, but never to a
    contact who opted out."""
    reason = Delivery.Reason.OPTED_OUT if contact.opted_out_at else ""
    delivery, created = Delivery.objects.get_or_create(
        welcome_code=welcome_code[:128],
        defaults={
            "contact": contact,
            "medium": Medium.WECOM,
            "template": live_code.welcome_template,
            "is_marketing": False,
            "status": Delivery.Status.SUPPRESSED if reason else Delivery.Status.SENDING,
            "reason": reason,
            "attempts": 0 if reason else 1,
            "claimed_at": timezone.now(),
            "gateway": "wecom",
        },
    )
    if not created or reason:
        return None
    text = template_preview(live_code.welcome_template, contact)
    if received_at is not None and timezone.now() - received_at > WELCOME_WINDOW:
        # WeCom refuses a welcome later than 20 s after the add: record why instead of calling in vain.
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.FAILED,
            error="WeCom's 20-second welcome window had passed when the add was processed",
        )
        return None
    attachments = list(live_code.welcome_attachments or [])
    return lambda: welcome_send(
        delivery_id=delivery.pk, welcome_code=welcome_code, text=text, attachments=attachments, client=client
    )


def welcome_send(*, delivery_id: int, welcome_code: str, text: str, attachments: list, client=None) -> str:
    """Send a claimed welcome and record WeCom's answer on its delivery."""
    client = client or WeComClient()
    try:
        client.welcome_send(welcome_code, text, attachments)
    except WeComError as exc:
        Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.SENDING).update(
            status=Delivery.Status.FAILED, error=str(exc)[:2000]
        )
        return Delivery.Status.FAILED
    Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.SENT, sent_at=timezone.now()
    )
    return Delivery.Status.SENT
