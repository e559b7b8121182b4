"""Customers adding staff (``add_external_contact``, ``add_half_external_contact``), processed in batches.

A burst of adds is where WeCom intake is judged: each add wants its welcome message (欢迎语) within
WeCom's 20 seconds. So a worker that picks up one add also claims the other adds waiting in the inbox
(up to ``BATCH``) and applies them together, set-based, with the same code as the full sync
(``sync_contacts.contacts_page_apply``): match or create the contacts (external_userid, then unionid,
then phone), upsert the follow relationships, write the ``add_friend`` touchpoints, refresh the facts.
Then, still in the same transaction: the live codes' tags, the welcome claims in the Delivery ledger
(one row per WelcomeCode, ever), and the rows marked done. The welcomes go out after commit, several at
a time.

An add that a later delete of the same follow has already overtaken in the inbox starts ended and gets
no welcome. When a batch fails as a whole (say two workers created the same new customer at once),
each of its adds is applied again on its own, so one bad add never holds up the others.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from campaigns.content import template_preview
from campaigns.models import Delivery, Medium
from contacts import services as contact_services
from contacts.models import Contact, ContactTag

from .client import WeComClient, WeComError
from .inbox import (
    ADD_EVENTS,
    MAX_ATTEMPTS,
    adds_drain_slot_release,
    adds_drain_slot_release_quietly,
    adds_drain_slot_renew,
)
from .livecodes import live_code_users_refresh
from .models import CallbackEvent, FollowRelationship, LiveCode, StaffAccount
from .sync_contacts import SyncContext, contacts_page_apply

logger = logging.getLogger(__name__)

DELETE_EVENTS = {
    "del_external_contact": FollowRelationship.EndedBy.STAFF,
    "del_follow_user": FollowRelationship.EndedBy.CUSTOMER,
}
BATCH = 50  # adds applied together
WELCOME_WINDOW = dt.timedelta(seconds=20)  # WeCom takes a welcome only this long after the add
RETRY_PAUSE = dt.timedelta(seconds=5)
SEND_THREADS = 16  # profile and welcome calls in flight at once


def is_add(event: CallbackEvent) -> bool:
    return event.event == "change_external_contact" and event.change_type in ADD_EVENTS


def event_time(event: CallbackEvent) -> dt.datetime:
    return event.event_at or event.received_at


def adds_claim_more(*, limit: int, now: dt.datetime | None = None) -> list[CallbackEvent]:
    """Claim up to ``limit`` more pending adds, oldest first, skipping rows other workers are claiming."""
    if limit <= 0:
        return []
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            CallbackEvent.objects.select_for_update(skip_locked=True)
            .filter(status=CallbackEvent.Status.PENDING, event="change_external_contact", change_type__in=ADD_EVENTS)
            # One that WeCom's "busy" sent back waits a little before it is tried again.
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - RETRY_PAUSE))
            .order_by("received_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        CallbackEvent.objects.filter(pk__in=ids, status=CallbackEvent.Status.PENDING).update(
            status=CallbackEvent.Status.PROCESSING, claimed_at=now, attempts=F("attempts") + 1
        )
        return list(CallbackEvent.objects.filter(pk__in=ids, status=CallbackEvent.Status.PROCESSING, claimed_at=now))


def adds_drain(*, slot: int, client: WeComClient) -> int:
    """Apply waiting adds batch after batch until none is left; returns how many were applied. Runs in a
    drain slot (``inbox.adds_drain_wake``), renewed with every batch and given up at the end."""
    applied = 0
    try:
        while True:
            adds_drain_slot_renew(slot)
            batch = adds_claim_more(limit=BATCH)
            if batch:
                adds_process(events=batch, client=client)
                applied += len(batch)
            elif not adds_drain_slot_release(slot):
                return applied
    except BaseException:
        adds_drain_slot_release_quietly(slot)  # the adds left are for the next drainer or the sweeper
        raise


# --- Applying a batch ----------------------------------------------------------------------------


def adds_process(*, events: list[CallbackEvent], client: WeComClient) -> dict[int, str]:
    """Apply claimed adds; returns each row's new status ("skipped" for rows the sweeper gave away)."""
    statuses: dict[int, str] = {}
    profiles: dict[int, dict] = {}
    wanted = []
    for event in events:
        if event.userid and event.external_userid:
            wanted.append(event)
        else:
            statuses[event.pk] = finish([event], CallbackEvent.Status.IGNORED, "no UserID or ExternalUserID")
    # The profiles, several calls in flight at once.
    fetch = _send_pool().map if len(wanted) > 1 else map
    for event, answer in zip(wanted, fetch(lambda e: _profile(e, client), wanted), strict=True):
        if isinstance(answer, WeComError):
            statuses[event.pk] = _wecom_failure(event, answer)
        else:
            profiles[event.pk] = answer
    ready = [e for e in events if e.pk in profiles]
    if not ready:
        return statuses
    try:
        applied, sends, codes = _apply(ready, profiles, client)
    except Exception:
        if len(ready) == 1:
            logger.exception("WeCom add %s failed", ready[0].pk)
            statuses[ready[0].pk] = finish(ready, CallbackEvent.Status.FAILED, _error_text())
            return statuses
        for event in ready:  # one at a time: a bad add must not hold up the others
            statuses.update(adds_process_one(event=event, profile=profiles[event.pk], client=client))
        return statuses
    statuses.update(applied)
    _after_commit(sends, codes, client)
    return statuses


