"""Helpers shared by bench/seed_demo.py and bench/contacts_api.py: which database, Django set-up,
percentiles and the "figure vs target" line. The benchmarks run by hand, never in the test suite."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

# The benchmarks drop and fill databases: only these throw-away names are accepted.
ALLOWED_DATABASES = {"scrm_c", "test_scrm_c", "scrm_bench", "scrm_bench_c"}
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/scrm_bench"


def database_url(url: str | None) -> str:
    url = url or os.environ.get("DATABASE_URL") or DEFAULT_URL
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit(f"PostgreSQL only: {url}")
    name = parsed.path.lstrip("/")
    if name not in ALLOWED_DATABASES:
        sys.exit(f"Refusing to use database {name!r}: only {', '.join(sorted(ALLOWED_DATABASES))} are allowed.")
    return url


def database_recreate(url: str) -> None:
    """DROP and CREATE the database named in ``url`` (connecting to the ``postgres`` database)."""
    import psycopg2

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    conn = psycopg2.connect(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password or None,
        dbname="postgres",
    )
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scrm.settings")
    os.environ.setdefault("DEBUG", "0")
    import django

    django.setup()


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(rank) - 1]


def versus(value: float, target: float, unit: str) -> str:
    verdict = "within target" if value <= target else "OVER target"
    return f"{value:,.1f} {unit} = {value / target:.2f} × the {target:g} {unit} target ({verdict})"


def machine() -> str:
    load = os.getloadavg()
    return (
        f"{platform.node()}: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
        f"Python {platform.python_version()}"
    )


def postgres_settings() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
        values = []
        for name in ("shared_buffers", "max_wal_size", "work_mem", "maintenance_work_mem", "max_parallel_workers"):
            cursor.execute(f"SHOW {name}")
            values.append(f"{name}={cursor.fetchone()[0]}")
    return f"PostgreSQL {version}: " + ", ".join(values)
