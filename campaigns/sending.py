"""The broadcast send path, top to bottom, in the order a broadcast goes through it:

1. **Tick** (``broadcasts_tick``, every few seconds from beat): due scheduled broadcasts start; stalled
   ones are revived, finished ones marked sent, lost sends handed back.
2. **Start** (``broadcast_start``): plan the broadcast once and set its senders going.
3. **Plan** (``broadcast_plan``): one delivery row per recipient (``selectors.broadcast_audience``),
   pending or suppressed with the reason, in one ``INSERT … SELECT … ON CONFLICT DO NOTHING``.
4. **Claim** (``deliveries_due``): a chunk of due pending rows, locked; consent, opt-outs, ownership and
   the caps are checked again at that moment.
5. **Send** (``deliveries_send`` → ``deliveries_send_chunk``): render, hand to the gateway, record.
6. **Finish** (``broadcast_finish_if_done``, ``deliveries_requeue_stuck``).

Automation deliveries and one-off messages (rows without a broadcast; WeCom welcomes excepted, ``wecom.adds``
sends those) go through the same senders and checks. Rows the quiet hours defer carry ``hold = quiet_hours``
and are released when the policy changes (``deliveries_quiet_hours_release``).

Exactly-once rests on the ``Delivery`` ledger: planning writes each (broadcast, contact) row once however
often it runs; a chunk is claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL) or under SQLite's
write lock, and acts only on rows still ``pending``. With a transactional gateway (the outbox) the message
is written in the transaction that marks the delivery sent: a worker killed at any point rolls both back.
With an external gateway the claim (``sending``) is committed first, then the message goes out and the
result is recorded; rows a killed worker leaves ``sending`` are handed back after ``STUCK_AFTER`` — the
only window where a message could go out twice, so the gateways pass an idempotency key (delivery id).

A broadcast's writes before it sends (create, submit, approve, cancel) are in ``campaigns.services``;
the caps and quiet hours are read from ``campaigns.policy``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Case, CharField, F, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from contacts.models import Contact
from scrm.sql import insert_select

from . import content, policy, selectors
from .gateways import OutgoingMessage, SendResult, gateway_for
from .models import Broadcast, Delivery, FrequencyPolicy, MessageTemplate

logger = logging.getLogger(__name__)

# Sender tasks per broadcast.
SEND_PARALLELISM = getattr(settings, "SCRM_SEND_PARALLELISM", 2)
CHUNK_SIZE = getattr(settings, "SCRM_SEND_CHUNK", 1000)
# External gateways call out once per message (or per sender and body): small chunks keep a chunk's
# sends well inside STUCK_AFTER even at the gateway timeout, and close to the quiet-hours check.
EXTERNAL_CHUNK_SIZE = 20
STUCK_AFTER = dt.timedelta(minutes=10)
MAX_ATTEMPTS = 5
RETRY_BASE = dt.timedelta(seconds=30)


# --- 1. Tick ---------------------------------------------------------------------------------


def broadcasts_tick(
    *, now: dt.datetime | None = None, stale_after: dt.timedelta = dt.timedelta(seconds=60)
) -> dict[str, int]:
    """The periodic heartbeat of sending (every few seconds from beat; harmless when run twice at once):

    * due scheduled broadcasts become ``sending`` (a conditional update: one tick wins) and are planned;
    * sending broadcasts whose planning was lost are planned again, and those whose senders went quiet
      with due work left get new senders; finished ones are marked sent;
    * deliveries stuck ``sending`` after a worker died go back to pending;
    * due automation deliveries get a sender.
    """
    from .tasks import broadcast_start as broadcast_start_task

    now = now or timezone.now()
    stats = {"started": 0, "resumed": 0, "finished": 0, "requeued": 0}
    stats["requeued"] = deliveries_requeue_stuck(now=now)
    due = list(
        Broadcast.objects.filter(status=Broadcast.Status.SCHEDULED, scheduled_at__lte=now).values_list("pk", flat=True)
    )
    for pk in due:
        if Broadcast.objects.filter(pk=pk, status=Broadcast.Status.SCHEDULED).update(
            status=Broadcast.Status.SENDING, started_at=now, updated_at=now
        ):
            stats["started"] += 1
            transaction.on_commit(lambda pk=pk: broadcast_start_task.delay(pk))
    stale = now - stale_after
    in_flight = Broadcast.objects.filter(status=Broadcast.Status.SENDING).values_list(
        "pk", "planned_at", "heartbeat_at", "started_at", named=True
    )
    for broadcast in in_flight:
        if broadcast.planned_at is None:
            if broadcast.started_at is None or broadcast.started_at < stale:
                transaction.on_commit(lambda pk=broadcast.pk: broadcast_start_task.delay(pk))
                stats["resumed"] += 1
            continue
        if broadcast_finish_if_done(broadcast_id=broadcast.pk, now=now):
            stats["finished"] += 1
            continue
        if broadcast.heartbeat_at is None or broadcast.heartbeat_at < stale:
            if deliveries_due(broadcast_id=broadcast.pk, now=now).exists():
                # Only the tick that moves the heartbeat revives the senders: ticks do not pile them up.
                revived = Broadcast.objects.filter(pk=broadcast.pk, heartbeat_at=broadcast.heartbeat_at).update(
                    heartbeat_at=now
                )
                if revived:
                    _enqueue_senders(broadcast.pk)
                    stats["resumed"] += 1
    if deliveries_due(broadcast_id=None, now=now).exists() and cache.add(
        "campaigns:automation-sender", 1, timeout=int(stale_after.total_seconds()) or 1
    ):
        _enqueue_senders(None, count=1)
    return stats


# --- 2. Start --------------------------------------------------------------------------------


def broadcast_start(*, broadcast_id: int) -> int:
    """Plan a sending broadcast's deliveries (once) and set senders going. Safe to run twice at once:
    the broadcast row is locked while planning, and planning skips rows that exist."""
    planned = 0
    with transaction.atomic():
        broadcast = (
            Broadcast.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=broadcast_id, status=Broadcast.Status.SENDING)
            .select_related("template", "segment", "created_by")
            .first()
        )
        if broadcast is None:
            return 0
        if broadcast.planned_at is None:
            planned = broadcast_plan(broadcast=broadcast)
        _enqueue_senders(broadcast.pk)
    return planned


def _enqueue_senders(broadcast_id: int | None, count: int = SEND_PARALLELISM) -> None:
    """``count`` sender tasks for one broadcast (or for the automations when ``broadcast_id`` is None),
    enqueued once the transaction commits."""
    from .tasks import deliveries_send as deliveries_send_task

    def enqueue():
        for _i in range(count):
            deliveries_send_task.delay(broadcast_id)

    transaction.on_commit(enqueue)


# --- 3. Plan ---------------------------------------------------------------------------------


def broadcast_plan(*, broadcast: Broadcast, now: dt.datetime | None = None) -> int:
    """Write one delivery per targeted contact in a single ``INSERT … SELECT``: pending, or suppressed with
    the reason (``policy.recipients_checked``: the expression the editor's estimate counts). Idempotent."""
    now = now or timezone.now()
    template, is_marketing = broadcast.template, not broadcast.template.is_service
    audience = selectors.broadcast_audience(broadcast)
    rows = policy.recipients_checked(audience, medium=broadcast.medium, is_marketing=is_marketing, now=now).annotate(
        d_status=Case(
            When(d_reason="", then=Value(Delivery.Status.PENDING)),
            default=Value(Delivery.Status.SUPPRESSED),
            output_field=CharField(),
        ),
    )
    columns = {
        "broadcast_id": Value(broadcast.pk),
        "contact_id": F("pk"),
        "medium": Value(broadcast.medium),
        "template_id": Value(template.pk),
        "is_marketing": Value(is_marketing),
        "status": F("d_status"),
        "reason": F("d_reason"),
        "attempts": Value(0),
        "created_at": Value(now),
        "error": Value(""),
        "gateway": Value(""),
        "gateway_message_id": Value(""),
        "gateway_state": Value(""),
    }
    with transaction.atomic():
        # The audience comes from the ORM (whitelisted segment rules compiled to Q objects): no user input
        # is ever spliced into this statement.
        inserted = insert_select(Delivery, rows, columns)
        total = Delivery.objects.filter(broadcast=broadcast).count()
        Broadcast.objects.filter(pk=broadcast.pk).update(planned_at=timezone.now(), total_targeted=total)
    logger.info("broadcast %s planned: %s new deliveries, %s in all", broadcast.pk, inserted, total)
    return inserted


# --- 4. Claim --------------------------------------------------------------------------------


@dataclass
class ChunkResult:
    """What one chunk (or a sender's run of chunks) did; ``claimed == 0`` means nothing was due."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    suppressed: int = 0
    deferred: int = 0

    def __iadd__(self, other: ChunkResult) -> ChunkResult:
        for field in ("claimed", "sent", "failed", "retried", "suppressed", "deferred"):
            setattr(self, field, getattr(self, field) + getattr(other, field))
        return self


# What a sender reads of each claimed delivery (named rows: ``row.contact_id``), and of its contact: what
# the checks, the placeholders and the addresses need.
_CLAIMED_FIELDS = ("id", "contact_id", "medium", "template_id", "is_marketing", "attempts", "broadcast_id")
_CLAIMED_FIELDS += ("subject", "body", "sent_by_id")  # a one-off message's own text and writer
_CONTACT_FIELDS = (
    *("id", "erased_at", "merged_into_id", "marketing_consent", "opted_out_at"),
    *("name", "region", "city", "first_purchase_at", "owner__username", "owner__first_name", "owner__last_name"),
    *("phone", "email", "wecom_external_userid", "wechat_unionid"),
    # The WeCom member who sends for the owner (the staff mapping, never assumed to be the username).
    "owner__wecom_account__userid",
)


def deliveries_due(*, broadcast_id: int | None, now: dt.datetime, ids: list[int] | None = None) -> QuerySet[Delivery]:
    """The pending deliveries of one broadcast (of the automation runs and one-off messages when
    ``broadcast_id`` is None; only ``ids`` when given) that may go out at ``now``: not deferred past it
    (quiet hours, a retry's backoff)."""
    if broadcast_id:
        source = Q(broadcast_id=broadcast_id)
    else:
        source = Q(broadcast_id__isnull=True, welcome_code__isnull=True)
    if ids is not None:
        source &= Q(pk__in=ids)
    return Delivery.objects.filter(source, status=Delivery.Status.PENDING).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now)
    )