def _profile(event: CallbackEvent, client: WeComClient) -> dict | WeComError:
    try:
        return client.external_contact_get(event.external_userid)
    except WeComError as exc:
        return exc


def adds_process_one(*, event: CallbackEvent, profile: dict, client: WeComClient) -> dict[int, str]:
    try:
        applied, sends, codes = _apply([event], {event.pk: profile}, client)
    except Exception:
        logger.exception("WeCom add %s failed", event.pk)
        return {event.pk: finish([event], CallbackEvent.Status.FAILED, _error_text())}
    _after_commit(sends, codes, client)
    return applied


def _after_commit(welcomes: list[Welcome], live_code_ids: set[int], client: WeComClient) -> None:
    """First the welcomes (WeCom's 20 s), then the codes whose members may have reached their cap."""
    welcomes_send(welcomes, client)
    for live_code_id in live_code_ids:
        try:
            live_code_users_refresh(live_code_id=live_code_id, client=client)
        except WeComError:
            logger.warning("could not refresh the users of live code %s", live_code_id, exc_info=True)


def _apply(events: list[CallbackEvent], profiles: dict[int, dict], client: WeComClient):
    """One transaction: the rows still ours are applied and marked done. Returns (statuses, welcome sends
    to run after commit, live code ids whose user lists may need refreshing)."""
    now = timezone.now()
    with transaction.atomic():
        held = dict(
            CallbackEvent.objects.select_for_update()
            .filter(pk__in=[e.pk for e in events], status=CallbackEvent.Status.PROCESSING)
            .values_list("pk", "attempts")
        )
        statuses = {e.pk: "skipped" for e in events if held.get(e.pk) != e.attempts}
        events = [e for e in events if held.get(e.pk) == e.attempts]
        if not events:
            return statuses, [], set()
        # The latest add of each follow in the batch is applied; earlier ones are done with it.
        latest: dict[tuple[str, str], CallbackEvent] = {}
        for event in sorted(events, key=event_time):
            latest[(event.userid, event.external_userid)] = event
        StaffAccount.objects.bulk_create(
            [StaffAccount(userid=userid[:64]) for userid, _eid in latest], ignore_conflicts=True
        )
        # An add older than the last event applied to its follow changes nothing (a late retry, or an add
        # that a later delete or re-add has overtaken).
        follows = {
            (f.staff.userid, f.external_userid): f
            for f in FollowRelationship.objects.select_related("staff").filter(
                staff__userid__in={u for u, _e in latest}, external_userid__in={e for _u, e in latest}
            )
        }
        for key, event in list(latest.items()):
            applied = follows.get(key)
            if applied is not None and applied.event_at is not None and applied.event_at > event_time(event):
                del latest[key]
        context = SyncContext.for_batch(
            userids={u for u, _e in latest}, states={e.payload.get("State") for e in latest.values()}
        )
        items = [_item(event, profiles[event.pk]) for event in latest.values()]
        result = contacts_page_apply(items=items, context=context) if items else None
        _event_at_advance(latest)
        eids = {eid for _userid, eid in latest}
        contact_of = dict(
            Contact.objects.filter(wecom_external_userid__in=eids).values_list("wecom_external_userid", "pk")
        )
        ended = _end_overtaken(latest)
        live_codes = _live_codes(latest.values())
        _tag(latest.values(), live_codes, contact_of)
        sends = _welcomes_claim(latest.values(), live_codes, contact_of, ended, now=now)
        note = f"batch of {len(events)}: {result.contacts_created if result else 0} contacts created"
        for event in events:
            statuses[event.pk] = CallbackEvent.Status.DONE
        CallbackEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            status=CallbackEvent.Status.DONE, error=note, processed_at=now
        )
    return statuses, sends, {code.pk for code in live_codes.values()}


