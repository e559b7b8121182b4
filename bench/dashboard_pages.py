"""Benchmark: the server time of every dashboard page, for an operator and a manager, on a seeded database.

Targets (issue "The operator's day"): p95 < 300 ms for the workbench, the contact list and the contact page;
p95 < 2 s for the reports; and a number of SQL statements per page that does not depend on the data size
(run it on the 1M database and on a small one and compare the "queries" column).

    .venv/bin/python bench/seed_demo.py                           # once: 1,000,000 contacts into scrm_bench
    .venv/bin/python bench/dashboard_pages.py                     # then this
    .venv/bin/python bench/seed_demo.py --contacts 10000 --database-url postgres://postgres@127.0.0.1:5432/scrm_c
    .venv/bin/python bench/dashboard_pages.py --database-url postgres://postgres@127.0.0.1:5432/scrm_c

Requests go in-process through Django's test ``Client`` (the whole middleware stack, session authentication
as the demo ``operator`` and ``manager``, template rendering) against the real PostgreSQL database; there is
no HTTP server in the figure. After ``--warmup`` calls each page is called ``--calls`` times; the statements
of one more call are counted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from _common import database_url, django_setup, machine, percentile, postgres_settings

LIST_TARGET_MS = 300
REPORT_TARGET_MS = 2000


def _pages(contact_id: int) -> list[tuple[str, str, int]]:
    """(label, path, target ms) of every dashboard page a user opens in a day."""
    from django.urls import reverse

    day = [
        ("workbench", "/", LIST_TARGET_MS),
        ("contact list", reverse("contacts:list"), LIST_TARGET_MS),
        ("contact list, customers", reverse("contacts:list") + "?stage=customer", LIST_TARGET_MS),
        ("contact list, page 20", reverse("contacts:list") + "?page=20", LIST_TARGET_MS),
        ("contact page", reverse("contacts:detail", args=[contact_id]), LIST_TARGET_MS),
        ("my tasks", reverse("campaigns:task_list"), LIST_TARGET_MS),
        ("broadcasts", reverse("campaigns:broadcast_list"), LIST_TARGET_MS),
        ("communities", reverse("communities:list"), LIST_TARGET_MS),
        ("imports", reverse("contacts:import"), LIST_TARGET_MS),
    ]
    reports = [
        (f"report: {name}", reverse(f"analytics:{name}"), REPORT_TARGET_MS)
        for name in (
            "overview",
            "cohorts",
            "funnel",
            "channels",
            "decomposition",
            "layers",
            "communities",
            "koc",
            "trend",
        )
    ]
    return day + reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--users", default="operator,manager")
    parser.add_argument("--only", help="only pages whose label contains this text")
    parser.add_argument("--database-url", help="default: $DATABASE_URL or scrm_bench on 127.0.0.1")
    args = parser.parse_args()
    django_setup(database_url(args.database_url))

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import translation

    from contacts.models import Contact

    User = get_user_model()
    total = Contact.objects.count()
    if not total:
        sys.exit("No contacts: run bench/seed_demo.py first.")
    print(machine())
    print(postgres_settings())
    print(f"{total:,} contacts; in-process Django test Client, session login, {args.calls} calls after {args.warmup}")

    rows = []
    for username in args.users.split(","):
        user = User.objects.get(username=username)
        # The busiest contact the user sees: the page must stay fast for it.
        contact = (
            Contact.objects.live().visible_to(user).order_by("-purchase_count", "-last_interaction_at", "id").first()
        )
        client = Client()
        client.force_login(user)
        client.cookies["django_language"] = "zh-hans"
        for label, path, target in _pages(contact.pk):
            if args.only and args.only not in label:
                continue
            with translation.override("zh-hans"):
                for _ in range(args.warmup):
                    response = client.get(path)
                    if response.status_code != 200:
                        print(f"  {username:<9} {label:<28} HTTP {response.status_code}: skipped")
                        break
                else:
                    timings = []
                    for _ in range(args.calls):
                        started = time.perf_counter()
                        client.get(path)
                        timings.append((time.perf_counter() - started) * 1000)
                    with CaptureQueriesContext(connection) as captured:
                        client.get(path)
                    sql_ms = sum(float(q["time"]) * 1000 for q in captured.captured_queries)
                    median, p95 = statistics.median(timings), percentile(timings, 95)
                    rows.append((username, label, median, p95, target, len(captured.captured_queries), sql_ms))
                    verdict = "ok" if p95 <= target else "OVER"
                    print(
                        f"  {username:<9} {label:<28} median {median:8.1f} ms   p95 {p95:8.1f} ms "
                        f"({p95 / target:4.2f}× the {target} ms target, {verdict})   "
                        f"{len(captured.captured_queries):3d} queries, {sql_ms:7.1f} ms SQL"
                    )
    over = [row for row in rows if row[3] > row[4]]
    print(f"\n{len(rows)} pages measured, {len(over)} over target")
    for username, label, _median, p95, target, *_ in over:
        print(f"  OVER: {username} {label}: p95 {p95:.0f} ms = {p95 / target:.2f}× {target} ms")
    print(machine())


if __name__ == "__main__":
    main()
