"""Benchmark: the analytics overview (``analytics.metrics.overview``) on the seeded 1M database, against a
hand-written SQL floor and a pandas computation of the same figures.

Targets (issue "Analytics"): on PostgreSQL at 1,000,000 contacts, 3,000,000 purchases and 10,000,000
touchpoints, the full overview — every headline KPI, the 12 × 12 acquisition-cohort purchase-retention
matrix, the funnel and the channel table — in under 2 seconds cold; within 2 × of the SQL floor; at
least 5 × faster than pandas.

    .venv/bin/python bench/seed_demo.py              # once: 1,000,000 contacts into scrm_bench
    .venv/bin/python bench/analytics_overview.py     # then this (--database-url for another database)

The benchmark only reads (apart from ``--refresh-rollup``, or a missing rollup: then it runs the nightly
``analytics.rollups.cohort_rollup_refresh`` first, as Celery beat would have). Two periods are measured,
both ending today (business time zone): the last 30 days and the last 365 days.

* **service**: ``overview(Filters(date_from, date_to, user=<the demo manager>))`` (``--user none`` for the
  unscoped system read). **Cold** means: every run opens a new database connection (a new PostgreSQL
  backend: empty catalog, relation and plan caches; the connect is inside the time) and uses a freshly
  loaded user (permissions are looked up again). The shared buffers and the OS page cache are *not*
  emptied — that needs a server restart and root on the database host, which a shared machine does not
  allow — so the table and index pages the overview reads are whatever earlier runs left there (with
  the default 128 MB of shared buffers most of them come from the OS page cache). Also reported: runs on
  one kept connection after ``DISCARD ALL``, and plain warm runs on a kept connection.
* **floor**: the same figures from plain SQL through psycopg2 (no ORM), as directly as the schema allows:
  the same tables, the same denormalised facts and the same nightly rollup the service reads, one
  statement per group of figures, each run on a new connection with the same session options as
  Django's. Its figures are checked to equal the service's (else the script stops), so the floor is
  honest. For reference the 12 × 12 matrix is also computed live from the purchases, without the rollup.
* **pandas**: the rows the figures need are loaded with ``COPY … TO STDOUT`` into DataFrames (live
  contacts with their facts, paid purchases since the earlier of the first cohort month and the start of
  P, spend rows; timestamps as integer microseconds and money as integer cents, the quickest form for
  pandas to parse), then every figure is computed in pandas (the retention matrix from the purchases, as
  pandas has no rollup). Load and compute are timed separately; the ratio is (load + compute) / service.
  No touchpoints are needed: "engaged" is the ``last_interaction_at`` fact, as in the service. Its
  figures are checked to equal the service's too.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
import os
import statistics
import sys
import time
from collections import defaultdict
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from urllib.parse import urlparse

from _common import DEFAULT_URL, django_setup, machine, postgres_settings

TARGET_SECONDS = 2.0
FLOOR_RATIO_TARGET = 2.0
PANDAS_RATIO_TARGET = 5.0
FUNNEL_STEPS = ("leads", "engaged", "first_purchase", "repeat_purchase", "referrer")
MONTHS = 12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per mode (median reported)")
    parser.add_argument("--pandas-runs", type=int, default=5, help="rounds that also run pandas")
    parser.add_argument("--periods", default="30,365", help="period lengths in days, ending today (default 30,365)")
    parser.add_argument("--user", choices=("manager", "none"), default="manager")
    parser.add_argument("--no-pandas", action="store_true")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN (ANALYZE, BUFFERS) the service's statements")
    parser.add_argument("--refresh-rollup", action="store_true", help="rebuild the cohort rollup first")
    parser.add_argument("--vacuum", action="store_true", help="VACUUM (ANALYZE) the tables read first")
    parser.add_argument("--database-url", help=f"default: $DATABASE_URL or {DEFAULT_URL}")
    args = parser.parse_args()
    url = args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_URL
    if urlparse(url).scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit(f"PostgreSQL only: {url}")
    django_setup(url)

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from analytics.models import CohortActivity
    from analytics.rollups import cohort_rollup_refresh
    from contacts.models import Contact, Purchase, Touchpoint

    if not Contact.objects.exists():
        sys.exit(
            "No contacts: seed the database first (bench/seed_demo.py, or manage.py seed_demo --contacts 1000000)."
        )
    print(machine())
    print(postgres_settings())
    options = connection.settings_dict.get("OPTIONS", {}).get("options", "")
    print(f"session options from settings: {options or '(none)'}")
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        jit = cursor.fetchone()[0]
        cursor.execute("SHOW work_mem")
        print(f"in a Django session: jit={jit}, work_mem={cursor.fetchone()[0]}")
    print(
        f"{Contact.objects.filter(merged_into__isnull=True).count():,} live contacts, "
        f"{Purchase.objects.count():,} purchases, {Touchpoint.objects.count():,} touchpoints"
    )
    tables = ("contacts_contact", "contacts_purchase", "contacts_channelspend", "analytics_cohortactivity")
    with connection.cursor() as cursor:
        if args.vacuum:
            for table in tables:
                cursor.execute(f"VACUUM (ANALYZE) {table}")
        cursor.execute("SHOW autovacuum")
        autovacuum = cursor.fetchone()[0]
        cursor.execute(
            "SELECT relname, relpages, relallvisible FROM pg_class WHERE relname = ANY(%s) ORDER BY relname",
            [list(tables)],
        )
        visibility = cursor.fetchall()
    print(
        f"autovacuum={autovacuum}; all-visible pages (index-only scans need them): "
        + ", ".join(f"{name} {visible:,}/{pages:,}" for name, pages, visible in visibility)
    )
    if any(visible < 0.9 * pages for _name, pages, visible in visibility if pages > 10):
        print("  WARNING: tables not vacuumed since loading; run with --vacuum (what autovacuum would have done)")

    latest = CohortActivity.objects.order_by("-refreshed_at").values_list("refreshed_at", flat=True).first()
    today = timezone.localdate()
    if args.refresh_rollup or latest is None or timezone.localtime(latest).date().replace(day=1) < today.replace(day=1):
        started = time.perf_counter()
        cells = cohort_rollup_refresh()
        print(f"cohort_rollup_refresh (the nightly job): {cells:,} cells in {time.perf_counter() - started:.1f} s")
    else:
        print(f"cohort rollup built {timezone.localtime(latest):%Y-%m-%d %H:%M} (current for this month)")
    connection.close()

    User = get_user_model()
    user_id = User.objects.get(username="manager").pk if args.user == "manager" else None
    connection.close()

    summary = []
    for days in (int(d) for d in args.periods.split(",")):
        date_to = today
        date_from = today - dt.timedelta(days=days - 1)
        print(f"\n=== Period {date_from} … {date_to} ({days} days), user={args.user} ===")
        summary.append((days, run_period(args, url, options, date_from, date_to, user_id)))

    print("\nSummary (medians; 'cold' = new connection per run, caches of the server and the OS as they were)")
    for days, s in summary:
        print(
            f"  {days:>3} days: service cold {s['cold']:.3f} s ({'within' if s['cold'] <= TARGET_SECONDS else 'OVER'}"
            f" the {TARGET_SECONDS:g} s target), after DISCARD ALL {s['discard']:.3f} s, warm {s['warm']:.3f} s"
        )
        print(
            f"            floor cold {s['floor']:.3f} s -> service/floor = {s['cold'] / s['floor']:.2f}x"
            f" (target <= {FLOOR_RATIO_TARGET:g}x: {'met' if s['cold'] / s['floor'] <= FLOOR_RATIO_TARGET else 'NOT met'})"
        )
        if "pandas_load" in s:
            total = s["pandas_total"]
            print(
                f"            pandas load {s['pandas_load']:.3f} s + compute {s['pandas_compute']:.3f} s -> {total:.3f} s"
                f" -> pandas/service = {total / s['cold']:.1f}x (target >= {PANDAS_RATIO_TARGET:g}x: "
                f"{'met' if total / s['cold'] >= PANDAS_RATIO_TARGET else 'NOT met'});"
                f" compute alone {s['pandas_compute'] / s['cold']:.1f}x"
            )
    print(machine())


# --------------------------------------------------------------------------------------------------
# One period: service, floor, pandas
# --------------------------------------------------------------------------------------------------


def run_period(args, url, options, date_from, date_to, user_id) -> dict[str, float]:
    """``--runs`` rounds, each: the service cold (new connection), then on that kept connection after
    ``DISCARD ALL`` and once more warm, the SQL floor on a new connection, and (in the first
    ``--pandas-runs`` rounds) pandas. Interleaving keeps the figures compared under the same load."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from analytics.metrics import Filters, overview

    User = get_user_model()
    window = Window(date_from, date_to)

    def filters() -> Filters:
        user = User.objects.get(pk=user_id) if user_id is not None else None
        return Filters(date_from=date_from, date_to=date_to, user=user)

    cold, discard, warm, floor, loads, computes = [], [], [], [], [], []
    service = floor_figures = pandas_figures = None
    for index in range(args.runs):
        connection.close()
        f = filters()
        connection.close()  # the user was read on a connection that is closed again: the run connects
        started = time.perf_counter()
        result = overview(f)
        cold.append(time.perf_counter() - started)
        figures = dataclasses.asdict(result)
        assert service is None or figures == service
        service = figures

        f = filters()
        with connection.cursor() as cursor:
            cursor.execute("DISCARD ALL")
        connection.ensure_timezone()
        started = time.perf_counter()
        result = overview(f)
        discard.append(time.perf_counter() - started)
        started = time.perf_counter()
        overview(f)
        warm.append(time.perf_counter() - started)
        assert dataclasses.asdict(result) == service
        connection.close()

        started = time.perf_counter()
        floor_figures = floor_overview(url, options, window)
        floor.append(time.perf_counter() - started)

        if not args.no_pandas and index < args.pandas_runs:
            load, compute, pandas_figures = pandas_overview(url, options, window)
            loads.append(load)
            computes.append(compute)

    report("service, new connection per run (cold)", cold)
    report("service, kept connection after DISCARD ALL", discard)
    report("service, warm (kept connection)", warm)
    report("SQL floor, new connection per run", floor)
    check("floor", floor_figures, service)
    per_round = [c / f for c, f in zip(cold, floor, strict=True)]
    print(
        f"  service/floor: {statistics.median(cold) / statistics.median(floor):.2f}x (medians), "
        f"{statistics.median(per_round):.2f}x (median of the per-round ratios)"
    )
    result = {
        "cold": statistics.median(cold),
        "discard": statistics.median(discard),
        "warm": statistics.median(warm),
        "floor": statistics.median(floor),
    }
    if loads:
        check("pandas", pandas_figures, service)
        totals = [load + compute for load, compute in zip(loads, computes, strict=True)]
        report("pandas: load (COPY + read_csv)", loads)
        report("pandas: compute", computes)
        report("pandas: load + compute", totals)
        per_round = [t / c for t, c in zip(totals, cold, strict=False)]
        print(
            f"  pandas/service: {statistics.median(totals) / statistics.median(cold):.1f}x (medians), "
            f"{statistics.median(per_round):.1f}x (median of the per-round ratios)"
        )
        result["pandas_load"] = statistics.median(loads)
        result["pandas_compute"] = statistics.median(computes)
        result["pandas_total"] = statistics.median(totals)

    started = time.perf_counter()
    live_matrix = floor_live_matrix(url, options, window)
    seconds = time.perf_counter() - started
    same = live_matrix == service["cohorts"]
    print(
        f"  (reference) the 12 x 12 matrix live from the purchases, without the rollup: {seconds:.3f} s, "
        f"{'equal to' if same else 'DIFFERENT from'} the service's"
    )

    f = filters()
    with CaptureQueriesContext(connection) as captured:
        overview(f)
    print(f"  one more (warm) run of the service: {len(captured.captured_queries)} SQL statements")
    for query in captured.captured_queries:
        print(f"    {float(query['time']) * 1000:8.1f} ms  {' '.join(query['sql'].split())[:130]}")
    if args.explain:
        for query in captured.captured_queries:
            if float(query["time"]) * 1000 >= 5 and query["sql"].lstrip().upper().startswith("SELECT"):
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                    plan = "\n".join(f"      {row[0]}" for row in cursor.fetchall())
                print(f"\n    EXPLAIN (ANALYZE, BUFFERS), {float(query['time']) * 1000:.1f} ms:\n{plan}\n")
    connection.close()
    return result


