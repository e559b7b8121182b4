"""Celery tasks of the WeCom connection. Callback processing runs on its own queue (settings.WECOM_QUEUE):
a welcome message must reach WeCom within 20 s of the add, whatever broadcast work is queued."""

from __future__ import annotations

from celery import shared_task

from . import events, inbox


@shared_task(acks_late=True)
def callback_process(event_id: int) -> str:
    status = events.callback_process(event_id=event_id)
    if status == "pending":  # WeCom was busy: try again shortly (the sweeper would too)
        callback_process.apply_async((event_id,), countdown=5)
    return status


@shared_task
def callback_events_sweep() -> int:
    return inbox.callback_events_sweep()
