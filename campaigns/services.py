"""Every write to broadcasts goes through here: create, edit, submit (schedule), approve, reject,
cancel, and the start of sending that the periodic tick triggers.

Status flow: draft → pending approval (when the author may not approve broadcasts) → scheduled →
sending → sent; cancelled from any state before sent. The "when" lives in ``scheduled_at`` and a
periodic tick claims what is due (no far-future Celery ETAs).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from communities.models import Community

from . import content, sending
from .models import Broadcast, Delivery, Medium, MessageTemplate, Segment

# A send time a little in the past is "now" (the form took a while); more than this is a mistake.
PAST_GRACE = dt.timedelta(minutes=1)
SEND_PARALLELISM = getattr(settings, "SCRM_SEND_PARALLELISM", 2)
EDITABLE = (Broadcast.Status.DRAFT,)
CANCELLABLE = (
    Broadcast.Status.DRAFT,
    Broadcast.Status.PENDING_APPROVAL,
    Broadcast.Status.SCHEDULED,
    Broadcast.Status.SENDING,
)


def can_approve(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm("campaigns.approve_broadcast"))


def _validate(
    *,
    user,
    name: str,
    template: MessageTemplate | None,
    medium: str,
    segment: Segment | None,
    communities: Iterable[Community],
    variables: dict,
    conversion_window_days: int,
) -> None:
    errors: dict[str, list[str]] = {}
    if not (name or "").strip():
        errors["name"] = [_("Give the broadcast a name.")]
    if medium not in Medium.values:
        errors["medium"] = [_("Unknown medium “%(value)s”.") % {"value": medium}]
    if template is None:
        errors["template"] = [_("Choose a message template.")]
    elif not template.is_active:
        errors["template"] = [_("The template “%(name)s” is archived.") % {"name": template.name}]
    else:
        if not isinstance(variables, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float) for k, v in variables.items()
        ):
            errors["variables"] = [_("Variables are a mapping of names to text.")]
        else:
            try:
                content.template_validate(template.body, variables=variables, require_variables=True)
                if template.subject:
                    content.template_validate(template.subject, variables=variables, require_variables=True)
            except ValidationError as exc:
                for field, messages in exc.message_dict.items():
                    key = "template" if field in ("body", "__all__") else field
                    errors.setdefault(key, []).extend(messages)
    communities = list(communities)
    if segment is None and not communities:
        errors["audience"] = [_("Choose a segment or at least one community.")]
    if communities:
        visible = set(
            Community.objects.visible_to(user).filter(pk__in=[c.pk for c in communities]).values_list("pk", flat=True)
        )
        hidden = [c.pk for c in communities if c.pk not in visible]
        if hidden:
            errors["communities"] = [_("Unknown community: %(ids)s.") % {"ids": ", ".join(map(str, hidden))}]
    if not 0 <= int(conversion_window_days) <= 365:
        errors["conversion_window_days"] = [_("The conversion window is 0 to 365 days.")]
    if errors:
        raise ValidationError(errors)


def _check_time(scheduled_at: dt.datetime | None, *, now: dt.datetime) -> None:
    if scheduled_at is not None and scheduled_at < now - PAST_GRACE:
        raise ValidationError(
            {"scheduled_at": [_("The send time %(time)s is in the past.") % {"time": timezone.localtime(scheduled_at)}]}
        )


def broadcast_create(
    *,
    created_by,
    name: str,
    template: MessageTemplate | None,
    medium: str = Medium.WECOM,
    segment: Segment | None = None,
    communities: Iterable[Community] = (),
    variables: dict | None = None,
    scheduled_at: dt.datetime | None = None,
    defer_quiet_hours: bool = True,
    conversion_window_days: int = 7,
) -> Broadcast:
    """A new draft. Everything is validated now (template placeholders against the variables, the
    audience, the send time), so that nothing can fail later at send time."""
    variables = variables if variables is not None else {}
    communities = list(communities)
    _validate(
        user=created_by,
        name=name,
        template=template,
        medium=medium,
        segment=segment,
        communities=communities,
        variables=variables,
        conversion_window_days=conversion_window_days,
    )
    _check_time(scheduled_at, now=timezone.now())
    with transaction.atomic():
        broadcast = Broadcast.objects.create(
            name=name.strip(),
            template=template,
            medium=medium,
            segment=segment,
            variables=variables,
            scheduled_at=scheduled_at,
            defer_quiet_hours=defer_quiet_hours,
            conversion_window_days=conversion_window_days,
            created_by=created_by,
        )
        broadcast.communities.set(communities)
    return broadcast


def broadcast_update(*, broadcast: Broadcast, user, **fields) -> Broadcast:
    """Edit a draft. Fields as in ``broadcast_create``."""
    with transaction.atomic():
        broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
        if broadcast.status not in EDITABLE:
            raise ValidationError(
                {
                    "status": [
                        _("Only a draft can be edited; this broadcast is %(status)s.")
                        % {"status": broadcast.get_status_display()}
                    ]
                }
            )
        communities = list(fields.pop("communities", broadcast.communities.all()))
        for field, value in fields.items():
            setattr(broadcast, field, value)
        _validate(
            user=user,
            name=broadcast.name,
            template=broadcast.template,
            medium=broadcast.medium,
            segment=broadcast.segment,
            communities=communities,
            variables=broadcast.variables,
            conversion_window_days=broadcast.conversion_window_days,
        )
        _check_time(broadcast.scheduled_at, now=timezone.now())
        broadcast.save()
        broadcast.communities.set(communities)
    return broadcast


def broadcast_submit(*, broadcast: Broadcast, user, scheduled_at: dt.datetime | None = None) -> Broadcast:
    """Ask for the draft to be sent at ``scheduled_at`` (default: its own time, else now). A user who may
    approve broadcasts schedules it directly; anyone else sends it for approval. The audience must not be
    empty now."""
    now = timezone.now()
    with transaction.atomic():
        broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
        if broadcast.status != Broadcast.Status.DRAFT:
            raise ValidationError(
                {
                    "status": [
                        _("Only a draft can be submitted; this broadcast is %(status)s.")
                        % {"status": broadcast.get_status_display()}
                    ]
                }
            )
        when = scheduled_at or broadcast.scheduled_at or now
        _check_time(when, now=now)
        if not sending.broadcast_audience(broadcast).exists():
            raise ValidationError(
                {"audience": [_("The audience is empty: no contact matches the segment or communities.")]}
            )
        broadcast.scheduled_at = max(when, now)
        if can_approve(user):
            broadcast.status = Broadcast.Status.SCHEDULED
            broadcast.approved_by, broadcast.approved_at = user, now
        else:
            broadcast.status = Broadcast.Status.PENDING_APPROVAL
        broadcast.save(update_fields=["scheduled_at", "status", "approved_by", "approved_at", "updated_at"])
    if broadcast.status == Broadcast.Status.SCHEDULED and broadcast.scheduled_at <= now + PAST_GRACE:
        _enqueue_tick()
    return broadcast


def broadcast_approve(*, broadcast: Broadcast, user) -> Broadcast:
    """A manager approves a pending broadcast; it is scheduled (a send time already past means now)."""
    if not can_approve(user):
        raise PermissionDenied(_("Only managers can approve broadcasts."))
    now = timezone.now()
    with transaction.atomic():
        broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
        if broadcast.status != Broadcast.Status.PENDING_APPROVAL:
            raise ValidationError({"status": [_("Only a broadcast pending approval can be approved.")]})
        broadcast.status = Broadcast.Status.SCHEDULED
        broadcast.approved_by, broadcast.approved_at = user, now
        if broadcast.scheduled_at is None or broadcast.scheduled_at < now:
            broadcast.scheduled_at = now
        broadcast.save(update_fields=["status", "approved_by", "approved_at", "scheduled_at", "updated_at"])
    if broadcast.scheduled_at <= now + PAST_GRACE:
        _enqueue_tick()
    return broadcast


def broadcast_reject(*, broadcast: Broadcast, user) -> Broadcast:
    """Send a pending broadcast back to its author as a draft."""
    if not can_approve(user):
        raise PermissionDenied(_("Only managers can reject broadcasts."))
    updated = Broadcast.objects.filter(pk=broadcast.pk, status=Broadcast.Status.PENDING_APPROVAL).update(
        status=Broadcast.Status.DRAFT, updated_at=timezone.now()
    )
    if not updated:
        raise ValidationError({"status": [_("Only a broadcast pending approval can be rejected.")]})
    broadcast.refresh_from_db()
    return broadcast


def broadcast_cancel(*, broadcast: Broadcast, user) -> Broadcast:
    """Stop a broadcast that is not sent yet. Deliveries not yet claimed are suppressed (reason
    "cancelled"); the few already in flight finish. Cancelling twice is harmless."""
    now = timezone.now()
    with transaction.atomic():
        updated = Broadcast.objects.filter(pk=broadcast.pk, status__in=CANCELLABLE).update(
            status=Broadcast.Status.CANCELLED, cancelled_at=now, updated_at=now
        )
        if not updated:
            current = Broadcast.objects.get(pk=broadcast.pk)
            if current.status == Broadcast.Status.CANCELLED:
                return current
            raise ValidationError(
                {
                    "status": [
                        _("A broadcast that is %(status)s cannot be cancelled.")
                        % {"status": current.get_status_display()}
                    ]
                }
            )
        Delivery.objects.filter(broadcast_id=broadcast.pk, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.SUPPRESSED, reason=Delivery.Reason.CANCELLED
        )
    broadcast.refresh_from_db()
    return broadcast


# --- Sending, driven by the periodic tick -----------------------------------------------------


def _enqueue_tick() -> None:
    from .tasks import broadcasts_tick

    transaction.on_commit(lambda: broadcasts_tick.delay())


def _enqueue_senders(broadcast_id: int | None, count: int = SEND_PARALLELISM) -> None:
    from .tasks import deliveries_send

    def enqueue():
        for _i in range(count):
            deliveries_send.delay(broadcast_id)

    transaction.on_commit(enqueue)


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
            planned = sending.broadcast_plan(broadcast=broadcast)
        _enqueue_senders(broadcast.pk)
    return planned


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
    stats["requeued"] = sending.deliveries_requeue_stuck(now=now)
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
    for pk, planned_at, heartbeat_at, started_at in Broadcast.objects.filter(
        status=Broadcast.Status.SENDING
    ).values_list("pk", "planned_at", "heartbeat_at", "started_at"):
        if planned_at is None:
            if started_at is None or started_at < stale:
                transaction.on_commit(lambda pk=pk: broadcast_start_task.delay(pk))
                stats["resumed"] += 1
            continue
        if sending.broadcast_finish_if_done(broadcast_id=pk, now=now):
            stats["finished"] += 1
            continue
        if heartbeat_at is None or heartbeat_at < stale:
            if sending._pending(Q(broadcast_id=pk), now).exists():
                # Only the tick that moves the heartbeat revives the senders: ticks do not pile them up.
                revived = Broadcast.objects.filter(pk=pk, heartbeat_at=heartbeat_at).update(heartbeat_at=now)
                if revived:
                    _enqueue_senders(pk)
                    stats["resumed"] += 1
    if sending._pending(Q(broadcast__isnull=True), now).exists() and cache.add(
        "campaigns:automation-sender", 1, timeout=int(stale_after.total_seconds()) or 1
    ):
        _enqueue_senders(None, count=1)
    return stats


def deliveries_send(*, broadcast_id: int | None, budget: dt.timedelta = dt.timedelta(seconds=20)) -> dict[str, int]:
    """Send chunks of one broadcast (or of the automations) for up to ``budget``; returns the totals and
    whether work is left (the task then enqueues itself again, so a task never runs for long)."""
    deadline = timezone.now() + budget
    total = sending.ChunkResult()
    more = False
    while True:
        result = sending.deliveries_send_chunk(broadcast_id=broadcast_id)
        total += result
        if result.claimed == 0:
            more = False
            break
        if timezone.now() >= deadline:
            more = True
            break
    if not more and broadcast_id:
        sending.broadcast_finish_if_done(broadcast_id=broadcast_id)
    return {**total.__dict__, "more": more}
