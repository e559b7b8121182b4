"""WeCom intake end to end with real processes: the stand-in pushes signed, encrypted callbacks over HTTP
to the live server, a real Celery worker on the ``wecom`` queue processes them against the stand-in, and
the worker is SIGKILLed in the middle of the burst, then restarted (PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db.models import Count
from django.utils import timezone

from campaigns.models import Delivery, MessageTemplate
from contacts.models import Contact, Touchpoint
from tests.factories import ChannelFactory, TagFactory, UserFactory
from wecom import inbox
from wecom.adds import SEND_THREADS
from wecom.livecodes import PoolMember, live_code_create
from wecom.models import CallbackEvent, FollowRelationship, StaffAccount
from wecom.standin import WeComStandIn, serve

pytestmark = [pytest.mark.postgres]

CORP_ID = "ww-e2e"
SECRET = "e2e-secret"
TOKEN = "e2e-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SCANS = 240


def _wait_for(predicate, *, timeout: float, interval: float = 0.05, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def standin():
    fake = WeComStandIn(corp_id=CORP_ID, corp_secret=SECRET, token=TOKEN, encoding_aes_key=AES_KEY, staff=["mgr"])
    server, base = serve(fake)
    yield fake, base
    server.shutdown()
    server.server_close()


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_a_burst_of_adds_with_the_worker_killed_midway_is_processed_exactly_once(
    celery_worker_process, live_server, standin, settings
):
    fake, base = standin
    env = {
        "WECOM_API_BASE": f"{base}/cgi-bin",
        "WECOM_CORP_ID": CORP_ID,
        "WECOM_CORP_SECRET": SECRET,
        "WECOM_CALLBACK_TOKEN": TOKEN,
        "WECOM_ENCODING_AES_KEY": AES_KEY,
    }
    for key, value in env.items():
        setattr(settings, key, value)
    manager = UserFactory(username="mgr", role="manager")
    staff = StaffAccount.objects.create(userid="mgr", user=manager)
    code = live_code_create(
        actor=manager,
        name="门店海报",
        channel=ChannelFactory(name="线下门店"),
        pool=[PoolMember(staff)],
        tags=[TagFactory(name="门店")],
        welcome_template=MessageTemplate.objects.create(
            name="欢迎语", body="{name} 你好，欢迎来到门店", is_service=True
        ),
    )
    assert code.config_id and code.state

    worker = celery_worker_process(concurrency=2, queue="wecom", extra_env=env)
    callback_url = f"{live_server.url}/wecom/callback/"

    def scan(i: int) -> int:
        answer = _post(f"{base}/standin/scan", {"state": code.state, "name": f"顾客{i}", "callback_url": callback_url})
        return answer["callback_status"]

    done = CallbackEvent.objects.filter(status=CallbackEvent.Status.DONE)
    with ThreadPoolExecutor(max_workers=10) as pool:
        first_half = list(pool.map(scan, range(SCANS // 2)))
        _wait_for(lambda: done.count() >= 30, timeout=60, what="the worker to process the first events")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        at_kill = done.count()
        second_half = list(pool.map(scan, range(SCANS // 2, SCANS)))
    assert Counter(first_half + second_half) == {200: SCANS}  # every callback answered at once
    assert at_kill < SCANS, "the kill must land mid-burst"

    # What beat's sweeper does: rows the dead worker held go back to the queue (stale at once here).
    inbox.callback_events_sweep(now=timezone.now() + inbox.STUCK_AFTER + dt.timedelta(seconds=1))
    celery_worker_process(concurrency=2, queue="wecom", extra_env=env)
    _wait_for(lambda: done.count() == SCANS, timeout=180, interval=0.5, what="every event to be processed")
    # The last batches' welcomes go out after their commit: wait until the unfinished ones stop changing
    # (what is left then is the dead worker's), then let the sweeper expire those never started.
    unfinished = Delivery.objects.filter(
        welcome_code__isnull=False, status__in=[Delivery.Status.PENDING, Delivery.Status.SENDING]
    )
    seen = []

    def settled():
        seen.append(sorted(unfinished.values_list("pk", "status")))
        return len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]

    _wait_for(settled, timeout=60, interval=0.5, what="the last welcomes to be sent")
    inbox.callback_events_sweep(now=timezone.now() + dt.timedelta(seconds=21))

    assert CallbackEvent.objects.count() == SCANS
    assert Contact.objects.count() == SCANS
    assert FollowRelationship.objects.filter(live_code=code, deleted_at__isnull=True).count() == SCANS
    adds = Touchpoint.objects.filter(kind=Touchpoint.Kind.ADD_FRIEND)
    assert adds.count() == SCANS
    assert not adds.values("contact_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert Contact.objects.filter(channel=code.channel, owner=manager, tag_links__tag__name="门店").count() == SCANS

    # Welcomes: one ledger row per WelcomeCode; none accepted by WeCom twice; every "sent" row was accepted;
    # an accepted one not recorded as sent was in flight when the worker died, and says so ("sending").
    welcome_rows = Delivery.objects.filter(welcome_code__isnull=False)
    assert welcome_rows.count() == SCANS
    accepted = [w["welcome_code"] for w in fake.welcomes]
    assert len(accepted) == len(set(accepted))
    sent = set(welcome_rows.filter(status=Delivery.Status.SENT).values_list("welcome_code", flat=True))
    in_doubt = set(welcome_rows.filter(status=Delivery.Status.SENDING).values_list("welcome_code", flat=True))
    assert sent <= set(accepted) <= sent | in_doubt
    assert len(in_doubt) <= 2 * SEND_THREADS, "at most the calls in flight in the killed worker's two processes"
    # The rest failed, each saying why (never started before the worker died, or WeCom's window passed).
    failed = welcome_rows.filter(status=Delivery.Status.FAILED)
    assert welcome_rows.count() == len(sent) + len(in_doubt) + failed.count()
    assert not failed.filter(error="").exists()
    assert len(sent) >= SCANS // 2, f"only {len(sent)} of {SCANS} welcomes went out"