def report(label: str, timings: list[float]) -> None:
    print(
        f"  {label:<45} median {statistics.median(timings):7.3f} s   min {min(timings):7.3f}   "
        f"max {max(timings):7.3f}   ({len(timings)} runs: {', '.join(f'{t:.3f}' for t in timings)})"
    )


def check(label: str, figures: dict, service: dict) -> None:
    if figures != service:
        for key in service:
            if figures.get(key) != service[key]:
                print(f"  {label} {key}:\n    {label}:   {figures.get(key)}\n    service: {service[key]}")
        sys.exit(f"The {label} figures differ from the service's: the comparison would be meaningless.")
    print(f"  {label}: every figure equal to the service's (KPIs, 12 x 12 matrix, funnel, channel table)")


# --------------------------------------------------------------------------------------------------
# Shared: the period, exact rounding, assembling the figures as the service's dataclasses do
# --------------------------------------------------------------------------------------------------

_WIDE = Context(prec=60)


class Window:
    """The period's instants, the cohort months and the business time zone."""

    def __init__(self, date_from: dt.date, date_to: dt.date) -> None:
        from django.conf import settings
        from django.utils import timezone

        self.tz_name = settings.TIME_ZONE
        tz = timezone.get_default_timezone()
        self.date_from, self.date_to = date_from, date_to
        self.start = dt.datetime.combine(date_from, dt.time.min, tzinfo=tz)
        self.end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
        self.last = date_to.replace(day=1)
        self.first = month_add(self.last, -(MONTHS - 1))
        self.last_data = min(self.last, timezone.localdate().replace(day=1))
        self.first_start = dt.datetime.combine(self.first, dt.time.min, tzinfo=tz)
        self.tz = tz

    def month_start(self, month: dt.date) -> dt.datetime:
        return dt.datetime.combine(month, dt.time.min, tzinfo=self.tz)


