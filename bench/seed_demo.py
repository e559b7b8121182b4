"""Benchmark: ``manage.py seed_demo --contacts 1000000`` on a fresh PostgreSQL database.

Target: the whole command (3,000,000 purchases, 10,000,000 touchpoints, their items, tags, memberships
and the denormalised facts) in under 10 minutes on a 2-core machine.

    .venv/bin/python bench/seed_demo.py                       # 1,000,000 contacts into scrm_bench
    .venv/bin/python bench/seed_demo.py --contacts 100000     # quicker
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/scrm_bench .venv/bin/python bench/seed_demo.py

It drops and re-creates the database (only scrm_bench, scrm_c or test_scrm_c are accepted), migrates,
runs seed_demo in this process (its per-phase timings are printed as it goes), then prints the total,
the rows and size of each table, and the ratio to the target. The database is kept afterwards:
bench/contacts_api.py reads it.
"""

from __future__ import annotations

import argparse
import time

from _common import database_recreate, database_url, django_setup, machine, postgres_settings, versus

TARGET_SECONDS = 600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", help="default: $DATABASE_URL or scrm_bench on 127.0.0.1")
    args = parser.parse_args()
    url = database_url(args.database_url)

    print(machine())
    database_recreate(url)
    django_setup(url)
    from django.core.management import call_command
    from django.db import connection

    print(postgres_settings())
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    print(f"migrate: {time.perf_counter() - started:.1f} s\n")

    started = time.perf_counter()
    call_command("seed_demo", contacts=args.contacts, seed=args.seed)
    total = time.perf_counter() - started

    print("\nTables after seeding:")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid), pg_indexes_size(c.oid)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r'
              AND (c.relname LIKE 'contacts\\_%%' OR c.relname LIKE 'communities\\_%%')
            ORDER BY pg_total_relation_size(c.oid) DESC
            """
        )
        rows = cursor.fetchall()
        cursor.execute("SELECT pg_database_size(current_database())")
        database_size = cursor.fetchone()[0]
    print(f"  {'table':<32} {'rows (estimate)':>16} {'total size':>12} {'of which indexes':>17}")
    for name, count, size, index_size in rows:
        print(f"  {name:<32} {count:>16,} {size / 2**20:>9,.0f} MB {index_size / 2**20:>14,.0f} MB")
    print(f"  database size {database_size / 2**30:.2f} GB")
    print()
    print(f"seed_demo --contacts {args.contacts:,}: {versus(total, TARGET_SECONDS, 's')}")
    if args.contacts != 1_000_000:
        print(f"  (the target is for 1,000,000 contacts; linear estimate {total * 1_000_000 / args.contacts:,.0f} s)")
    print(machine())


if __name__ == "__main__":
    main()
