"""Benchmark: the contacts list API ``/api/v1/contacts/`` with two filters, on the seeded 1M database.

Target: median (and p95) under 100 ms per call.

    .venv/bin/python bench/seed_demo.py          # once: fills scrm_bench with 1,000,000 contacts
    .venv/bin/python bench/contacts_api.py       # then this, as often as you like

Requests go in-process through Django's test ``Client`` (the whole middleware stack, URL routing, DRF
token authentication as the demo ``manager``, filtering, pagination and serialisation) against the
real PostgreSQL database; there is no HTTP server or network in the figure. After ``--warmup`` calls
each scenario is called ``--calls`` times. Then one call per scenario is repeated with its SQL
captured, and every statement slower than ``--explain-ms`` is shown with ``EXPLAIN (ANALYZE, BUFFERS)``.

"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time

from _common import database_url, django_setup, machine, percentile, versus

TARGET_MS = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--explain-ms", type=float, default=10.0)
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument("--database-url", help="default: $DATABASE_URL or scrm_bench on 127.0.0.1")
    args = parser.parse_args()
    django_setup(database_url(args.database_url))

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from contacts.models import Channel, Contact

    User = get_user_model()
    if not Contact.objects.exists():
        sys.exit("No contacts: run bench/seed_demo.py first.")
    manager = User.objects.get(username="manager")
    operator = User.objects.get(username="operator")
    from scrm.authentication import api_token_create

    _, token = api_token_create(user=manager, name="bench", scopes=["read"])
    channel = Channel.objects.get(name="抖音信息流")
    since = timezone.localdate() - dt.timedelta(days=90)
    scenarios = [
        ("stage + channel", f"/api/v1/contacts/?stage=customer&channel={channel.pk}"),
        ("owner + acquired_from", f"/api/v1/contacts/?owner={operator.pk}&acquired_from={since.isoformat()}"),
    ]
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")

    print(machine())
    print(f"{Contact.objects.count():,} contacts; as 'manager' with an API token; in-process Django test Client")
    summary = [("current code", measure(client, scenarios, args))]

    print(f"\nSummary (target: {TARGET_MS} ms per call)")
    for label, results in summary:
        for name, median, p95, count in results:
            print(
                f"  {label:<16} {name:<24} count {count:>9,}   median {median:7.1f} ms ({median / TARGET_MS:.2f}×)"
                f"   p95 {p95:7.1f} ms ({p95 / TARGET_MS:.2f}×)"
            )
    print(machine())


def measure(client, scenarios, args) -> list[tuple[str, float, float, int]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    results = []
    for name, url in scenarios:
        for _ in range(args.warmup):
            response = client.get(url)
            assert response.status_code == 200, response.content[:500]
        timings = []
        for _ in range(args.calls):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        body = response.json()
        median, p95 = statistics.median(timings), percentile(timings, 95)
        results.append((name, median, p95, body["count"]))
        print(f"\n{name}: {url}")
        print(
            f"  count={body['count']:,}, page of {len(body['results'])}; {args.calls} calls after {args.warmup} warm-up"
        )
        print(f"  median {versus(median, TARGET_MS, 'ms')}")
        print(f"  p95    {versus(p95, TARGET_MS, 'ms')}")
        print(f"  min {min(timings):.1f} ms, max {max(timings):.1f} ms")

        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        total_sql = sum(float(q["time"]) * 1000 for q in captured.captured_queries)
        print(f"  {len(captured.captured_queries)} SQL statements, {total_sql:.1f} ms in SQL:")
        for query in captured.captured_queries:
            print(f"    {float(query['time']) * 1000:7.1f} ms  {query['sql'][:150]}")
        if args.no_explain:
            continue
        for query in captured.captured_queries:
            if float(query["time"]) * 1000 >= args.explain_ms and query["sql"].lstrip().upper().startswith("SELECT"):
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                    plan = "\n".join(f"      {row[0]}" for row in cursor.fetchall())
                print(f"\n    EXPLAIN ANALYZE of the {float(query['time']) * 1000:.1f} ms statement:\n{plan}")
    return results


if __name__ == "__main__":
    main()