def month_add(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


def months_between(a: dt.date, b: dt.date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def money(value) -> Decimal | None:
    if value is None:
        return None
    value = Fraction(value)
    exact = _WIDE.divide(Decimal(value.numerator), Decimal(value.denominator))
    return exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def ratio(value) -> float | None:
    if value is None:
        return None
    value = Fraction(value)
    exact = _WIDE.divide(Decimal(value.numerator), Decimal(value.denominator))
    return float(exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def div(a, b) -> Fraction | None:
    if a is None or b is None or b == 0:
        return None
    return Fraction(a) / Fraction(b)


def prorate(spend_rows, window: Window) -> dict[int, Fraction]:
    """Σ amount × overlap_days / range_days per channel over the spend rows overlapping P."""
    spend: dict[int, Fraction] = defaultdict(Fraction)
    for channel_id, start_date, end_date, amount in spend_rows:
        if start_date > window.date_to or end_date < window.date_from:
            continue
        overlap = (min(end_date, window.date_to) - max(start_date, window.date_from)).days + 1
        spend[channel_id] += Fraction(amount) * overlap / ((end_date - start_date).days + 1)
    return spend


def steps(counts: dict[str, int]) -> list[dict]:
    out, previous = [], None
    for step in FUNNEL_STEPS:
        out.append(
            {
                "key": step,
                "count": counts[step],
                "step_conversion": ratio(div(counts[step], previous)) if previous is not None else None,
                "overall_conversion": ratio(div(counts[step], counts["leads"])),
            }
        )
        previous = counts[step]
    return out


def assemble(*, leads, new, referrers, purchases, spend, names, sizes, active, window) -> dict:
    """The overview as ``dataclasses.asdict(overview(...))`` gives it, from exact inputs:

    leads: channel → {leads, revenue (Fraction), referred, engaged, first_purchase, repeat_purchase,
    referrer}; new: channel → new customers; purchases: buyers, repeat_buyers, orders, revenue; spend:
    channel → Fraction; sizes: cohort month → size; active: (cohort month, k) → contacts."""
    total = {key: sum(row[key] for row in leads.values()) for key in ("leads", "referred", *FUNNEL_STEPS[1:])}
    leads_revenue = sum((row["revenue"] for row in leads.values()), Fraction(0))
    n_leads, n_new = total["leads"], sum(new.values())
    total_spend = sum(spend.values(), Fraction(0))
    cac, clv = div(total_spend, n_new), div(leads_revenue, n_leads)
    kpis = {
        "leads": n_leads,
        "new_customers": n_new,
        "spend": money(total_spend),
        "cpl": money(div(total_spend, n_leads)),
        "cac": money(cac),
        "revenue": money(purchases["revenue"]),
        "paid_orders": purchases["orders"],
        "buyers": purchases["buyers"],
        "aov": money(div(purchases["revenue"], purchases["orders"])),
        "leads_revenue": money(leads_revenue),
        "clv": money(clv),
        "roi": ratio(div(leads_revenue - total_spend, total_spend)),
        "ltv_cac": ratio(div(clv, cac)),
        "repeat_buyers": purchases["repeat_buyers"],
        "repurchase_rate": ratio(div(purchases["repeat_buyers"], purchases["buyers"])),
        "referred_leads": total["referred"],
        "referrers": referrers,
        "k_factor": ratio(div(total["referred"], referrers)),
    }
    cohorts = []
    for index in range(MONTHS):
        month = month_add(window.first, index)
        size = sizes.get(month, 0)
        counts, cells = [], []
        for k in range(MONTHS):
            if month_add(month, k) > window.last_data:
                counts.append(None)
                cells.append(None)
            else:
                n = active.get((month, k), 0)
                counts.append(n)
                cells.append(ratio(div(n, size)))
        cohorts.append({"month": month, "size": size, "counts": counts, "cells": cells})
    channels = []
    for channel_id in set(leads) | set(new) | set(spend):
        row = leads.get(channel_id, {})
        n, revenue = row.get("leads", 0), row.get("revenue", Fraction(0))
        c_spend, c_new = spend.get(channel_id, Fraction(0)), new.get(channel_id, 0)
        c_cac, c_clv = div(c_spend, c_new), div(revenue, n)
        channels.append(
            {
                "channel_id": channel_id,
                "channel": names.get(channel_id, "") if channel_id is not None else "",
                "spend": money(c_spend),
                "leads": n,
                "new_customers": c_new,
                "cpl": money(div(c_spend, n)),
                "cac": money(c_cac),
                "revenue": money(revenue),
                "clv": money(c_clv),
                "roi": ratio(div(revenue - c_spend, c_spend)),
                "ltv_cac": ratio(div(c_clv, c_cac)),
            }
        )
    channels.sort(key=lambda r: (r["channel_id"] is None, r["channel"], r["channel_id"] or 0))
    return {
        "kpis": kpis,
        "cohorts": cohorts,
        "funnel": {"total": steps({step: total[step] for step in FUNNEL_STEPS}), "groups": []},
        "channels": channels,
    }


# --------------------------------------------------------------------------------------------------
# The SQL floor
# --------------------------------------------------------------------------------------------------


def connect(url: str, options: str):
    import psycopg2

    parsed = urlparse(url)
    conn = psycopg2.connect(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password or None,
        dbname=parsed.path.lstrip("/"),
        options=options or None,
    )
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
    return conn


# The leads of P per channel, with R (their paid spend to date) and the nested funnel steps; the
# facts are the columns the services keep current.
SQL_LEADS = """
SELECT channel_id, count(*), coalesce(sum(total_spent), 0), count(referred_by_id),
       count(*) FILTER (WHERE last_interaction_at IS NOT NULL OR purchase_count >= 1),
       count(*) FILTER (WHERE purchase_count >= 1),
       count(*) FILTER (WHERE purchase_count >= 2),
       count(*) FILTER (WHERE purchase_count >= 2 AND referral_count >= 1)
FROM contacts_contact
WHERE merged_into_id IS NULL AND acquired_at >= %(start)s AND acquired_at < %(end)s
GROUP BY channel_id
"""
SQL_REFERRERS = """
SELECT count(DISTINCT referred_by_id) FROM contacts_contact
WHERE merged_into_id IS NULL AND acquired_at >= %(start)s AND acquired_at < %(end)s AND referred_by_id IS NOT NULL
"""
SQL_NEW = """
SELECT channel_id, count(*) FROM contacts_contact
WHERE merged_into_id IS NULL AND first_purchase_at >= %(start)s AND first_purchase_at < %(end)s
GROUP BY channel_id
"""
SQL_PURCHASES = """
SELECT count(*), count(*) FILTER (WHERE n >= 2), coalesce(sum(n), 0), coalesce(sum(s), 0)
FROM (SELECT contact_id, count(*) AS n, sum(amount) AS s FROM contacts_purchase
      WHERE status = 'paid' AND purchased_at >= %(start)s AND purchased_at < %(end)s
        AND contact_id NOT IN (SELECT id FROM contacts_contact WHERE merged_into_id IS NOT NULL)
      GROUP BY contact_id) AS per_buyer
"""
SQL_SPEND = """
SELECT channel_id, start_date, end_date, amount FROM contacts_channelspend
WHERE start_date <= %(date_to)s AND end_date >= %(date_from)s
"""
SQL_NAMES = "SELECT id, name FROM contacts_channel"
SQL_ROLLUP = """
SELECT kind, cohort_month, month, sum(contacts), max(refreshed_at) FROM analytics_cohortactivity
WHERE by = 'acquisition' AND kind IN ('size', 'purchase') AND cohort_month >= %(first)s AND cohort_month <= %(last)s
GROUP BY kind, cohort_month, month
"""
SQL_SIZES = """
SELECT (date_trunc('month', acquired_at AT TIME ZONE %(tz)s))::date, count(*) FROM contacts_contact
WHERE merged_into_id IS NULL AND acquired_at >= %(since)s AND acquired_at < %(end)s
GROUP BY 1
"""
# The last month with data from the contacts' last-purchase fact: active in [since, until) = last paid
# purchase at or after its start, and before its end or with a paid purchase in it.
SQL_ACTIVE_FACT = """
SELECT (date_trunc('month', acquired_at AT TIME ZONE %(tz)s))::date, count(*) FROM contacts_contact c
WHERE merged_into_id IS NULL AND acquired_at >= %(first_start)s AND acquired_at < %(end)s
  AND last_purchase_at >= %(since)s
  AND (last_purchase_at < %(until)s OR EXISTS (
           SELECT 1 FROM contacts_purchase p WHERE p.contact_id = c.id AND p.status = 'paid'
             AND p.purchased_at >= %(since)s AND p.purchased_at < %(until)s))
GROUP BY 1
"""
SQL_ACTIVE = """
SELECT (date_trunc('month', c.acquired_at AT TIME ZONE %(tz)s))::date,
       (date_trunc('month', p.purchased_at AT TIME ZONE %(tz)s))::date, count(DISTINCT p.contact_id)
FROM contacts_purchase p JOIN contacts_contact c ON c.id = p.contact_id
WHERE p.status = 'paid' AND p.purchased_at >= %(since)s AND p.purchased_at < %(end)s
  AND c.merged_into_id IS NULL AND c.acquired_at >= %(first_start)s AND c.acquired_at < %(end)s
GROUP BY 1, 2
"""


def floor_overview(url: str, options: str, window: Window) -> dict:
    from django.utils import timezone

    conn = connect(url, options)
    params = {
        "start": window.start,
        "end": window.end,
        "date_from": window.date_from,
        "date_to": window.date_to,
        "first": window.first,
        "last": window.last,
        "tz": window.tz_name,
        "first_start": window.first_start,
    }
    with conn.cursor() as cursor:
        cursor.execute(SQL_LEADS, params)
        leads = {
            row[0]: {
                "leads": row[1],
                "revenue": Fraction(row[2]),
                "referred": row[3],
                **dict(zip(FUNNEL_STEPS[1:], row[4:], strict=True)),
            }
            for row in cursor.fetchall()
        }
        cursor.execute(SQL_REFERRERS, params)
        referrers = cursor.fetchone()[0]
        cursor.execute(SQL_NEW, params)
        new = dict(cursor.fetchall())
        cursor.execute(SQL_PURCHASES, params)
        buyers, repeat, orders, revenue = cursor.fetchone()
        cursor.execute(SQL_SPEND, params)
        spend = prorate(cursor.fetchall(), window)
        cursor.execute(SQL_NAMES)
        names = dict(cursor.fetchall())
        # Cohorts: the months the nightly rollup has whole, the rest live (as the service does).
        cursor.execute(SQL_ROLLUP, params)
        rollup = cursor.fetchall()
        sizes, active, live_from = {}, {}, window.first
        if rollup:
            built_in = timezone.localtime(max(row[4] for row in rollup)).date().replace(day=1)
            whole = (window.date_to + dt.timedelta(days=1)).day == 1
            live_from = max(window.first, min(built_in, month_add(window.last, 1) if whole else window.last))
            for kind, cohort, month, n, _refreshed in rollup:
                if kind == "size" and cohort < live_from:
                    sizes[cohort] = n
                elif kind != "size" and month < live_from:
                    active[(cohort, months_between(cohort, month))] = n
        if live_from <= window.last_data:
            params["since"] = window.month_start(live_from)
            cursor.execute(SQL_SIZES, params)
            sizes.update(cursor.fetchall())
            if live_from == window.last_data:
                params["until"] = min(window.month_start(month_add(live_from, 1)), window.end)
                cursor.execute(SQL_ACTIVE_FACT, params)
                for cohort, n in cursor.fetchall():
                    if cohort <= live_from:
                        active[(cohort, months_between(cohort, live_from))] = n
            else:
                cursor.execute(SQL_ACTIVE, params)
                for cohort, month, n in cursor.fetchall():
                    if months_between(cohort, month) >= 0:
                        active[(cohort, months_between(cohort, month))] = n
    conn.close()
    return assemble(
        leads=leads,
        new=new,
        referrers=referrers,
        purchases={"buyers": buyers, "repeat_buyers": repeat, "orders": orders, "revenue": Fraction(revenue)},
        spend=spend,
        names=names,
        sizes=sizes,
        active=active,
        window=window,
    )


def floor_live_matrix(url: str, options: str, window: Window) -> list[dict]:
    """The 12 × 12 matrix from the purchases alone (no rollup), for reference."""
    conn = connect(url, options)
    params = {"tz": window.tz_name, "since": window.first_start, "first_start": window.first_start, "end": window.end}
    with conn.cursor() as cursor:
        cursor.execute(SQL_SIZES, params)
        sizes = dict(cursor.fetchall())
        cursor.execute(SQL_ACTIVE, params)
        active = {
            (cohort, months_between(cohort, month)): n
            for cohort, month, n in cursor.fetchall()
            if months_between(cohort, month) >= 0
        }
    conn.close()
    empty = {"leads": {}, "new": {}, "referrers": 0, "spend": {}, "names": {}}
    return assemble(
        **empty,
        purchases={"buyers": 0, "repeat_buyers": 0, "orders": 0, "revenue": Fraction(0)},
        sizes=sizes,
        active=active,
        window=window,
    )["cohorts"]


# --------------------------------------------------------------------------------------------------
# pandas
# --------------------------------------------------------------------------------------------------

_US = "(extract(epoch FROM {0}) * 1000000)::bigint"
COPY_CONTACTS = f"""
COPY (SELECT id, channel_id, {_US.format("acquired_at")}, {_US.format("first_purchase_at")}, referred_by_id,
             (total_spent * 100)::bigint, purchase_count, (last_interaction_at IS NOT NULL)::int, referral_count
      FROM contacts_contact WHERE merged_into_id IS NULL) TO STDOUT WITH (FORMAT csv)
"""
CONTACT_COLUMNS = [
    "id",
    "channel_id",
    "acquired_at",
    "first_purchase_at",
    "referred_by_id",
    "total_spent",
    "purchase_count",
    "interacted",
    "referral_count",
]
COPY_PURCHASES = f"""
COPY (SELECT contact_id, {_US.format("purchased_at")}, (amount * 100)::bigint FROM contacts_purchase
      WHERE status = 'paid' AND purchased_at >= '{{since}}' AND purchased_at < '{{end}}') TO STDOUT WITH (FORMAT csv)
"""
COPY_SPEND = (
    "COPY (SELECT channel_id, start_date, end_date, amount FROM contacts_channelspend) TO STDOUT WITH (FORMAT csv)"
)
COPY_NAMES = "COPY (SELECT id, name FROM contacts_channel) TO STDOUT WITH (FORMAT csv)"


def _copy(cursor, statement: str, names: list[str], **kwargs):
    import pandas as pd

    buffer = io.BytesIO()
    cursor.copy_expert(statement, buffer)
    buffer.seek(0)
    return pd.read_csv(buffer, header=None, names=names, **kwargs)


def pandas_overview(url: str, options: str, window: Window) -> tuple[float, float, dict]:
    import numpy as np
    import pandas as pd

    started = time.perf_counter()
    conn = connect(url, options)
    since = min(window.start, window.first_start)
    with conn.cursor() as cursor:
        contacts = _copy(
            cursor, COPY_CONTACTS, CONTACT_COLUMNS, dtype={"channel_id": "Int64", "referred_by_id": "Int64"}
        )
        purchases = _copy(
            cursor,
            COPY_PURCHASES.format(since=since.isoformat(), end=window.end.isoformat()),
            ["contact_id", "purchased_at", "amount"],
        )
        spend_rows = _copy(
            cursor, COPY_SPEND, ["channel_id", "start_date", "end_date", "amount"], dtype={"amount": str}
        )
        names_df = _copy(cursor, COPY_NAMES, ["id", "name"])
    conn.close()
    loaded = time.perf_counter()

    def us(moment: dt.datetime) -> int:
        return int(moment.timestamp()) * 1_000_000

    start, end = us(window.start), us(window.end)
    # Leads of P per channel, with R and the funnel.
    lead = contacts[(contacts["acquired_at"] >= start) & (contacts["acquired_at"] < end)]
    engaged = (lead["interacted"] == 1) | (lead["purchase_count"] >= 1)
    funnel_frame = pd.DataFrame(
        {
            "channel_id": lead["channel_id"],
            "leads": 1,
            "revenue": lead["total_spent"],
            "referred": lead["referred_by_id"].notna(),
            "engaged": engaged,
            "first_purchase": lead["purchase_count"] >= 1,
            "repeat_purchase": lead["purchase_count"] >= 2,
            "referrer": (lead["purchase_count"] >= 2) & (lead["referral_count"] >= 1),
        }
    )
    grouped = funnel_frame.groupby("channel_id", dropna=False).sum()
    leads = {}
    for channel_id, row in grouped.iterrows():
        key = None if pd.isna(channel_id) else int(channel_id)
        leads[key] = {k: int(row[k]) for k in ("leads", "referred", *FUNNEL_STEPS[1:])}
        leads[key]["revenue"] = Fraction(int(row["revenue"]), 100)
    referrers = int(lead["referred_by_id"].nunique())
    first = contacts["first_purchase_at"]
    new_series = contacts[(first >= start) & (first < end)].groupby("channel_id", dropna=False).size()
    new = {(None if pd.isna(k) else int(k)): int(v) for k, v in new_series.items()}

    # Paid purchases of live contacts in P.
    live = purchases[purchases["contact_id"].isin(contacts["id"])]
    in_p = live[(live["purchased_at"] >= start) & (live["purchased_at"] < end)]
    per_buyer = in_p.groupby("contact_id")["amount"].agg(["size", "sum"])
    purchase_figures = {
        "buyers": len(per_buyer),
        "repeat_buyers": int((per_buyer["size"] >= 2).sum()),
        "orders": int(per_buyer["size"].sum()),
        "revenue": Fraction(int(per_buyer["sum"].sum()), 100),
    }

    # Spend in P (a few hundred rows: exact fractions).
    spend_rows["start_date"] = pd.to_datetime(spend_rows["start_date"]).dt.date
    spend_rows["end_date"] = pd.to_datetime(spend_rows["end_date"]).dt.date
    spend = prorate(
        ((int(c), s, e, Decimal(a)) for c, s, e, a in spend_rows.itertuples(index=False, name=None)), window
    )
    names = dict(zip(names_df["id"], names_df["name"], strict=True))

    # The 12 x 12 matrix: acquisition month cohorts, months of paid purchases, in the business time zone.
    def month_index(micros: pd.Series) -> pd.Series:
        local = pd.to_datetime(micros, unit="us", utc=True).dt.tz_convert(window.tz_name)
        return local.dt.year * 12 + local.dt.month - 1

    first_index = window.first.year * 12 + window.first.month - 1
    members = contacts[(contacts["acquired_at"] >= us(window.first_start)) & (contacts["acquired_at"] < end)]
    cohort_of = pd.Series(month_index(members["acquired_at"]).to_numpy(), index=members["id"].to_numpy())
    size_counts = cohort_of.value_counts()
    activity = live[(live["purchased_at"] >= us(window.first_start)) & (live["purchased_at"] < end)]
    cohort = activity["contact_id"].map(cohort_of)
    keep = cohort.notna().to_numpy()
    cells = pd.DataFrame(
        {
            "contact_id": activity["contact_id"].to_numpy()[keep],
            "cohort": cohort.to_numpy()[keep].astype(np.int64),
            "month": month_index(activity["purchased_at"]).to_numpy()[keep],
        }
    ).drop_duplicates()
    cell_counts = cells[cells["month"] >= cells["cohort"]].groupby(["cohort", "month"]).size()

    def as_month(index: int) -> dt.date:
        return dt.date(index // 12, index % 12 + 1, 1)

    sizes = {as_month(int(k)): int(v) for k, v in size_counts.items()}
    active = {(as_month(int(c)), int(m) - int(c)): int(v) for (c, m), v in cell_counts.items()}
    assert min(sizes, default=window.first) >= as_month(first_index)
    figures = assemble(
        leads=leads,
        new=new,
        referrers=referrers,
        purchases=purchase_figures,
        spend=spend,
        names=names,
        sizes=sizes,
        active=active,
        window=window,
    )
    return loaded - started, time.perf_counter() - loaded, figures


if __name__ == "__main__":
    main()
