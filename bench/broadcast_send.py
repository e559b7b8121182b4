"""Benchmark: plan and send a broadcast to a 1,000,000-contact segment on PostgreSQL.

Targets (issue "Campaigns on Celery"): planning within 3× of its floor, delivery at least 5,000 per
second through the outbox gateway with two worker processes.

    .venv/bin/python bench/seed_demo.py               # once: 1,000,000 contacts in scrm_bench
    .venv/bin/python bench/broadcast_send.py          # then this

* **Planning** is ``campaigns.sending.broadcast_plan``: audience resolution (the segment's rules compiled
  to SQL), consent / opt-out / frequency-cap filtering and one delivery row per contact, in one
  ``INSERT … SELECT``. The **floor** is a single hand-written ``INSERT … SELECT`` of the same rows (the
  same contacts, the same column values, already knowing each row's status) into the same table with
  the same indexes. Both are run ``--runs`` times on a cleared table; medians are compared.
* **Delivery**: a real Celery worker with two processes (``--concurrency 2``) and Redis as broker (or
  the filesystem broker without ``REDIS_URL``) sends the planned broadcast through the outbox gateway,
  started by the same beat tick as in production. The figure is sent messages / wall-clock seconds from
  the tick until the broadcast is marked sent.

The benchmark clears the campaigns tables of the benchmark database (never of another database).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

from _common import BASE_DIR, database_url, django_setup, machine

PLAN_RATIO_TARGET = 3.0
SEND_RATE_TARGET = 5000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", help="default: $DATABASE_URL or scrm_bench on 127.0.0.1")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--no-send", action="store_true", help="planning only")
    args = parser.parse_args()
    url = database_url(args.database_url)
    if args.redis_url:
        # Before Django starts: this process enqueues the tick, so it must use the worker's broker.
        os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = args.redis_url
    django_setup(url)

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from campaigns import sending, services
    from campaigns.models import Broadcast, Delivery, FrequencyPolicy, MessageTemplate, OutboxMessage, Segment
    from contacts.models import Contact

    call_command("migrate", verbosity=0)
    live = Contact.objects.filter(merged_into__isnull=True, erased_at__isnull=True).count()
    if live < 100_000:
        sys.exit(f"Only {live:,} live contacts: run bench/seed_demo.py first.")
    print(machine())
    print(f"live contacts: {live:,}")

    def clear() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE campaigns_outboxmessage, campaigns_delivery, campaigns_broadcast_communities, "
                "campaigns_broadcast RESTART IDENTITY CASCADE"
            )
            cursor.execute("VACUUM ANALYZE campaigns_delivery")

    FrequencyPolicy.objects.update_or_create(pk=1, defaults={"quiet_hours_enabled": False})
    manager = get_user_model().objects.get(username="manager")
    template, _ = MessageTemplate.objects.get_or_create(
        name="bench", defaults={"body": "{name}，您好！双十二会员专享券 {coupon} 已到账，{owner} 为您服务。"}
    )
    segment, _ = Segment.objects.get_or_create(name="bench: everyone", defaults={"rules": {"op": "and", "rules": []}})

    def new_broadcast() -> Broadcast:
        broadcast = services.broadcast_create(
            created_by=manager, name="bench", template=template, segment=segment, variables={"coupon": "DD12"}
        )
        Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING)
        return Broadcast.objects.select_related("template", "segment", "created_by").get(pk=broadcast.pk)

    # --- Planning vs the floor --------------------------------------------------------------
    plan_times, floor_times = [], []
    for run in range(args.runs):
        clear()
        broadcast = new_broadcast()
        started = time.perf_counter()
        sending.broadcast_plan(broadcast=broadcast)
        plan_times.append(time.perf_counter() - started)
        planned = Delivery.objects.filter(broadcast=broadcast).count()
        pending = Delivery.objects.filter(broadcast=broadcast, status="pending").count()

        clear()
        floor_broadcast = new_broadcast()
        floor_sql = """
            INSERT INTO campaigns_delivery (broadcast_id, contact_id, medium, template_id, is_marketing, status,
                reason, attempts, created_at, error, gateway, gateway_message_id, gateway_state)
            SELECT %s, c.id, 'wecom', %s, true,
                   CASE WHEN c.opted_out_at IS NULL AND c.marketing_consent THEN 'pending' ELSE 'suppressed' END,
                   CASE WHEN c.opted_out_at IS NOT NULL THEN 'opted_out'
                        WHEN NOT c.marketing_consent THEN 'no_consent' ELSE '' END,
                   0, now(), '', '', '', ''
            FROM contacts_contact c
            WHERE c.merged_into_id IS NULL AND c.erased_at IS NULL
            ON CONFLICT DO NOTHING
        """
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(floor_sql, [floor_broadcast.pk, template.pk])
            floor_rows = cursor.rowcount
        floor_times.append(time.perf_counter() - started)
        floor_pending = Delivery.objects.filter(broadcast=floor_broadcast, status="pending").count()
        if (planned, pending) != (floor_rows, floor_pending):
            sys.exit(f"floor differs: planned {planned}/{pending} pending vs floor {floor_rows}/{floor_pending}")
        print(
            f"run {run + 1}: plan {plan_times[-1]:.2f} s ({planned:,} rows, {pending:,} pending), "
            f"floor {floor_times[-1]:.2f} s"
        )
    plan, floor = statistics.median(plan_times), statistics.median(floor_times)
    ratio = plan / floor
    verdict = "within target" if ratio <= PLAN_RATIO_TARGET else "OVER target"
    print(
        f"PLANNING: median {plan:.2f} s vs floor {floor:.2f} s = {ratio:.2f}× "
        f"(target ≤ {PLAN_RATIO_TARGET:g}×, {verdict})"
    )
    if args.no_send:
        return

    # --- Delivery with two worker processes -------------------------------------------------
    clear()
    broadcast = services.broadcast_create(
        created_by=manager, name="bench send", template=template, segment=segment, variables={"coupon": "DD12"}
    )
    services.broadcast_submit(broadcast=broadcast, user=manager)
    env = dict(os.environ, DATABASE_URL=url, DEBUG="0", LOG_LEVEL="WARNING")
    if args.redis_url:
        env["CELERY_BROKER_URL"] = env["REDIS_URL"] = args.redis_url
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "scrm",
            "worker",
            "--concurrency=2",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--purge",
        ],
        cwd=BASE_DIR,
        env=env,
        start_new_session=True,
    )
    try:
        time.sleep(3)
        started = time.perf_counter()
        sending.broadcasts_tick()
        while True:
            time.sleep(0.5)
            status = Broadcast.objects.values_list("status", flat=True).get(pk=broadcast.pk)
            if status == Broadcast.Status.SENT:
                break
            if time.perf_counter() - started > 3600:
                sys.exit("the broadcast did not finish within an hour")
            if int(time.perf_counter() - started) % 30 == 0:
                sending.broadcasts_tick()  # what beat would do
        elapsed = time.perf_counter() - started
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    from django.db.models import Max

    sent = Delivery.objects.filter(broadcast=broadcast, status="sent").count()
    outbox = OutboxMessage.objects.count()
    broadcast.refresh_from_db()
    last_sent = Delivery.objects.filter(broadcast=broadcast).aggregate(last=Max("sent_at"))["last"]
    sending_seconds = (last_sent - broadcast.planned_at).total_seconds()
    rate = sent / sending_seconds
    verdict = "within target" if rate >= SEND_RATE_TARGET else "UNDER target"
    print(f"end to end (tick → broadcast sent, planning included): {elapsed:.1f} s = {sent / elapsed:,.0f} per second")
    print(
        f"DELIVERY: {sent:,} sent ({outbox:,} outbox messages) in {sending_seconds:.1f} s after planning = "
        f"{rate:,.0f} per second (target ≥ {SEND_RATE_TARGET:,.0f}/s, {verdict})"
    )


if __name__ == "__main__":
    main()
