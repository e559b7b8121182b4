"""Every write of campaigns, except the two engines: one function per action, named ``<noun>_<verb>``,
with keyword-only arguments, validating everything it is given (``ValidationError`` keyed by field).

* segments: ``segment_create``, ``segment_update``, ``segment_delete`` (author or manager only:
  ``segment_may_change``);
* the script and material library: ``message_template_create``, ``message_template_update``;
* broadcasts: ``broadcast_create``, ``broadcast_update``, ``broadcast_submit``, ``broadcast_approve``,
  ``broadcast_reject``, ``broadcast_cancel``;
* the frequency policy: ``policy_update`` (deliveries the quiet hours hold are released to the new hours);
* one-off messages from a contact's page: ``message_send_one`` (in ``campaigns.oneoff``, re-exported here);
* follow-up tasks made by hand: ``follow_up_task_create``, ``follow_up_task_complete``.

The engines have their own homes: sending a broadcast (the periodic tick, planning, the senders) is
``campaigns.sending``; automations, their writes included, are ``campaigns.automations``.

Broadcast status flow: draft → pending approval (when the author may not approve broadcasts) → scheduled →
sending → sent; cancelled from any state before sent. The "when" lives in ``scheduled_at`` and the
periodic tick claims what is due (no far-future Celery ETAs).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from communities.models import Community
from contacts.models import Contact

from . import content, selectors, sending
from .models import Broadcast, Delivery, FollowUpTask, FrequencyCap, FrequencyPolicy, Medium, MessageTemplate, Segment

User = get_user_model()

from .segments.services import (  # noqa: E402, F401  (re-exported: the app's writes live behind one name)
    LOCKED_STATUSES,
    SEGMENT_EDITABLE_FIELDS,
    segment_create,
    segment_delete,
    segment_may_change,
    segment_update,
)

# --- Message templates -----------------------------------------------------------------------

TEMPLATE_EDITABLE_FIELDS = ("name", "body", "category", "kind", "subject", "is_service", "is_active")


def _template_errors(template: MessageTemplate, *, check_broadcasts: bool) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    try:
        template.full_clean(exclude=["created_by"])
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if "body" not in errors:
        if not template.body.strip():
            errors["body"] = [_("Write the message.")]
        else:
            try:
                content.template_validate(template.body)
            except ValidationError as exc:
                errors.update(exc.message_dict)
    if "subject" not in errors and template.subject:
        try:
            content.template_validate(template.subject, field="subject")
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if check_broadcasts and not errors:
        for broadcast in Broadcast.objects.filter(template=template, status__in=LOCKED_STATUSES).only(
            "name", "status", "variables"
        ):
            for text in (template.body, template.subject):
                try:
                    content.template_validate(text, variables=broadcast.variables or {}, require_variables=True)
                except ValidationError as exc:
                    for message in exc.message_dict.get("variables", []):
                        errors.setdefault("body", []).append(
                            _("The broadcast “%(broadcast)s” (%(status)s) uses this template: %(problem)s")
                            % {
                                "broadcast": broadcast.name,
                                "status": broadcast.get_status_display(),
                                "problem": message,
                            }
                        )
    return errors


def message_template_create(
    *,
    name: str,
    body: str,
    category: str = "",
    kind: str = MessageTemplate.Kind.MESSAGE,
    subject: str = "",
    is_service: bool = False,
    created_by,
) -> MessageTemplate:
    """A new entry of the script and material library, its placeholders checked."""
    template = MessageTemplate(
        name=(name or "").strip(),
        body=body if body is not None else "",
        category=(category or "").strip(),
        kind=kind,
        subject=(subject or "").strip(),
        is_service=is_service,
        created_by=created_by,
    )
    errors = _template_errors(template, check_broadcasts=False)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        template.save()
    return template


def message_template_update(*, template: MessageTemplate, **fields: Any) -> MessageTemplate:
    """Change a template (``TEMPLATE_EDITABLE_FIELDS``). Refused when a broadcast awaiting approval,
    scheduled or sending with it would lack a variable the new text uses."""
    unknown = sorted(set(fields) - set(TEMPLATE_EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({key: [_("This field cannot be set.")] for key in unknown})
    with transaction.atomic():
        locked = MessageTemplate.objects.select_for_update().get(pk=template.pk)
        for key, value in fields.items():
            if key in ("name", "category", "subject") and isinstance(value, str):
                value = value.strip()
            setattr(locked, key, value)
        errors = _template_errors(locked, check_broadcasts=True)
        if errors:
            raise ValidationError(errors)
        locked.save(update_fields=[*fields, "updated_at"])
    for key in (*fields, "updated_at"):
        setattr(template, key, getattr(locked, key))
    return template


# --- Broadcasts ------------------------------------------------------------------------------

# A send time a little in the past is "now" (the form took a while); more than this is a mistake.
PAST_GRACE = dt.timedelta(minutes=1)
EDITABLE = (Broadcast.Status.DRAFT,)
CANCELLABLE = (Broadcast.Status.DRAFT, *LOCKED_STATUSES)


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
        if not selectors.broadcast_audience(broadcast).exists():
            raise ValidationError(
                {"audience": [_("The audience is empty: no contact matches the segment or communities.")]}
            )
        broadcast.scheduled_at = max(when, now)
        # The rules submitted are the rules approved: the approver reviews (and planning uses) this copy.
        broadcast.audience_rules = broadcast.segment.rules if broadcast.segment_id else None
        if can_approve(user):
            broadcast.status = Broadcast.Status.SCHEDULED
            broadcast.approved_by, broadcast.approved_at = user, now
            _freeze_audience(broadcast, now=now)
        else:
            broadcast.status = Broadcast.Status.PENDING_APPROVAL
        broadcast.save(
            update_fields=[
                "scheduled_at",
                "status",
                "approved_by",
                "approved_at",
                "audience_rules",
                "audience_count",
                "audience_frozen_at",
                "updated_at",
            ]
        )
    if broadcast.status == Broadcast.Status.SCHEDULED and broadcast.scheduled_at <= now + PAST_GRACE:
        _enqueue_tick()
    return broadcast


def _freeze_audience(broadcast: Broadcast, *, now: dt.datetime) -> None:
    """Record the audience as approved: its rules (already copied at submission) and its size now."""
    broadcast.audience_count = selectors.broadcast_audience(broadcast).count()
    broadcast.audience_frozen_at = now


def _audience_unfreeze(broadcast: Broadcast) -> None:
    broadcast.audience_rules = None
    broadcast.audience_count = None
    broadcast.audience_frozen_at = None


def broadcast_approve(*, broadcast: Broadcast, user) -> Broadcast:
    """A manager approves a pending broadcast; it is scheduled (a send time already past means now)."""
    if not can_approve(user):
        raise PermissionDenied(_("Only managers can approve broadcasts."))
    now = timezone.now()
    with transaction.atomic():
        broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
        if broadcast.status != Broadcast.Status.PENDING_APPROVAL:
            raise ValidationError({"status": [_("Only a broadcast pending approval can be approved.")]})
        changed = broadcast.segment_id is not None and broadcast.segment.rules != broadcast.audience_rules
        if changed:
            # The segment changed since it was submitted: what the approver reviewed is not what would be
            # sent. Back to its author, who submits it again (and it is reviewed again).
            _audience_unfreeze(broadcast)
            broadcast.status = Broadcast.Status.DRAFT
            broadcast.save(
                update_fields=["status", "audience_rules", "audience_count", "audience_frozen_at", "updated_at"]
            )
        else:
            broadcast.status = Broadcast.Status.SCHEDULED
            broadcast.approved_by, broadcast.approved_at = user, now
            if broadcast.scheduled_at is None or broadcast.scheduled_at < now:
                broadcast.scheduled_at = now
            _freeze_audience(broadcast, now=now)
            broadcast.save(
                update_fields=[
                    "status",
                    "approved_by",
                    "approved_at",
                    "scheduled_at",
                    "audience_count",
                    "audience_frozen_at",
                    "updated_at",
                ]
            )
    if changed:
        raise ValidationError(
            {
                "audience": [
                    _(
                        "The segment's conditions changed after the broadcast was submitted; it is a draft "
                        "again and must be submitted and approved again."
                    )
                ]
            }
        )
    if broadcast.scheduled_at <= now + PAST_GRACE:
        _enqueue_tick()
    return broadcast


def broadcast_reject(*, broadcast: Broadcast, user) -> Broadcast:
    """Send a pending broadcast back to its author as a draft."""
    if not can_approve(user):
        raise PermissionDenied(_("Only managers can reject broadcasts."))
    updated = Broadcast.objects.filter(pk=broadcast.pk, status=Broadcast.Status.PENDING_APPROVAL).update(
        status=Broadcast.Status.DRAFT,
        audience_rules=None,
        audience_count=None,
        audience_frozen_at=None,
        updated_at=timezone.now(),
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


def _enqueue_tick() -> None:
    """Run the sending tick as soon as this transaction commits: a broadcast due now starts without
    waiting for beat's next tick."""
    from .tasks import broadcasts_tick as broadcasts_tick_task

    transaction.on_commit(lambda: broadcasts_tick_task.delay())