def _item(event: CallbackEvent, profile: dict) -> dict:
    """The event as a ``batch/get_by_user`` item: the customer and the follow it reports, added at the
    event's time (a later re-add must start an ended follow again; an older one must not)."""
    follow = next((f for f in profile.get("follow_user") or [] if f.get("userid") == event.userid), {})
    follow = {
        **follow,
        "userid": event.userid,
        "createtime": int(event_time(event).timestamp()),
        "state": event.payload.get("State") or follow.get("state") or "",
    }
    return {"external_contact": {**(profile.get("external_contact") or {})}, "follow_info": follow}


def _event_at_advance(latest: dict[tuple[str, str], CallbackEvent]) -> None:
    """Each applied add is now the last event of its follow (the page code moves ``event_at`` only when a
    follow starts)."""
    if not latest:
        return
    rows = list(
        FollowRelationship.objects.select_related("staff").filter(
            staff__userid__in={u for u, _e in latest}, external_userid__in={e for _u, e in latest}
        )
    )
    changed = []
    for row in rows:
        event = latest.get((row.staff.userid, row.external_userid))
        if event is not None and (row.event_at is None or row.event_at < event_time(event)):
            row.event_at = event_time(event)
            changed.append(row)
    FollowRelationship.objects.bulk_update(changed, ["event_at"])


def _end_overtaken(latest: dict[tuple[str, str], CallbackEvent]) -> set[tuple[str, str]]:
    """Follows whose later delete already reached the inbox: they end (at the delete's time) as soon as
    they start."""
    deletes = CallbackEvent.objects.filter(
        external_userid__in={eid for _u, eid in latest},
        change_type__in=list(DELETE_EVENTS),
        event="change_external_contact",
    ).values_list("userid", "external_userid", "event_at", "change_type")
    ended: dict[tuple[str, str], tuple[dt.datetime, str]] = {}
    for userid, eid, at, change_type in deletes:
        event = latest.get((userid, eid))
        if event is None or at is None or at < event_time(event):  # on a tie the delete wins
            continue
        if (userid, eid) not in ended or at > ended[(userid, eid)][0]:
            ended[(userid, eid)] = (at, DELETE_EVENTS[change_type])
    from .events import follow_end_record

    for (userid, eid), (at, ended_by) in ended.items():
        relationship = (
            FollowRelationship.objects.select_related("contact", "staff__user")
            .filter(staff__userid=userid, external_userid=eid)
            .first()
        )
        if relationship is not None and (relationship.event_at is None or relationship.event_at <= at):
            # The delete was processed first and wrote nothing: its timeline entry and alert come now.
            follow_end_record(relationship=relationship, at=at, ended_by=ended_by)
    return set(ended)


