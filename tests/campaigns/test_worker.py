"""The exactly-once guarantee with real Celery worker processes (PostgreSQL; Redis as broker when
REDIS_URL is set): a worker SIGKILLed in the middle of a 10,000-recipient broadcast, then restarted."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

import pytest
from django.db.models import Count
from django.utils import timezone

from campaigns import sending, services
from campaigns.models import Broadcast, Delivery, FrequencyPolicy, MessageTemplate, OutboxMessage, Segment
from contacts.models import Contact
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres]

ELIGIBLE = 10_000


def _wait_for(predicate, *, timeout: float, interval: float = 0.02, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_a_worker_killed_mid_broadcast_loses_nothing_and_sends_nothing_twice(celery_worker_process):
    # Small chunks, so the kill lands in the middle of the send.
    small_chunks = {"SCRM_SEND_CHUNK": "100"}
    FrequencyPolicy.objects.update_or_create(pk=1, defaults={"quiet_hours_enabled": False})
    manager = UserFactory(username="mgr", role="manager")
    now = timezone.now()
    Contact.objects.bulk_create(
        [Contact(name=f"客户{i}", acquired_at=now, marketing_consent=True) for i in range(ELIGIBLE)]
        + [Contact(name=f"未授权{i}", acquired_at=now, marketing_consent=False) for i in range(200)]
        + [Contact(name=f"退订{i}", acquired_at=now, marketing_consent=True, opted_out_at=now) for i in range(100)],
        batch_size=2000,
    )
    template = MessageTemplate.objects.create(name="Promo", body="{name}，会员日满199减50")
    segment = Segment.objects.create(name="Everyone", rules={"op": "and", "rules": []})
    broadcast = services.broadcast_create(created_by=manager, name="会员日", template=template, segment=segment)
    services.broadcast_submit(broadcast=broadcast, user=manager)

    first = celery_worker_process(concurrency=2, extra_env=small_chunks)
    sending.broadcasts_tick()
    sent = Delivery.objects.filter(broadcast=broadcast, status=Delivery.Status.SENT)
    _wait_for(lambda: sent.count() >= 1000, timeout=120, what="the first thousand messages")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    at_kill = sent.count()
    assert 0 < at_kill < ELIGIBLE, f"the kill must land mid-send, not after it ({at_kill} sent)"
    assert Broadcast.objects.get(pk=broadcast.pk).status == Broadcast.Status.SENDING

    celery_worker_process(concurrency=2, extra_env=small_chunks)

    def finished():
        # What beat does every few seconds; "stale" at once so the test need not wait a minute.
        sending.broadcasts_tick(stale_after=dt.timedelta(seconds=0))
        return Broadcast.objects.get(pk=broadcast.pk).status == Broadcast.Status.SENT

    _wait_for(finished, timeout=180, interval=1.0, what="the broadcast to finish after the restart")

    statuses = dict(
        Delivery.objects.filter(broadcast=broadcast).values_list("status").annotate(n=Count("id")).order_by()
    )
    assert statuses == {Delivery.Status.SENT: ELIGIBLE, Delivery.Status.SUPPRESSED: 300}
    eligible_ids = set(
        Contact.objects.filter(marketing_consent=True, opted_out_at__isnull=True).values_list("pk", flat=True)
    )
    assert set(sent.values_list("contact_id", flat=True)) == eligible_ids
    assert OutboxMessage.objects.count() == ELIGIBLE
    duplicates = OutboxMessage.objects.values("contact_id").annotate(n=Count("id")).filter(n__gt=1)
    assert not duplicates.exists()
    assert set(OutboxMessage.objects.values_list("contact_id", flat=True)) == eligible_ids