def deliveries_quiet_hours(
    *, broadcast_id: int | None, now: dt.datetime, current: FrequencyPolicy, ids: list[int] | None = None
) -> ChunkResult:
    """Inside quiet hours nothing is sent: the due pending deliveries are deferred to the end of the
    quiet hours (``hold = quiet_hours``), or suppressed when their broadcast says not to defer. Set-based,
    two statements."""
    until = policy.quiet_hours_end(now, policy=current)
    result = ChunkResult()
    if until is None:
        return result
    due = deliveries_due(broadcast_id=broadcast_id, now=now, ids=ids)
    no_defer = Q(broadcast__defer_quiet_hours=False)
    result.suppressed = due.filter(no_defer).update(
        status=Delivery.Status.SUPPRESSED, reason=Delivery.Reason.QUIET_HOURS, claimed_at=None
    )
    result.deferred = due.exclude(no_defer).update(not_before=until, hold=Delivery.Hold.QUIET_HOURS)
    return result


def deliveries_quiet_hours_release(*, now: dt.datetime, current: FrequencyPolicy) -> int:
    """After the quiet hours changed: the pending deliveries they hold wait for their new end, or are due at
    once when ``now`` is no longer quiet. Only ``not_before`` moves: senders claim and check them as always."""
    held = Delivery.objects.filter(status=Delivery.Status.PENDING, hold=Delivery.Hold.QUIET_HOURS, not_before__gt=now)
    until = policy.quiet_hours_end(now, policy=current)
    if until is None:
        return held.update(not_before=now, hold="")
    return held.exclude(not_before=until).update(not_before=until)