def _live_codes(events) -> dict[str, LiveCode]:
    states = {e.payload.get("State") for e in events if e.payload.get("State")}
    if not states:
        return {}
    codes = LiveCode.objects.filter(state__in=states).select_related("welcome_template").prefetch_related("tags")
    return {code.state: code for code in codes}


def _tag(events, live_codes: dict[str, LiveCode], contact_of: dict[str, int]) -> None:
    by_code: dict[str, set[int]] = defaultdict(set)
    for event in events:
        state = event.payload.get("State")
        if state in live_codes and event.external_userid in contact_of:
            by_code[state].add(contact_of[event.external_userid])
    for state, contact_ids in by_code.items():
        tags = list(live_codes[state].tags.all())
        if tags:
            contact_services.contacts_tag(
                contact_ids=sorted(contact_ids), tags=tags, source=ContactTag.Source.LIVE_CODE
            )


def _welcomes_claim(events, live_codes, contact_of, ended, *, now: dt.datetime) -> list[Welcome]:
    """Claim the welcome of each add that has one, in the Delivery ledger: sending (to go out after
    commit), suppressed for a contact who opted out, or failed when WeCom's window has passed. A welcome
    answers the customer's own add, so it is a service message: no marketing consent needed."""
    wanted = []
    for event in events:
        code = live_codes.get(event.payload.get("State") or "")
        welcome_code = (event.payload.get("WelcomeCode") or "")[:128]
        if not (welcome_code and code and code.welcome_template_id and event.external_userid in contact_of):
            continue
        if (event.userid, event.external_userid) in ended:
            continue
        wanted.append((event, code, welcome_code))
    if not wanted:
        return []
    claimed_before = set(
        Delivery.objects.filter(welcome_code__in=[w for _e, _c, w in wanted]).values_list("welcome_code", flat=True)
    )
    contacts = Contact.objects.select_related("owner").in_bulk([contact_of[e.external_userid] for e, _c, _w in wanted])
    rows, texts = [], {}
    for event, code, welcome_code in wanted:
        if welcome_code in claimed_before:
            continue
        contact = contacts[contact_of[event.external_userid]]
        late = now - event.received_at > WELCOME_WINDOW
        # Pending until the moment its call starts (``welcomes_send``): a worker lost before then leaves a
        # row that was certainly never sent; one lost during the call leaves it "sending" (outcome unknown).
        status, reason, error = Delivery.Status.PENDING, "", ""
        if contact.opted_out_at is not None:
            status, reason = Delivery.Status.SUPPRESSED, Delivery.Reason.OPTED_OUT
        elif late:
            status = Delivery.Status.FAILED
            error = "WeCom's 20-second welcome window had passed when the add was processed"
        rows.append(
            Delivery(
                welcome_code=welcome_code,
                contact=contact,
                medium=Medium.WECOM,
                template_id=code.welcome_template_id,
                is_marketing=False,
                status=status,
                reason=reason,
                error=error,
                attempts=0,
                claimed_at=now,
                gateway="wecom",
            )
        )
        if status == Delivery.Status.PENDING:
            texts[welcome_code] = (template_preview(code.welcome_template, contact), list(code.welcome_attachments))
    created = Delivery.objects.bulk_create(rows)
    return [
        Welcome(delivery.pk, delivery.welcome_code, *texts[delivery.welcome_code])
        for delivery in created
        if delivery.welcome_code in texts
    ]


@dataclass(frozen=True)
class Welcome:
    delivery_id: int
    welcome_code: str
    text: str
    attachments: list


_pool: ThreadPoolExecutor | None = None


