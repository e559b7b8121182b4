"""Benchmark: a full WeCom sync of 100,000 customers across 50 staff on PostgreSQL, and the re-sync.

Targets (WeCom intake): the first sync at least 2,000 contacts per second; a re-sync of the unchanged
data (which must write nothing) at least 3 × faster than the first.

    .venv/bin/python bench/wecom_sync.py                       # 100,000 customers into scrm_bench_wecom
    .venv/bin/python bench/wecom_sync.py --customers 20000     # a quicker run

The WeCom stand-in (``wecom.standin``) runs in a separate process (so that it does not share this
process's GIL), seeded through ``POST /standin/seed``: 50 members, each customer followed by one member
and every 20th also by a second (105,000 follows), half with a unionid, a fifth with a remark mobile.
Everything goes over real HTTP, 100 customers per ``batch/get_by_user`` page. The database is DROPped
and CREATEd (only ``scrm_bench_wecom`` is accepted) and migrated; 50 users named like the members own
the contacts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from urllib.parse import urlparse

from _common import BASE_DIR, database_recreate, django_setup, machine

RATE_TARGET = 2000.0
RESYNC_RATIO_TARGET = 3.0
ALLOWED = {"scrm_bench_wecom"}
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/scrm_bench_wecom"
STANDIN = """
import sys, time
sys.path.insert(0, {base!r})
from wecom.standin import WeComStandIn, serve
server, url = serve(WeComStandIn(corp_id={corp!r}, corp_secret={secret!r}))
print(url, flush=True)
while True:
    time.sleep(3600)
"""


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--staff", type=int, default=50)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_URL)
    args = parser.parse_args()
    if urlparse(args.database_url).path.lstrip("/") not in ALLOWED:
        sys.exit(f"Refusing: only {', '.join(sorted(ALLOWED))} is accepted (the database is dropped).")
    corp, secret = f"ww{uuid.uuid4().hex[:16]}", uuid.uuid4().hex
    process = subprocess.Popen(
        [sys.executable, "-c", STANDIN.format(base=str(BASE_DIR), corp=corp, secret=secret)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = process.stdout.readline().strip()
        started = time.monotonic()
        state = _post(f"{base_url}/standin/seed", {"staff": args.staff, "customers": args.customers})
        print(machine())
        print(
            f"stand-in {base_url}: {state['staff']} staff, {state['customers']:,} customers, "
            f"{state['follows']:,} follows (seeded in {time.monotonic() - started:.1f} s)"
        )
        os.environ.update(WECOM_API_BASE=f"{base_url}/cgi-bin", WECOM_CORP_ID=corp, WECOM_CORP_SECRET=secret, DEBUG="0")
        database_recreate(args.database_url)
        django_setup(args.database_url)
        run(args)
    finally:
        process.terminate()
        process.wait(timeout=10)


def run(args) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from contacts.models import Contact, Touchpoint
    from wecom.client import WeComClient
    from wecom.models import FollowRelationship
    from wecom.sync import sync_run_continue, sync_run_start

    call_command("migrate", verbosity=0)
    User = get_user_model()
    User.objects.bulk_create([User(username=f"s{i:04d}") for i in range(1, args.staff + 1)])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")

    def timed(label: str):
        with WeComClient() as client:
            started = time.monotonic()
            result = sync_run_continue(run=sync_run_start(), client=client)
            seconds = time.monotonic() - started
        assert result.status == "done", result.error
        print(
            f"{label}: {seconds:.1f} s — {result.customers_seen:,} customers seen, "
            f"{result.contacts_created:,} contacts created, {result.follows_written:,} follows written"
        )
        return result, seconds

    first, first_seconds = timed("first sync")
    contacts = Contact.objects.count()
    print(
        f"  contacts {contacts:,} · follows {FollowRelationship.objects.count():,} · "
        f"add_friend touchpoints {Touchpoint.objects.count():,}"
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    second, second_seconds = timed("re-sync  ")
    rate = contacts / first_seconds
    ratio = first_seconds / second_seconds
    verdict = "within target" if rate >= RATE_TARGET else "UNDER target"
    print(f"FIRST SYNC: {rate:,.0f} contacts/s (target ≥ {RATE_TARGET:,.0f}/s, {verdict})")
    verdict = "within target" if ratio >= RESYNC_RATIO_TARGET else "UNDER target"
    print(
        f"RE-SYNC: {second_seconds:.1f} s = {ratio:.1f}× faster than the first "
        f"(target ≥ {RESYNC_RATIO_TARGET:g}×, {verdict}); wrote {second.contacts_created} contacts, "
        f"{second.follows_written} follows"
    )


if __name__ == "__main__":
    main()