def _chunk_size(broadcast_id: int | None, requested: int) -> int:
    if broadcast_id:
        media = Broadcast.objects.filter(pk=broadcast_id).values_list("medium", flat=True)
    else:
        media = list(settings.SCRM_GATEWAYS)
    if all(gateway_for(medium).transactional for medium in media):
        return requested
    return min(requested, EXTERNAL_CHUNK_SIZE)


def _claim(broadcast_id: int | None, *, now: dt.datetime, chunk_size: int, ids: list[int] | None = None) -> list:
    """Up to ``chunk_size`` due deliveries, locked until the transaction ends (rows another sender holds
    are skipped), as named rows of ``_CLAIMED_FIELDS``. Call inside a transaction."""
    return list(
        deliveries_due(broadcast_id=broadcast_id, now=now, ids=ids)
        .select_for_update(skip_locked=True, of=("self",))
        .order_by("id")
        .values_list(*_CLAIMED_FIELDS, named=True)[:chunk_size]
    )


def _lock_contacts(contact_ids: list[int]) -> dict[int, dict]:
    """The chunk's contacts, locked (in id order, so two senders never deadlock) until the claim commits:
    a second broadcast reaching the same contact waits here and then counts this one's deliveries."""
    rows = Contact.objects.filter(pk__in=contact_ids).order_by("pk")
    if connection.features.has_select_for_update:
        # Lock first (no join: the owner is on the nullable side of one), then read with the owner.
        list(rows.select_for_update(no_key=True).values_list("pk", flat=True))
    return {row["id"]: row for row in rows.values(*_CONTACT_FIELDS)}


