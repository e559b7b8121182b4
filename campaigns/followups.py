"""Follow-up tasks (跟进任务) as a daily tool: made by hand for one contact or many, reminded, and
completed with an outcome that lands on the contact's timeline.

Writes:

* ``follow_up_tasks_create``: one open task per chosen contact (the contact list's bulk action), in one
  ``INSERT … SELECT``; the assignee defaults to each contact's owner.
* ``follow_up_task_add``: one task for one contact (the task forms, ``POST /api/v1/tasks/``); the same
  checks.
* ``follow_up_task_finish``: complete a task with an outcome; records a ``task_done`` touchpoint.
* ``follow_up_reminders_mark``: the beat tick that stamps the tasks whose reminder time has passed.

Reads for the task pages (counts per view and per staff member, the reminders block) are at the end.
``campaigns.services.follow_up_task_create`` / ``follow_up_task_complete`` stay where they are (the
automations and WeCom events call them); completing goes through the latter, so who may complete a task
is decided in one place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Case, Count, DateTimeField, Exists, F, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import Contact, Touchpoint
from contacts.services import touchpoint_record
from scrm import limits
from scrm.sql import insert_select

from . import services
from .models import FollowUpTask

User = get_user_model()

TITLE_MAX_LENGTH = FollowUpTask._meta.get_field("title").max_length
#: Ids per ``INSERT … SELECT``: SQLite caps the parameters of one statement.
CREATE_CHUNK = 5000
#: How many reminders the top of "My tasks" lists.
REMINDERS_SHOWN = 20


# --- Checks shared by the writes -------------------------------------------------------------------


def _aware(value: Any, field: str, errors: dict[str, list[str]]) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, dt.datetime):
        errors[field] = [_("Enter a date and time.")]
        return None
    try:
        limits.date_check(value)
    except ValidationError as exc:
        errors[field] = exc.messages
        return None
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def _task_fields_clean(*, title: Any, note: Any, due_at: Any, remind_at: Any) -> dict[str, Any]:
    """The task's own fields, checked: a title (required, ≤ 200 characters), a note, due and reminder
    times within the accepted date range. Raises one ValidationError naming every bad field."""
    errors: dict[str, list[str]] = {}
    title = title.strip() if isinstance(title, str) else ""
    if not title:
        errors["title"] = [_("Give the task a title.")]
    elif len(title) > TITLE_MAX_LENGTH:
        errors["title"] = [_("At most %(max)d characters.") % {"max": TITLE_MAX_LENGTH}]
    note = (note or "").strip() if isinstance(note, str) or note is None else None
    if note is None:
        errors["note"] = [_("Enter text.")]
    elif len(note) > limits.TEXT_MAX_LENGTH:
        errors["note"] = [_("At most %(max)d characters.") % {"max": limits.TEXT_MAX_LENGTH}]
    for field, value in (("title", title), ("note", note)):
        if field not in errors:
            try:
                limits.text_check(value)
            except ValidationError as exc:
                errors[field] = exc.messages
    due_at = _aware(due_at, "due_at", errors)
    remind_at = _aware(remind_at, "remind_at", errors)
    if errors:
        raise ValidationError(errors)
    return {"title": title, "note": note, "due_at": due_at, "remind_at": remind_at}


def may_assign_to_others(actor: User) -> bool:
    """Whether ``actor`` may give tasks to other staff: those who see every contact (managers), as
    ``AssignableUserField`` decides for the API. Everyone else assigns only to themselves."""
    return Contact.objects.sees_all(actor)


def _assignee_check(actor: User, assignee: User | None) -> None:
    """An explicit assignee must be an active user the actor may assign: anyone for managers, else only
    themselves. Another user reads like an unknown one (no hint of who exists)."""
    if assignee is None:
        return
    allowed = getattr(assignee, "is_active", False) and (assignee.pk == actor.pk or may_assign_to_others(actor))
    if not allowed:
        raise ValidationError({"assignee": [_("Choose an active staff member you may assign tasks to.")]})


def _identical_open_task(contact_ref, *, title: str, due_at: dt.datetime | None) -> Exists:
    """An open task with the same title and due time on the contact: a retry, or a double click."""
    return Exists(
        FollowUpTask.objects.filter(contact_id=contact_ref, status=FollowUpTask.Status.OPEN, title=title, due_at=due_at)
    )


# --- Creating ----------------------------------------------------------------------------------------


def follow_up_tasks_create(
    *,
    actor: User,
    contact_ids: Iterable[int],
    title: str,
    due_at: dt.datetime | None = None,
    note: str = "",
    assignee: User | None = None,
    remind_at: dt.datetime | None = None,
) -> int:
    """One open task per contact in ``contact_ids`` that ``actor`` may see (others are ignored, like
    unknown ids); returns how many were created.

    The assignee is ``assignee`` when given (an active user the actor may assign, who must see every one
    of the contacts), else each contact's owner, or the actor for a contact with no active owner (for an
    operator that is always themselves). Set-based: one ``INSERT … SELECT`` per 5,000 ids, in one
    transaction. Safe to retry: a contact that already has an open task with the same title and due time
    gets no second one. Bad input raises a ValidationError and writes nothing."""
    if actor is None or not actor.is_authenticated:
        raise ValidationError({"actor": [_("Sign in first.")]})
    try:
        ids = sorted({int(pk) for pk in contact_ids})
    except (TypeError, ValueError) as exc:
        raise ValidationError({"contact_ids": [_("Enter a list of contact ids.")]}) from exc
    if not ids:
        raise ValidationError({"contact_ids": [_("Choose at least one contact.")]})
    values = _task_fields_clean(title=title, note=note, due_at=due_at, remind_at=remind_at)
    _assignee_check(actor, assignee)
    contacts = Contact.objects.live().visible_to(actor).filter(erased_at__isnull=True)
    if assignee is not None and assignee.pk != actor.pk and _any_hidden_from(assignee, contacts, ids):
        raise ValidationError(
            {"assignee": [_("%(user)s cannot see all of these contacts.") % {"user": assignee.get_username()}]}
        )
    if assignee is not None:
        assignee_expression = Value(assignee.pk)
    else:
        assignee_expression = Case(
            When(owner__is_active=True, then=F("owner_id")), default=Value(actor.pk), output_field=Contact.owner.field
        )
    now = timezone.now()
    created = 0
    with transaction.atomic():
        for start in range(0, len(ids), CREATE_CHUNK):
            rows = contacts.filter(pk__in=ids[start : start + CREATE_CHUNK]).filter(
                ~_identical_open_task(OuterRef("pk"), title=values["title"], due_at=values["due_at"])
            )
            created += insert_select(
                FollowUpTask,
                rows,
                {
                    "assignee_id": assignee_expression,
                    "contact_id": F("pk"),
                    "title": Value(values["title"]),
                    "note": Value(values["note"]),
                    "due_at": _datetime_value(values["due_at"]),
                    "remind_at": _datetime_value(values["remind_at"]),
                    "status": Value(FollowUpTask.Status.OPEN),
                    "outcome": Value(""),
                    "created_by_id": Value(actor.pk),
                    "created_at": Value(now),
                },
            )
    return created


def _any_hidden_from(assignee: User, contacts: QuerySet[Contact], ids: list[int]) -> bool:
    """Whether any of the chosen contacts (among ``contacts``, the actor's) is one ``assignee`` cannot see."""
    if Contact.objects.sees_all(assignee):
        return False
    for start in range(0, len(ids), CREATE_CHUNK):
        chunk = contacts.filter(pk__in=ids[start : start + CREATE_CHUNK])
        if chunk.exclude(pk__in=Contact.objects.visible_to(assignee).values("pk")).exists():
            return True
    return False


def follow_up_task_add(
    *,
    actor: User,
    contact: Contact,
    title: str,
    due_at: dt.datetime | None = None,
    remind_at: dt.datetime | None = None,
    note: str = "",
    assignee: User | None = None,
) -> FollowUpTask:
    """One task about one contact, with the checks of ``follow_up_tasks_create``; the contact must be one
    the actor may see (else it reads as unknown). Sending the same task again returns the open one."""
    errors: dict[str, list[str]] = {}
    try:
        values = _task_fields_clean(title=title, note=note, due_at=due_at, remind_at=remind_at)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        _assignee_check(actor, assignee)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    visible = Contact.objects.live().visible_to(actor).filter(erased_at__isnull=True)
    if contact is None or not visible.filter(pk=contact.pk).exists():
        errors["contact"] = [_("Unknown contact.")]
    if errors:
        raise ValidationError(errors)
    if assignee is None:
        owner = contact.owner
        assignee = owner if owner is not None and owner.is_active else actor
    elif not Contact.objects.visible_to(assignee).filter(pk=contact.pk).exists():
        raise ValidationError(
            {"assignee": [_("%(user)s cannot see this contact.") % {"user": assignee.get_username()}]}
        )
    with transaction.atomic():
        Contact.objects.select_for_update().filter(pk=contact.pk).first()
        existing = FollowUpTask.objects.filter(
            contact=contact, status=FollowUpTask.Status.OPEN, title=values["title"], due_at=values["due_at"]
        ).first()
        if existing is not None:
            return existing
        return FollowUpTask.objects.create(assignee=assignee, contact=contact, created_by=actor, **values)


# --- Completing --------------------------------------------------------------------------------------


def follow_up_task_finish(
    *,
    task: FollowUpTask,
    user: User,
    outcome: str = "",
    medium: str = Touchpoint.Medium.WECOM,
    occurred_at: dt.datetime | None = None,
) -> FollowUpTask:
    """Complete a task with what came of it (跟进结果): the outcome is kept on the task and a ``task_done``
    touchpoint (title and outcome in its metadata, ``staff`` the user, at ``occurred_at``, default now)
    goes on the contact's timeline. Only the assignee or a manager may (``services.follow_up_task_complete``
    decides). Completing a task twice changes nothing and records nothing more."""
    errors: dict[str, list[str]] = {}
    if occurred_at is not None:
        try:
            limits.date_check(occurred_at)
            limits.not_in_future_check(occurred_at)
        except ValidationError as exc:
            errors["occurred_at"] = exc.messages
    outcome = outcome.strip() if isinstance(outcome, str) else (None if outcome is not None else "")
    if outcome is None:
        errors["outcome"] = [_("Enter text.")]
    elif len(outcome) > limits.TEXT_MAX_LENGTH:
        errors["outcome"] = [_("At most %(max)d characters.") % {"max": limits.TEXT_MAX_LENGTH}]
    else:
        try:
            limits.text_check(outcome)
        except ValidationError as exc:
            errors["outcome"] = exc.messages
    if medium not in Touchpoint.Medium.values:
        errors["medium"] = [_("Unknown medium “%(value)s”.") % {"value": medium}]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        locked = FollowUpTask.objects.select_for_update().select_related("contact").get(pk=task.pk)
        was_open = locked.status == FollowUpTask.Status.OPEN
        services.follow_up_task_complete(task=locked, user=user)
        if was_open:
            FollowUpTask.objects.filter(pk=locked.pk).update(outcome=outcome, completed_by=user)
            contact = locked.contact
            if contact.erased_at is None:
                touchpoint_record(
                    contact=contact,
                    medium=medium,
                    kind=Touchpoint.Kind.TASK_DONE,
                    occurred_at=occurred_at,
                    staff=user,
                    metadata={"task": locked.pk, "title": locked.title, "outcome": outcome},
                )
    task.refresh_from_db()
    return task


# --- Reminders ---------------------------------------------------------------------------------------


def follow_up_reminders_mark(*, now: dt.datetime | None = None) -> int:
    """Stamp ``reminded_at`` on every open task whose reminder time has passed; returns how many. One
    conditional UPDATE: harmless when beat runs it twice at once (the second finds nothing to stamp)."""
    now = now or timezone.now()
    return FollowUpTask.objects.filter(
        status=FollowUpTask.Status.OPEN, reminded_at__isnull=True, remind_at__isnull=False, remind_at__lte=now
    ).update(reminded_at=now)


# --- Erasure -----------------------------------------------------------------------------------------


def _datetime_value(value):
    """A datetime (or NULL) in an INSERT … SELECT list. PostgreSQL types a bare NULL there as text, so it is
    cast; SQLite's CAST would cut the microseconds, so there the value goes as it is."""
    if connection.vendor == "postgresql":
        return Cast(Value(value), DateTimeField())
    return Value(value, output_field=DateTimeField())


# --- Reads for the task pages ------------------------------------------------------------------------


class TaskView:
    """The task list's views: one's own open tasks, those due today, the overdue ones, everyone's."""

    MINE = "mine"
    TODAY = "today"
    OVERDUE = "overdue"
    ALL = "all"


def business_day(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """Today in the business time zone, as [start, end)."""
    now = timezone.localtime(now or timezone.now())
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + dt.timedelta(days=1)


def task_view_q(view: str, *, user: User, now: dt.datetime) -> Q:
    """The condition of a view (see ``TaskView``) over the tasks ``user`` may see. "Today" and "overdue"
    are open tasks; "mine" and "all" leave the status to the status filter."""
    start, end = business_day(now)
    if view == TaskView.TODAY:
        return Q(status=FollowUpTask.Status.OPEN, due_at__gte=start, due_at__lt=end)
    if view == TaskView.OVERDUE:
        return Q(status=FollowUpTask.Status.OPEN, due_at__lt=now)
    if view == TaskView.MINE:
        return Q(assignee=user)
    return Q()


def task_counts(user: User, *, now: dt.datetime | None = None) -> dict[str, int]:
    """The open tasks of each view, for the tabs: one aggregate query. "Today" and "overdue" count the
    user's own; "all" counts every open task the user may see."""
    now = now or timezone.now()
    start, end = business_day(now)
    mine = Q(assignee=user)
    return (
        FollowUpTask.objects.visible_to(user)
        .filter(status=FollowUpTask.Status.OPEN)
        .aggregate(
            mine=Count("pk", filter=mine),
            today=Count("pk", filter=mine & Q(due_at__gte=start, due_at__lt=end)),
            overdue=Count("pk", filter=mine & Q(due_at__lt=now)),
            reminders=Count("pk", filter=mine & Q(reminded_at__isnull=False)),
            all=Count("pk"),
        )
    )


def task_counts_by_staff(user: User, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Open tasks per assignee (managers' "by staff" table): open, due today, overdue; one grouped query,
    the most overdue first."""
    now = now or timezone.now()
    start, end = business_day(now)
    rows = (
        FollowUpTask.objects.visible_to(user)
        .filter(status=FollowUpTask.Status.OPEN)
        .values("assignee", "assignee__username", "assignee__first_name", "assignee__last_name")
        .annotate(
            open=Count("pk"),
            today=Count("pk", filter=Q(due_at__gte=start, due_at__lt=end)),
            overdue=Count("pk", filter=Q(due_at__lt=now)),
        )
        .order_by("-overdue", "-open", "assignee__username")
    )
    return [
        {
            "assignee": row["assignee"],
            "name": f"{row['assignee__first_name']} {row['assignee__last_name']}".strip() or row["assignee__username"],
            "open": row["open"],
            "today": row["today"],
            "overdue": row["overdue"],
        }
        for row in rows
    ]


def task_reminders(user: User) -> QuerySet[FollowUpTask]:
    """The user's own open tasks whose reminder has fired, the earliest first (the top of "My tasks")."""
    return (
        FollowUpTask.objects.visible_to(user)
        .filter(assignee=user, status=FollowUpTask.Status.OPEN, reminded_at__isnull=False)
        .select_related("contact")
        .order_by("remind_at", "pk")[:REMINDERS_SHOWN]
    )


def contact_open_tasks(user: User, contact: Contact) -> QuerySet[FollowUpTask]:
    """The open tasks about one contact that ``user`` may see (the contact page), soonest due first."""
    return (
        FollowUpTask.objects.visible_to(user)
        .filter(contact=contact, status=FollowUpTask.Status.OPEN)
        .select_related("assignee")
        .order_by(F("due_at").asc(nulls_last=True), "pk")
    )