# --- Frequency policy ------------------------------------------------------------------------


def policy_update(
    *,
    user,
    quiet_hours_enabled: bool,
    quiet_start: dt.time,
    quiet_end: dt.time,
    exempt_service_messages: bool,
    caps: list[dict],
) -> FrequencyPolicy:
    """Replace the policy and its caps in one transaction. ``caps`` items: ``medium`` ('' = all media),
    ``window`` ('rolling' with ``window_days`` and ``max_messages``, or 'month' with ``max_messages``
    empty for "as many as the month has days")."""
    errors = {}
    cleaned = []
    for index, cap in enumerate(caps):
        medium = cap.get("medium") or ""
        window = cap.get("window") or FrequencyCap.Window.ROLLING
        window_days = cap.get("window_days")
        max_messages = cap.get("max_messages")
        prefix = f"caps[{index}]"
        if medium and medium not in Medium.values:
            errors[f"{prefix}.medium"] = [_("Unknown medium “%(value)s”.") % {"value": medium}]
        if window not in FrequencyCap.Window.values:
            errors[f"{prefix}.window"] = [_("The window is “rolling” or “month”.")]
        elif window == FrequencyCap.Window.ROLLING:
            if not window_days or int(window_days) < 1:
                errors[f"{prefix}.window_days"] = [_("A rolling window needs a number of days (at least 1).")]
            if max_messages in (None, "") or int(max_messages) < 0:
                errors[f"{prefix}.max_messages"] = [_("Say how many messages the window allows.")]
            window_days = int(window_days or 0)
        else:
            window_days = None
        if max_messages not in (None, ""):
            max_messages = int(max_messages)
        else:
            max_messages = None
        cleaned.append(FrequencyCap(medium=medium, window=window, window_days=window_days, max_messages=max_messages))
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        policy = FrequencyPolicy.objects.select_for_update().get_or_create(pk=1)[0]
        policy.quiet_hours_enabled = quiet_hours_enabled
        policy.quiet_start = quiet_start
        policy.quiet_end = quiet_end
        policy.exempt_service_messages = exempt_service_messages
        policy.updated_by = user
        policy.full_clean()
        policy.save()
        FrequencyCap.objects.all().delete()
        FrequencyCap.objects.bulk_create(cleaned)
        # Messages the old quiet hours hold wait for the new ones (or go now): the tick wakes their senders.
        if sending.deliveries_quiet_hours_release(now=timezone.now(), current=policy):
            _enqueue_tick()
    return policy