def _author(row) -> tuple:
    return ("broadcast", row.broadcast_id) if row.broadcast_id else ("one_off", row.sent_by_id)


def _authors_contacts(claimed: list, contact_ids: list[int]) -> dict[tuple, set[int]]:
    """{``_author(row)``: the chunk's contacts that author may see} for the chunk's broadcasts and one-off
    messages whose author does not see every contact (an operator): a contact reassigned since it was planned
    or written is no longer theirs to message. Call after ``_lock_contacts``, so that no owner changes meanwhile."""
    broadcast_ids = {row.broadcast_id for row in claimed if row.broadcast_id}
    writer_ids = {row.sent_by_id for row in claimed if row.sent_by_id and not row.broadcast_id}
    authors = {("one_off", u.pk): u for u in get_user_model().objects.filter(pk__in=writer_ids)} if writer_ids else {}
    if broadcast_ids:
        broadcasts = Broadcast.objects.filter(pk__in=broadcast_ids).select_related("created_by")
        authors.update({("broadcast", b.pk): b.created_by for b in broadcasts})
    return {
        key: set(Contact.objects.visible_to(author).filter(pk__in=contact_ids).values_list("pk", flat=True))
        for key, author in authors.items()
        if not Contact.objects.sees_all(author)
    }


def _check(
    claimed: list, contacts: dict[int, dict], *, now, current, authors_contacts: dict[tuple, set[int]]
) -> tuple[list, dict[str, list[int]]]:
    """Split a claimed chunk into the rows to send and the rows to suppress, per reason. The caps are
    counted once for the chunk's contacts, then every accepted row counts for the rows after it."""
    suppressed: dict[str, list[int]] = defaultdict(list)
    accepted = []
    windows: list[policy.CapWindow] | None = None
    counts: dict[int, dict[int, int]] = {}
    for row in claimed:
        contact = contacts.get(row.contact_id)
        if contact is None or contact["erased_at"] or contact["merged_into_id"]:
            suppressed[Delivery.Reason.GONE].append(row.id)
            continue
        if _author(row) in authors_contacts and row.contact_id not in authors_contacts[_author(row)]:
            suppressed[Delivery.Reason.NOT_OWNED].append(row.id)
            continue
        if contact["opted_out_at"]:
            suppressed[Delivery.Reason.OPTED_OUT].append(row.id)
            continue
        if not contact["marketing_consent"]:
            suppressed[Delivery.Reason.NO_CONSENT].append(row.id)
            continue
        if gateway_for(row.medium).needs_address and not contact.get(policy.ADDRESS_FIELDS[row.medium]):
            suppressed[Delivery.Reason.NO_ADDRESS].append(row.id)
            continue
        if policy.caps_apply(is_marketing=row.is_marketing, policy=current):
            if windows is None:
                windows = policy.cap_windows(medium=None, now=now)
                counts = policy.cap_counts(windows, list(contacts))
            relevant = [w for w in windows if w.applies_to(row.medium)]
            if any(counts[w.cap_id].get(row.contact_id, 0) >= w.limit for w in relevant):
                suppressed[Delivery.Reason.FREQUENCY_CAP].append(row.id)
                continue
            for w in relevant:
                counts[w.cap_id][row.contact_id] = counts[w.cap_id].get(row.contact_id, 0) + 1
        accepted.append(row)
    return accepted, suppressed


