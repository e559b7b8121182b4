"""Processing the callback inbox: one handler per WeCom event, each safe to run again; adds go in
batches (``adds``).

A handler's writes and the row's ``done`` mark commit together, under a lock on the row that proves it
is still this worker's, so a worker killed mid-event leaves the row to be swept and processed again
from scratch, and a processed row is never processed twice. The only call out that must not repeat,
the welcome message (欢迎语), is claimed in the Delivery ledger (unique per WelcomeCode) inside that
transaction and sent after commit.

Order: WeCom may deliver an add and a delete of the same follow out of order. Each relationship keeps
the WeCom time of the last event applied (``event_at``); an older event changes nothing, and an add
that finds a later delete of the same pair already in the inbox starts the relationship as ended.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import services as campaign_services
from contacts import services as contact_services
from contacts.models import Contact, Touchpoint

from .adds import ADD_EVENTS, BATCH, DELETE_EVENTS, adds_claim_more, adds_process, event_time, finish, is_add
from .client import WeComClient, WeComError
from .inbox import MAX_ATTEMPTS, callback_event_claim, callback_event_still_ours
from .models import CallbackEvent, FollowRelationship

logger = logging.getLogger(__name__)

ADD_BATCH = BATCH


_clients = threading.local()


def worker_client() -> WeComClient:
    """One client per worker thread, kept between tasks: its HTTP connections to WeCom and its token are
    reused instead of being set up again for every event."""
    key = (settings.WECOM_API_BASE, settings.WECOM_CORP_ID, settings.WECOM_CORP_SECRET)
    if getattr(_clients, "key", None) != key:
        _clients.client, _clients.key = WeComClient(), key
    return _clients.client


class _Later(Exception):
    """The event cannot be applied yet (its add is still in another worker's hands): retry shortly."""


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
    client = client or worker_client()
    if is_add(event):  # adds go in batches: the adds waiting in the inbox come along
        batch = [event, *adds_claim_more(limit=ADD_BATCH - 1)]
        return adds_process(events=batch, client=client)[event.pk]
    handler = _handler(event)
    if handler is None:
        finish([event], CallbackEvent.Status.IGNORED, f"not an event we act on: {event.event}/{event.change_type}")
        return CallbackEvent.Status.IGNORED
    try:
        with transaction.atomic():
            if not callback_event_still_ours(event):
                raise _Superseded
            outcome = handler(event, client)
            finish([event], CallbackEvent.Status.DONE, outcome.note)
    except _Superseded:
        return "skipped"
    except _Later as exc:
        finish([event], CallbackEvent.Status.PENDING, str(exc))
        return CallbackEvent.Status.PENDING
    except WeComError as exc:
        if exc.kind == "invalid":
            finish([event], CallbackEvent.Status.IGNORED, f"WeCom: {exc}")
            return CallbackEvent.Status.IGNORED
        retry = exc.kind in ("busy", "token") and event.attempts < MAX_ATTEMPTS
        status = CallbackEvent.Status.PENDING if retry else CallbackEvent.Status.FAILED
        finish([event], status, f"WeCom: {exc}")
        return status
    except Exception as exc:  # recorded on the row for support; the row is not retried by itself
        logger.exception("WeCom callback %s failed", event_id)
        finish([event], CallbackEvent.Status.FAILED, f"{type(exc).__name__}: {exc}")
        return CallbackEvent.Status.FAILED
    if outcome.after_commit:
        outcome.after_commit()
    return CallbackEvent.Status.DONE


def _handler(event: CallbackEvent) -> Callable[[CallbackEvent, WeComClient], Outcome] | None:
    if event.event == "change_external_contact":
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


def _follow_fields(follow: dict) -> dict:
    return {
        "remark": (follow.get("remark") or "")[:100],
        "description": (follow.get("description") or "")[:300],
        "add_way": follow.get("add_way"),
    }


# --- Handlers ---------------------------------------------------------------------------------------


def follow_ended(event: CallbackEvent, client: WeComClient) -> Outcome:
    """Either side deleted the other: the relationship ends, the timeline says so, the owner is told."""
    userid, external_userid = event.userid, event.external_userid
    at = event_time(event)
    relationship = (
        FollowRelationship.objects.select_for_update(of=("self",))
        .select_related("contact", "staff__user")
        .filter(staff__userid=userid, external_userid=external_userid)
        .first()
    )
    if relationship is None:
        add_in_flight = CallbackEvent.objects.filter(
            external_userid=external_userid,
            userid=userid,
            change_type__in=ADD_EVENTS,
            status__in=(CallbackEvent.Status.PENDING, CallbackEvent.Status.PROCESSING),
        ).exists()
        if add_in_flight and event.attempts < MAX_ATTEMPTS:
            raise _Later("the add of this follow is still being applied")
        # The add happened before we were connected, or it will see this delete in the inbox and start
        # the relationship as ended (and write this delete's timeline entry then).
        return Outcome(note="no follow relationship yet")
    if relationship.event_at and relationship.event_at > at:  # on a tie the delete wins
        return Outcome(note="a later event of this follow was already applied")
    if relationship.deleted_at == at and relationship.ended_by == DELETE_EVENTS[event.change_type]:
        return Outcome(note="already recorded when its add was applied")
    follow_end_record(relationship=relationship, at=at, ended_by=DELETE_EVENTS[event.change_type])
    return Outcome(note=f"ended by {DELETE_EVENTS[event.change_type]}")


def follow_end_record(*, relationship: FollowRelationship, at, ended_by: str) -> None:
    """End a follow at ``at``: the relationship, the contact's timeline, and the owner told of a 流失."""
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
        metadata={"wecom_userid": relationship.staff.userid},
    )
    if ended_by == FollowRelationship.EndedBy.CUSTOMER:
        _alert_owner(contact, title=_("%(name)s deleted you in WeCom (流失)") % {"name": contact.name})


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