def _send_pool() -> ThreadPoolExecutor:
    """Threads kept for the life of the worker process. They make HTTP calls only (profiles, welcomes)
    through the worker's client, whose connection pool is thread-safe; the database is written by the
    calling thread."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=SEND_THREADS, thread_name_prefix="wecom-welcome")
    return _pool


def _call(welcome: Welcome, client: WeComClient) -> str:
    try:
        client.welcome_send(welcome.welcome_code, welcome.text, welcome.attachments)
    except WeComError as exc:
        return str(exc) or type(exc).__name__
    return ""


def welcomes_send(welcomes: list[Welcome], client: WeComClient) -> None:
    """Send claimed welcomes ``SEND_THREADS`` at a time and record each group's answers. A welcome turns
    "sending" only as its group's calls start, so a worker killed mid-batch leaves at most one group in
    doubt; the rest stay pending (never sent) until the sweeper expires them."""
    for start in range(0, len(welcomes), SEND_THREADS):
        group = {w.delivery_id: w for w in welcomes[start : start + SEND_THREADS]}
        with transaction.atomic():
            started = list(
                Delivery.objects.select_for_update()
                .filter(pk__in=list(group), status=Delivery.Status.PENDING)
                .values_list("pk", flat=True)
            )
            Delivery.objects.filter(pk__in=started).update(
                status=Delivery.Status.SENDING, attempts=F("attempts") + 1, claimed_at=timezone.now()
            )
        calls = [group[pk] for pk in started]
        if len(calls) == 1:
            errors = [_call(calls[0], client)]
        else:
            errors = list(_send_pool().map(lambda w: _call(w, client), calls))
        sent = [w.delivery_id for w, error in zip(calls, errors, strict=True) if not error]
        Delivery.objects.filter(pk__in=sent, status=Delivery.Status.SENDING).update(
            status=Delivery.Status.SENT, sent_at=timezone.now()
        )
        for welcome, error in zip(calls, errors, strict=True):
            if error:
                Delivery.objects.filter(pk=welcome.delivery_id, status=Delivery.Status.SENDING).update(
                    status=Delivery.Status.FAILED, error=error[:2000]
                )


def welcomes_expire(*, now: dt.datetime | None = None) -> int:
    """Welcomes claimed but never started (their worker was lost in between) once WeCom's window has
    passed: failed, saying so. Run by the inbox sweeper."""
    now = now or timezone.now()
    return Delivery.objects.filter(
        welcome_code__isnull=False, status=Delivery.Status.PENDING, created_at__lt=now - WELCOME_WINDOW
    ).update(
        status=Delivery.Status.FAILED, error="never sent: the worker was lost before the call and WeCom's window passed"
    )


# --- Outcomes --------------------------------------------------------------------------------------


def finish(events: list[CallbackEvent], status: str, note: str) -> str:
    """Record how processing ended, on the rows this worker still holds (a row the sweeper handed to
    another worker meanwhile is that worker's to finish)."""
    done = status in (CallbackEvent.Status.DONE, CallbackEvent.Status.IGNORED, CallbackEvent.Status.FAILED)
    held = Q()
    for event in events:
        held |= Q(pk=event.pk, attempts=event.attempts)
    CallbackEvent.objects.filter(held, status=CallbackEvent.Status.PROCESSING).update(
        status=status, error=note[:2000], processed_at=timezone.now() if done else None
    )
    return status


def _wecom_failure(event: CallbackEvent, exc: WeComError) -> str:
    if exc.kind == "invalid":
        return finish([event], CallbackEvent.Status.IGNORED, f"WeCom: {exc}")
    retry = exc.kind in ("busy", "token") and event.attempts < MAX_ATTEMPTS
    return finish([event], CallbackEvent.Status.PENDING if retry else CallbackEvent.Status.FAILED, f"WeCom: {exc}")


def _error_text() -> str:
    import sys

    exc = sys.exc_info()[1]
    return f"{type(exc).__name__}: {exc}"