# --- 5. Send ---------------------------------------------------------------------------------


def deliveries_send(*, broadcast_id: int | None, budget: dt.timedelta = dt.timedelta(seconds=20)) -> dict[str, int]:
    """Send chunks of one broadcast (or of the automations) for up to ``budget``; returns the totals and
    whether work is left (the task then enqueues itself again, so a task never runs for long)."""
    deadline = timezone.now() + budget
    total = ChunkResult()
    more = False
    while True:
        result = deliveries_send_chunk(broadcast_id=broadcast_id)
        total += result
        if result.claimed == 0:
            more = False
            break
        if timezone.now() >= deadline:
            more = True
            break
    if not more and broadcast_id:
        broadcast_finish_if_done(broadcast_id=broadcast_id)
    return {**total.__dict__, "more": more}


def deliveries_send_chunk(
    *,
    broadcast_id: int | None,
    now: dt.datetime | None = None,
    chunk_size: int = CHUNK_SIZE,
    only: list[int] | None = None,
) -> ChunkResult:
    """Claim up to ``chunk_size`` due pending deliveries of one broadcast (or of the automations and one-off
    messages when ``broadcast_id`` is None; only the deliveries ``only`` names when given), re-check them,
    and send them. Returns what happened; ``claimed == 0`` means there is nothing due."""
    now = now or timezone.now()
    current = policy.policy_get()
    if policy.quiet_hours_end(now, policy=current) is not None:
        result = deliveries_quiet_hours(broadcast_id=broadcast_id, now=now, current=current, ids=only)
        result.claimed = 0
        return result
    result = ChunkResult()
    external: list[tuple] = []
    chunk_size = _chunk_size(broadcast_id, chunk_size)
    if broadcast_id and not Broadcast.objects.filter(pk=broadcast_id, status=Broadcast.Status.SENDING).exists():
        # A cancelled (or not yet started) broadcast sends nothing more, whatever rows are still pending
        # (a chunk claimed just before a cancel still goes: "the few already in flight finish").
        return result
    with transaction.atomic():
        claimed = _claim(broadcast_id, now=now, chunk_size=chunk_size, ids=only)
        if not claimed:
            return result
        result.claimed = len(claimed)
        contact_ids = sorted({row.contact_id for row in claimed})
        contacts = _lock_contacts(contact_ids)
        accepted, suppressed = _check(
            claimed, contacts, now=now, current=current, authors_contacts=_authors_contacts(claimed, contact_ids)
        )
        for reason, ids in suppressed.items():
            Delivery.objects.filter(pk__in=ids, status=Delivery.Status.PENDING).update(
                status=Delivery.Status.SUPPRESSED, reason=reason
            )
            result.suppressed += len(ids)
        by_medium: dict[str, list[OutgoingMessage]] = defaultdict(list)
        for message in _render(accepted, contacts):
            by_medium[message.medium].append(message)
        for medium, messages in by_medium.items():
            gateway = gateway_for(medium)
            ids = [m.delivery_id for m in messages]
            if gateway.transactional:
                results = gateway.send(messages)
                attempts_before = {row.id: row.attempts for row in claimed}
                result += _record(results, gateway.name, now=now, attempts_of=attempts_before)
            else:
                # Commit the claim first: the caps count it from now on, and a crash leaves it visible.
                Delivery.objects.filter(pk__in=ids, status=Delivery.Status.PENDING).update(
                    status=Delivery.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1, gateway=gateway.name
                )
                external.append((gateway, messages))
    if broadcast_id:
        # After the commit: inside it, this row lock would cycle with a cancel waiting on our claimed rows.
        Broadcast.objects.filter(pk=broadcast_id).update(heartbeat_at=now)
    attempts_of = {row.id: row.attempts + 1 for row in claimed}
    for gateway, messages in external:
        try:
            results = gateway.send(messages)
        except Exception as exc:  # a programming error in a gateway must not leave the rows SENDING forever
            logger.exception("gateway %s failed", gateway.name)
            results = [SendResult(m.delivery_id, ok=False, transient=True, error=str(exc)) for m in messages]
        with transaction.atomic():
            result += _record(results, gateway.name, now=timezone.now(), attempts_of=attempts_of, from_sending=True)
    return result


