"""Celery entry points for campaigns. Each task takes ids and calls one function of an engine (the sending
engine in ``sending``, the automation engine in ``automations``); all are safe to run twice (the delivery
ledger and conditional updates decide what happens, not the task)."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import sending

_TRANSIENT = (OperationalError, InterfaceError)


@shared_task(autoretry_for=_TRANSIENT, retry_backoff=2, retry_backoff_max=60, max_retries=10)
def broadcasts_tick() -> dict[str, int]:
    """Start due broadcasts, revive stalled ones, finish completed ones (every few seconds from beat)."""
    return sending.broadcasts_tick()


@shared_task(autoretry_for=_TRANSIENT, retry_backoff=2, retry_backoff_max=60, max_retries=10)
def broadcast_start(broadcast_id: int) -> int:
    """Plan one broadcast's deliveries and start its senders."""
    return sending.broadcast_start(broadcast_id=broadcast_id)


@shared_task(autoretry_for=_TRANSIENT, retry_backoff=2, retry_backoff_max=60, max_retries=10)
def deliveries_send(broadcast_id: int | None) -> dict[str, int]:
    """Send due deliveries of one broadcast (or of the automations) for a while, then hand over to a
    fresh task if work is left."""
    result = sending.deliveries_send(broadcast_id=broadcast_id)
    if result["more"]:
        deliveries_send.delay(broadcast_id)
    return result


@shared_task(autoretry_for=_TRANSIENT, retry_backoff=2, retry_backoff_max=60, max_retries=10)
def automations_tick() -> dict[str, dict[str, int]]:
    """Write the runs of new trigger events, then act on the runs that are due (every minute from beat;
    harmless when run twice at once: the runs' unique key and SKIP LOCKED claims decide)."""
    from .automations import automation_runs_process, automations_scan

    return {"scan": automations_scan(), "process": automation_runs_process()}


@shared_task(autoretry_for=_TRANSIENT, retry_backoff=2, retry_backoff_max=60, max_retries=10)
def follow_up_reminders_tick() -> int:
    """Mark the open follow-up tasks whose reminder time has passed as reminded, so that they head their
    assignee's "My tasks" (every minute from beat; one conditional UPDATE, harmless when run twice)."""
    from .followups import follow_up_reminders_mark

    return follow_up_reminders_mark()