# --- Follow-up tasks --------------------------------------------------------------------------


def _may_complete(task: FollowUpTask, user: User) -> bool:
    """The task's assignee, or a manager (sees every contact and may change tasks)."""
    if not (user and user.is_authenticated):
        return False
    if FollowUpTask.objects.filter(FollowUpTask.objects.owned_by(user), pk=task.pk).exists():
        return True
    return Contact.objects.sees_all(user) and user.has_perm("campaigns.change_followuptask")


def follow_up_task_create(
    *,
    assignee: User,
    contact: Contact,
    title: str,
    note: str = "",
    due_at: dt.datetime | None = None,
) -> FollowUpTask:
    """A follow-up task made by hand. The assignee must be an active user who may see the contact."""
    errors: dict[str, list[str]] = {}
    title = (title or "").strip() if isinstance(title, str) else ""
    max_title = FollowUpTask._meta.get_field("title").max_length
    if not title:
        errors["title"] = [_("Give the task a title.")]
    elif len(title) > max_title:
        errors["title"] = [_("At most %(max)d characters.") % {"max": max_title}]
    if contact is None or contact.erased_at is not None or contact.merged_into_id is not None:
        errors["contact"] = [_("This contact was erased or merged.")]
    if assignee is None or not getattr(assignee, "is_active", False):
        errors["assignee"] = [_("Choose an active staff member.")]
    elif "contact" not in errors and not Contact.objects.live().visible_to(assignee).filter(pk=contact.pk).exists():
        errors["assignee"] = [_("%(user)s cannot see this contact.") % {"user": assignee.get_username()}]
    if due_at is not None and not isinstance(due_at, dt.datetime):
        errors["due_at"] = [_("Enter a date and time.")]
    if errors:
        raise ValidationError(errors)
    return FollowUpTask.objects.create(assignee=assignee, contact=contact, title=title, note=note or "", due_at=due_at)


def follow_up_task_complete(*, task: FollowUpTask, user: User) -> FollowUpTask:
    """Mark a task done: only its assignee or a manager may. Completing it twice changes nothing."""
    if not _may_complete(task, user):
        raise PermissionDenied(_("Only the assignee or a manager can complete this task."))
    FollowUpTask.objects.filter(pk=task.pk, status=FollowUpTask.Status.OPEN).update(
        status=FollowUpTask.Status.DONE, done_at=timezone.now()
    )
    task.refresh_from_db()
    return task


from .oneoff import OneOffOutcome, message_send_one  # noqa: E402, F401  (re-exported, like the segments' writes)