def _owner_name(contact: dict) -> str:
    full = f"{contact['owner__last_name']}{contact['owner__first_name']}".strip()
    return full or (contact["owner__username"] or "")


def _render(accepted: list, contacts: dict[int, dict]) -> list[OutgoingMessage]:
    if not accepted:
        return []
    templates = {t.pk: t for t in MessageTemplate.objects.filter(pk__in={row.template_id for row in accepted})}
    templates[None] = None
    broadcast_ids = {row.broadcast_id for row in accepted if row.broadcast_id}
    variables_of = dict(Broadcast.objects.filter(pk__in=broadcast_ids).values_list("pk", "variables"))
    run_extras = _automation_extras([row.id for row in accepted if not row.broadcast_id])
    messages = []
    for row in accepted:
        contact = contacts[row.contact_id]
        template = templates[row.template_id]
        # A one-off message written freely carries its own text (placeholders rendered like a template's).
        subject, body = (template.subject, template.body) if template else (row.subject, row.body)
        if row.broadcast_id:
            variables, extra = variables_of.get(row.broadcast_id) or {}, {}
        else:
            variables, extra = run_extras.get(row.id, ({}, {}))
        values = content.contact_values(
            dict(contact, owner_name=_owner_name(contact)), variables=variables, extra=extra
        )
        messages.append(
            OutgoingMessage(
                delivery_id=row.id,
                contact_id=row.contact_id,
                medium=row.medium,
                subject=content.template_render(subject, values=values) if subject else "",
                body=content.template_render(body, values=values),
                address=contact.get(policy.ADDRESS_FIELDS.get(row.medium, "-"), "") or "",
                sender=contact["owner__wecom_account__userid"] or "",
            )
        )
    return messages


def _automation_extras(delivery_ids: list[int]) -> dict[int, tuple[dict, dict]]:
    """For automation deliveries: the automation's variables and the run's product name."""
    if not delivery_ids:
        return {}
    rows = Delivery.objects.filter(pk__in=delivery_ids).values_list(
        "pk", "automation_run__automation__variables", "automation_run__product__name"
    )
    return {pk: (variables or {}, {"product": product or ""}) for pk, variables, product in rows}


