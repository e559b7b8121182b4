"""Celery tasks of the WeCom connection. Callback processing runs on its own queue (settings.WECOM_QUEUE):
a welcome message must reach WeCom within 20 s of the add, whatever broadcast work is queued."""

from __future__ import annotations

from celery import shared_task

from . import events, inbox

SYNC_LOCK_TTL = 300  # seconds; a page of the sync takes well under one


@shared_task(acks_late=True)
def callback_process(event_id: int) -> str:
    status = events.callback_process(event_id=event_id)
    if status == "pending":  # WeCom was busy: try again shortly (the sweeper would too)
        callback_process.apply_async((event_id,), countdown=5)
    return status


@shared_task(acks_late=True)
def adds_drain(slot: int) -> int:
    from .adds import adds_drain as drain

    return drain(slot=slot, client=events.worker_client())


@shared_task
def callback_events_sweep() -> int:
    return inbox.callback_events_sweep()


@shared_task
def sync_run(run_id: int | None = None) -> str:
    """Start a full sync (or resume the running one) and carry it to the end. One at a time: a second task
    while one is at work returns at once (the lock expires should its worker die; the run then resumes
    from its last committed page)."""
    from django.core.cache import cache

    from .models import SyncRun
    from .sync import sync_run_continue, sync_run_start

    run = SyncRun.objects.filter(pk=run_id).first() if run_id else None
    run = run or sync_run_start()
    lock = f"scrm:wecom:sync:{run.pk}"
    # Held while pages keep coming: renewed after each one, so a killed worker frees it within
    # LOCK_TTL and the run can be resumed (the connection page offers that after 10 minutes of silence).
    if not cache.add(lock, 1, timeout=SYNC_LOCK_TTL):
        return "already running"
    try:
        return sync_run_continue(run=run, progress=lambda _run: cache.set(lock, 1, timeout=SYNC_LOCK_TTL)).status
    finally:
        cache.delete(lock)


@shared_task(autoretry_for=(Exception,), retry_backoff=10, max_retries=5)
def tags_push(contact_ids: list[int], add_tag_ids: list[int], remove_tag_ids: list[int]) -> dict:
    """Mark tags chosen here on the customers in WeCom (safe to repeat: mark_tag is idempotent)."""
    from .sync_tags import tags_push as push

    outcome = push(contact_ids=contact_ids, add_tag_ids=add_tag_ids, remove_tag_ids=remove_tag_ids)
    if outcome["failed"]:
        raise RuntimeError(f"mark_tag failed for {len(outcome['failed'])} follows; retrying")
    return {"marked": outcome["marked"], "skipped": len(outcome["skipped"])}


@shared_task(autoretry_for=(Exception,), retry_backoff=10, max_retries=5)
def corp_tag_push(tag_id: int) -> str:
    """Create or rename a tag of a linked group in WeCom."""
    from .corp_tags import corp_tag_push as push

    return push(tag_id=tag_id, client=events.worker_client())


@shared_task(autoretry_for=(Exception,), retry_backoff=10, max_retries=5)
def corp_tag_remove(wecom_id: str) -> str:
    """Delete a corp tag in WeCom that was deleted here."""
    from .corp_tags import corp_tag_remove as remove

    return remove(wecom_id=wecom_id, client=events.worker_client())
