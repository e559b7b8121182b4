"""Processing due runs: claim a chunk of waiting runs whose time has come, drop those that no longer
apply (contact gone, condition not met, order refunded or product bought again), and apply each
automation's action to the rest with one statement per automation, all in one transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Value
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from contacts.models import Contact, ContactTag, Purchase
from contacts.services import contacts_reassign, contacts_tag, contacts_untag
from scrm.sql import insert_select

from ..models import Automation, AutomationRun, Delivery, FollowUpTask
from ..segments import segment_q
from .triggers import PRODUCT_TRIGGERS, later_paid_purchase, live_contact_q

logger = logging.getLogger(__name__)

Trigger = Automation.Trigger
Action = Automation.Action
RunStatus = AutomationRun.Status

PROCESS_CHUNK = getattr(settings, "SCRM_AUTOMATION_CHUNK", 1000)
# One call of automation_runs_process stops claiming new chunks after this; the next tick goes on.
PROCESS_BUDGET = dt.timedelta(seconds=45)
TASK_DUE_AFTER = dt.timedelta(days=1)

# Run errors are stored untranslated (marked for translation) and translated where they are shown.
ERROR_GONE = gettext_noop("contact erased or merged")
ERROR_CONDITION = gettext_noop("condition not met")
ERROR_REFUNDED = gettext_noop("purchase refunded")
ERROR_BOUGHT_AGAIN = gettext_noop("product bought again")
ERROR_NO_OWNER = gettext_noop("no owner")
ERROR_NO_TEMPLATE = gettext_noop("the template is missing or archived")
ERROR_NO_TAG = gettext_noop("no tag configured")
ERROR_NO_OWNER_CONFIGURED = gettext_noop("no owner configured")
ERROR_BAD_CONDITION = gettext_noop("the condition segment is invalid")

_TRANSIENT = (OperationalError, InterfaceError)


# --- Actions -----------------------------------------------------------------------------------


class _ActionFailed(Exception):
    """The action cannot be applied (its configuration went bad since it was saved); the runs fail."""


def _finish(runs: QuerySet[AutomationRun], status: str, *, now: dt.datetime, error: str = "") -> int:
    return runs.update(status=status, error=error[:2000], finished_at=now)


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(str(message) for message in exc.messages)
    return str(exc) or type(exc).__name__


def _send_template(automation: Automation, runs: QuerySet[AutomationRun], *, now: dt.datetime) -> dict[str, int]:
    template = automation.template
    if template is None or not template.is_active:
        raise _ActionFailed(ERROR_NO_TEMPLATE)
    written = insert_select(
        Delivery,
        runs,
        {
            "automation_run_id": F("pk"),
            "contact_id": F("contact_id"),
            "medium": Value(automation.medium),
            "template_id": Value(template.pk),
            "is_marketing": Value(not template.is_service),
            "status": Value(Delivery.Status.PENDING),
            "reason": Value(""),
            "attempts": Value(0),
            "created_at": Value(timezone.now()),
            "error": Value(""),
            "gateway": Value(""),
            "gateway_message_id": Value(""),
            "gateway_state": Value(""),
        },
    )
    return {"deliveries": written}


def _contact_ids(runs: QuerySet[AutomationRun]) -> list[int]:
    # Bounded by the chunk size.
    return sorted(set(runs.values_list("contact_id", flat=True)))


def _add_tag(automation: Automation, runs: QuerySet[AutomationRun], *, now: dt.datetime) -> dict[str, int]:
    if automation.tag is None:
        raise _ActionFailed(ERROR_NO_TAG)
    contacts_tag(contact_ids=_contact_ids(runs), tags=[automation.tag], source=ContactTag.Source.AUTOMATION)
    return {}


def _remove_tag(automation: Automation, runs: QuerySet[AutomationRun], *, now: dt.datetime) -> dict[str, int]:
    if automation.tag is None:
        raise _ActionFailed(ERROR_NO_TAG)
    contacts_untag(contact_ids=_contact_ids(runs), tags=[automation.tag])
    return {}


def _assign_owner(automation: Automation, runs: QuerySet[AutomationRun], *, now: dt.datetime) -> dict[str, int]:
    if automation.owner is None:
        raise _ActionFailed(ERROR_NO_OWNER_CONFIGURED)
    contacts_reassign(contacts=Contact.objects.filter(pk__in=runs.values("contact_id")), owner=automation.owner)
    return {}


def _create_task(automation: Automation, runs: QuerySet[AutomationRun], *, now: dt.datetime) -> dict[str, int]:
    # The task goes to the contact's owner; a contact nobody (active) owns has no one to follow up.
    skipped = _finish(
        runs.filter(Q(contact__owner__isnull=True) | Q(contact__owner__is_active=False)),
        RunStatus.SKIPPED,
        now=now,
        error=ERROR_NO_OWNER,
    )
    note = _("Created by the automation “%(name)s”.") % {"name": automation.name}
    written = insert_select(
        FollowUpTask,
        runs,
        {
            "assignee_id": F("contact__owner_id"),
            "contact_id": F("contact_id"),
            "title": Value(automation.task_title or automation.name),
            "note": Value(note),
            "due_at": Value(now + TASK_DUE_AFTER),
            "status": Value(FollowUpTask.Status.OPEN),
            "automation_run_id": F("pk"),
            "created_at": Value(timezone.now()),
        },
    )
    return {"tasks": written, "skipped": skipped}


_ACTIONS: dict[str, Callable[..., dict[str, int]]] = {
    Action.SEND_TEMPLATE: _send_template,
    Action.ADD_TAG: _add_tag,
    Action.REMOVE_TAG: _remove_tag,
    Action.ASSIGN_OWNER: _assign_owner,
    Action.CREATE_TASK: _create_task,
}


# --- Claiming and applying ---------------------------------------------------------------------


def _apply(automation: Automation, runs: QuerySet[AutomationRun], *, now: dt.datetime, stats: dict[str, int]) -> None:
    """Check the claimed runs of one automation and act on those that pass; every run leaves ``running``."""
    stats["skipped"] += _finish(runs.filter(~live_contact_q("contact__")), RunStatus.SKIPPED, now=now, error=ERROR_GONE)
    if automation.condition_id:
        try:
            condition = segment_q(automation.condition.rules, now=now)
        except ValidationError:
            stats["failed"] += _finish(runs, RunStatus.FAILED, now=now, error=ERROR_BAD_CONDITION)
            return
        matching = Contact.objects.filter(condition).filter(pk=OuterRef("contact_id"))
        stats["skipped"] += _finish(runs.filter(~Exists(matching)), RunStatus.SKIPPED, now=now, error=ERROR_CONDITION)
    if automation.trigger in PRODUCT_TRIGGERS:
        # Fire-time re-check: an order refunded meanwhile gets no thank-you or reminder.
        stats["skipped"] += _finish(
            runs.filter(purchase__isnull=False).exclude(purchase__status=Purchase.Status.PAID),
            RunStatus.SKIPPED,
            now=now,
            error=ERROR_REFUNDED,
        )
    if automation.trigger == Trigger.REPURCHASE_DUE:
        rebought = later_paid_purchase(
            contact="purchase__contact_id",
            product="product_id",
            purchased_at="purchase__purchased_at",
            purchase="purchase_id",
        )
        stats["skipped"] += _finish(
            runs.filter(product__isnull=False).filter(rebought), RunStatus.SKIPPED, now=now, error=ERROR_BOUGHT_AGAIN
        )
    try:
        with transaction.atomic():
            effects = _ACTIONS[automation.action](automation, runs, now=now)
    except _TRANSIENT:
        raise
    except _ActionFailed as exc:
        stats["failed"] += _finish(runs, RunStatus.FAILED, now=now, error=str(exc))
        return
    except Exception as exc:  # a bad configuration must fail its runs, not block the whole queue
        logger.exception("automation %s: the action failed", automation.pk)
        stats["failed"] += _finish(runs, RunStatus.FAILED, now=now, error=_error_text(exc))
        return
    for name, count in effects.items():
        stats[name] += count
    stats["done"] += _finish(runs, RunStatus.DONE, now=now)


def _process_chunk(*, now: dt.datetime, chunk_size: int) -> dict[str, int]:
    """Claim up to ``chunk_size`` due runs and see each to an end, all in one transaction."""
    stats = {"claimed": 0, "done": 0, "skipped": 0, "failed": 0, "deliveries": 0, "tasks": 0}
    with transaction.atomic():
        ids = list(
            AutomationRun.objects.filter(status=RunStatus.WAITING, due_at__lte=now, automation__is_active=True)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("due_at", "pk")
            .values_list("pk", flat=True)[:chunk_size]
        )
        if not ids:
            return stats
        AutomationRun.objects.filter(pk__in=ids, status=RunStatus.WAITING).update(status=RunStatus.RUNNING)
        claimed = AutomationRun.objects.filter(pk__in=ids, status=RunStatus.RUNNING)
        automation_ids = sorted(set(claimed.values_list("automation_id", flat=True)))
        stats["claimed"] = len(ids)
        automations = Automation.objects.filter(pk__in=automation_ids).select_related(
            "template", "tag__group", "owner", "condition"
        )
        for automation in automations.order_by("pk"):
            _apply(automation, claimed.filter(automation_id=automation.pk), now=now, stats=stats)
    return stats


def automation_runs_process(*, now: dt.datetime | None = None, chunk_size: int = PROCESS_CHUNK) -> dict[str, int]:
    """Act on the runs that are due, chunk by chunk, until none is left or ``PROCESS_BUDGET`` is spent.
    Returns the counts: claimed, done, skipped, failed, deliveries and tasks written. Harmless when run
    twice at once (each chunk claims with ``SKIP LOCKED`` and acts only on rows it moved to ``running``)."""
    now = now or timezone.now()
    totals = {"claimed": 0, "done": 0, "skipped": 0, "failed": 0, "deliveries": 0, "tasks": 0}
    deadline = time.monotonic() + PROCESS_BUDGET.total_seconds()
    while True:
        stats = _process_chunk(now=now, chunk_size=chunk_size)
        for name, count in stats.items():
            totals[name] += count
        if stats["claimed"] < chunk_size or time.monotonic() >= deadline:
            break
    # The automation deliveries are sent by the sender the broadcasts tick starts for them (every few seconds).
    return totals