def _record(
    results: list[SendResult], gateway_name: str, *, now, attempts_of: dict[int, int], from_sending: bool = False
) -> ChunkResult:
    """Write the gateway's answers: sent; failed for good; or back to pending with a backoff."""
    result = ChunkResult()
    expected = Delivery.Status.SENDING if from_sending else Delivery.Status.PENDING
    ok = [r for r in results if r.ok]
    plain_ok = [r.delivery_id for r in ok if not r.message_id and not r.state]
    if plain_ok:
        result.sent += Delivery.objects.filter(pk__in=plain_ok, status=expected).update(
            status=Delivery.Status.SENT,
            sent_at=now,
            claimed_at=Coalesce(F("claimed_at"), Value(now)) if from_sending else Value(now),
            attempts=F("attempts") + (0 if from_sending else 1),
            gateway=gateway_name,
            error="",
        )
    grouped: dict[tuple[str, str], list[int]] = defaultdict(list)
    for r in ok:
        if r.message_id or r.state:
            grouped[(r.message_id, r.state)].append(r.delivery_id)
    for (message_id, state), ids in grouped.items():
        result.sent += Delivery.objects.filter(pk__in=ids, status=expected).update(
            status=Delivery.Status.SENT,
            sent_at=now,
            claimed_at=Coalesce(F("claimed_at"), Value(now)),
            attempts=F("attempts") + (0 if from_sending else 1),
            gateway=gateway_name,
            gateway_message_id=message_id[:128],
            gateway_state=state[:32],
            error="",
        )
    for r in results:
        if r.ok:
            continue
        attempts = attempts_of.get(r.delivery_id, 1)
        rows = Delivery.objects.filter(pk=r.delivery_id, status=expected)
        if r.transient and attempts < MAX_ATTEMPTS:
            backoff = RETRY_BASE * (2 ** max(attempts - 1, 0))
            result.retried += rows.update(
                status=Delivery.Status.PENDING,
                not_before=now + backoff,
                hold=Delivery.Hold.RETRY,
                claimed_at=None,
                attempts=attempts,
                gateway=gateway_name,
                error=r.error[:2000],
            )
        else:
            result.failed += rows.update(
                status=Delivery.Status.FAILED, attempts=attempts, gateway=gateway_name, error=r.error[:2000]
            )
    return result


# --- 6. Finish -------------------------------------------------------------------------------


def broadcast_has_unfinished(broadcast_id: int) -> bool:
    return Delivery.objects.filter(
        broadcast_id=broadcast_id, status__in=(Delivery.Status.PENDING, Delivery.Status.SENDING)
    ).exists()


def broadcast_finish_if_done(*, broadcast_id: int, now: dt.datetime | None = None) -> bool:
    """Mark a sending broadcast sent once none of its deliveries is pending or in flight."""
    if broadcast_has_unfinished(broadcast_id):
        return False
    return bool(
        Broadcast.objects.filter(pk=broadcast_id, status=Broadcast.Status.SENDING, planned_at__isnull=False).update(
            status=Broadcast.Status.SENT, finished_at=now or timezone.now()
        )
    )


def deliveries_requeue_stuck(*, now: dt.datetime | None = None) -> int:
    """Hand deliveries whose worker died mid-send (``sending`` for longer than any send takes) back to
    pending. Harmless when run twice at once (a conditional update)."""
    now = now or timezone.now()
    stuck = Delivery.objects.filter(status=Delivery.Status.SENDING, claimed_at__lt=now - STUCK_AFTER)
    # A welcome message (欢迎语) is accepted by WeCom only within 20 s of the add: a lost one is failed, not retried.
    stuck.filter(welcome_code__isnull=False).update(
        status=Delivery.Status.FAILED, error="the worker was lost during the send and WeCom's welcome window has passed"
    )
    # A message that keeps killing its worker (or never gets an answer) stops being retried.
    stuck.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=Delivery.Status.FAILED, error="the worker was lost during the send, too many times"
    )
    requeued = stuck.filter(attempts__lt=MAX_ATTEMPTS).update(status=Delivery.Status.PENDING, claimed_at=None)
    # Rows of cancelled broadcasts that came back from a failed or lost send are not sent any more.
    Delivery.objects.filter(broadcast__status=Broadcast.Status.CANCELLED, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.SUPPRESSED, reason=Delivery.Reason.CANCELLED
    )
    return requeued
