"""``demo_data_seed``: the whole demo data set in one transaction, step by step.

1. Reference rows: the demo staff, channels, tag groups and tags, products (kept when they exist).
2. The plan and the pools (``demo.generator``), then the monthly channel spend.
3. PostgreSQL: the non-unique indexes and the foreign keys of the bulk tables are dropped for the load
   and recreated afterwards in the same transaction: a foreign key re-added is validated in one join
   instead of one lookup per row, and an index built once is much cheaper than ten million random
   inserts. If anything fails the transaction rolls back and the schema is as it was.
4. The rows, chunk by chunk: on PostgreSQL a second thread streams each finished chunk with ``COPY``
   while the main thread makes the next one; on SQLite the rows go through ``executemany``.
5. Sequences moved past the ids assigned here, the lifecycle stage checked against
   ``stage_expression()``, statistics.

The denormalised facts on each contact (first/last paid purchase, paid count and sum, last inbound
interaction, live referrals) are computed while its rows are made, with exactly the definitions of
``contact_facts_refresh``. The stage is computed the same way as a hint and then checked by one
``UPDATE ... SET stage = stage_expression()`` restricted to the rows that disagree, so
``stage_expression`` stays the one definition (the update changes nothing unless that definition has
moved on). ``tests/demo/test_seed_demo.py`` proves the equality by running ``contact_facts_refresh``
over every seeded contact.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import accumulate

from django.db import connection, transaction
from django.utils import timezone

from analytics.scores import scores_refresh
from contacts.models import Channel, ChannelSpend, Contact, Product, Tag, TagGroup
from contacts.services import stage_expression

from .campaigns import campaigns_demo_seed
from .followups import followups_demo_seed
from .generator import Generator, Refs
from .staff import STAFF, UNOWNED_SHARE, demo_integrator_token, demo_staff_ensure
from .tables import (
    BULK_TABLES,
    MODELS,
    CopyWriter,
    RowFormat,
    SqlWriter,
    check_layouts,
    next_ids,
    pg_secondary_schema,
    pg_sequence,
)
from .vocabulary import CHANNELS, CHUNK_CONTACTS, DAY, PRODUCTS, TAG_GROUPS


@dataclass
class DemoResult:
    rows: dict[str, int] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)
    stage_corrections: int = 0
    token: str = ""

    @property
    def total_seconds(self) -> float:
        return sum(seconds for _name, seconds in self.timings)


class _Phases:
    """Times the steps of a seed, logs each one and keeps it in the result."""

    def __init__(self, result: DemoResult, log: Callable[[str], None]) -> None:
        self.result, self.log = result, log
        self.clock = time.perf_counter()

    def since_last(self) -> float:
        return time.perf_counter() - self.clock

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.result.timings.append((name, now - self.clock))
        self.log(f"  {name:<34} {now - self.clock:8.1f} s")
        self.clock = now


def demo_seed(
    *,
    contacts: int,
    seed: int = 1,
    purchases_per_contact: float = 3.0,
    touchpoints_per_contact: float = 10.0,
    score: bool = True,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Everything ``manage.py seed_demo`` makes: the data (``demo_data_seed``), the demo staff, the
    campaigns content and the demo follow-ups; then the contacts table is vacuumed and, unless ``score``
    is false, every contact is scored (``demo_score``)."""
    result = demo_data_seed(
        contacts=contacts,
        seed=seed,
        purchases_per_contact=purchases_per_contact,
        touchpoints_per_contact=touchpoints_per_contact,
        log=log,
    )
    staff = demo_staff_ensure()
    campaign_rows = campaigns_demo_seed(manager=staff["manager"], operator=staff["operator"])
    result.rows.update({f"campaigns: {name}": count for name, count in campaign_rows.items()})
    result.rows.update({f"campaigns: {name}": count for name, count in followups_demo_seed(users=staff).items()})
    vacuum_started = time.perf_counter()
    demo_vacuum()
    if time.perf_counter() - vacuum_started > 0.05:
        log(f"  {'vacuum contacts':<34} {time.perf_counter() - vacuum_started:8.1f} s")
    if score:
        demo_score(result, log=log)
    return result


def demo_score(result: DemoResult, *, log: Callable[[str], None] = print) -> None:
    """Score the demo data right away (RFM layers and predicted CLV, ``analytics.scores``), so that the
    contact pages and the layer report show scores on a fresh install instead of waiting for the night."""
    started = time.perf_counter()
    run = scores_refresh()
    seconds = time.perf_counter() - started
    result.timings.append(("scores (RFM, predicted CLV)", seconds))
    if run is None:
        log(f"  {'scores: another run in progress':<34} {seconds:8.1f} s")
        return
    result.rows["analytics_contactscore"] = run.contacts_scored
    log(f"  {'scores (RFM, predicted CLV)':<34} {seconds:8.1f} s")


def demo_data_seed(
    *,
    contacts: int,
    seed: int = 1,
    purchases_per_contact: float = 3.0,
    touchpoints_per_contact: float = 10.0,
    today: dt.date | None = None,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Fill an empty database with the demo brand's data (see the module docstring). All in one
    transaction; the demo staff are created first (``demo_staff_ensure``)."""
    if contacts < 1:
        raise ValueError("contacts must be at least 1")
    check_layouts()
    today = today or timezone.localdate()
    result = DemoResult()
    postgres = connection.vendor == "postgresql"
    phases = _Phases(result, log)

    with transaction.atomic():
        if postgres:
            _pg_session_settings()
        users = demo_staff_ensure()
        channels, tags, products = _reference_data()
        ids = next_ids([*MODELS])
        generator = Generator(
            n=contacts,
            seed=seed,
            purchases_per_contact=purchases_per_contact,
            touchpoints_per_contact=touchpoints_per_contact,
            today=today,
            refs=_refs(users, channels, tags, products),
            ids=ids,
            fmt=RowFormat(connection.vendor),
        )
        phases.done("staff, channels, tags, products")
        generator.plan()
        generator.pools()
        result.rows["contacts_channelspend"] = _channel_spend(generator, channels)
        phases.done("plan (times, referrals, phones)")

        create: list[str] = []
        if postgres:
            create = _pg_drop_secondary_schema(phases)
        counts = _load_rows(generator, contacts, postgres=postgres, phases=phases, log=log)
        phases.done("generate and load rows")

        if postgres:
            _pg_recreate_secondary_schema(create, log)
            phases.done(f"recreate {len(create)} indexes and foreign keys")
            _pg_move_sequences()
        new_contacts = Contact.objects.filter(pk__gte=ids["contacts_contact"])
        result.stage_corrections = new_contacts.exclude(stage=stage_expression()).update(stage=stage_expression())
        phases.done("stage check (stage_expression)")
        if postgres:
            _pg_analyze()
            phases.done("analyze")
    result.rows.update(counts)
    result.rows["communities_community_admins"] = len(generator.community_admins)
    result.token = demo_integrator_token(users["integrator"])
    return result


def demo_vacuum() -> None:
    """VACUUM (ANALYZE) the freshly loaded contacts table outside any transaction, so its visibility
    map is set and counts can use index-only scans right away (PostgreSQL only)."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE) contacts_contact")


# --- Reference data -----------------------------------------------------------------------------


def _reference_data() -> tuple[list, dict, list]:
    channels = []
    for name, kind, _a, _b, _cost, description in CHANNELS:
        channel, _created = Channel.objects.get_or_create(
            name=name, defaults={"kind": kind, "description": description}
        )
        channels.append((channel.pk, name, channel.kind))
    tags = {}
    for order, (group_name, exclusive, colour, description, names) in enumerate(TAG_GROUPS):
        group, _created = TagGroup.objects.get_or_create(
            name=group_name, defaults={"exclusive": exclusive, "description": description, "sort_order": order * 10}
        )
        existing = {t.name: t.pk for t in Tag.objects.filter(group=group)}
        Tag.objects.bulk_create([Tag(group=group, name=n, color=colour) for n in names if n not in existing])
        existing = {t.name: t.pk for t in Tag.objects.filter(group=group)}
        tags.update({(group_name, n): existing[n] for n in names})
    products = []
    for sku, name, price, cycle, category, popularity in PRODUCTS:
        product, _created = Product.objects.get_or_create(
            sku=sku, defaults={"name": name, "price": Decimal(price), "repurchase_cycle_days": cycle}
        )
        products.append(
            (product.pk, int(product.price * 100), product.repurchase_cycle_days or cycle, category, popularity)
        )
    return channels, tags, products


def _refs(users: dict, channels: list, tags: dict, products: list) -> Refs:
    operators = [m for m in STAFF if m.share]
    return Refs(
        owners=[users[m.username].pk for m in operators] + [None],
        owner_cum=list(accumulate([m.share for m in operators] + [UNOWNED_SHARE])),
        staff_ids=[users[m.username].pk for m in operators],
        channels=channels,
        tags=tags,
        products=products,
    )


def _channel_spend(generator: Generator, channels: list) -> int:
    """Monthly spend per channel: its leads that month × its cost per lead, ±15 %."""
    rng = random.Random(f"{generator.seed}-spend")  # its own stream: the rows do not depend on it
    leads: dict[tuple[int, int], int] = {}
    month_of_day = []
    for d in range(generator.days):
        day = generator.first_day + dt.timedelta(days=d)
        month_of_day.append(day.year * 12 + day.month - 1)
    for channel, t in zip(generator.channel_of, generator.acq, strict=True):
        key = (channel, month_of_day[t // DAY])
        leads[key] = leads.get(key, 0) + 1
    rows = []
    first = generator.first_day.year * 12 + generator.first_day.month - 1
    last = generator.today.year * 12 + generator.today.month - 1
    for index, (channel_id, _name, _kind) in enumerate(channels):
        cost = CHANNELS[index][4]
        if not cost:
            continue
        for month in range(first, last + 1):
            count = leads.get((index, month), 0)
            if not count:
                continue
            start = dt.date(month // 12, month % 12 + 1, 1)
            end = dt.date(month // 12 + (month % 12 + 1) // 12, (month % 12 + 1) % 12 + 1, 1) - dt.timedelta(days=1)
            amount = Decimal(round(count * cost * (0.85 + 0.3 * rng.random()), 2)).quantize(Decimal("0.01"))
            rows.append(
                ChannelSpend(channel_id=channel_id, start_date=start, end_date=end, amount=amount, note="月度投放")
            )
    ChannelSpend.objects.bulk_create(rows)
    return len(rows)


# --- Loading ------------------------------------------------------------------------------------


def _load_rows(
    generator: Generator, contacts: int, *, postgres: bool, phases: _Phases, log: Callable[[str], None]
) -> dict[str, int]:
    """Make the rows chunk by chunk and load them; returns the rows per table."""
    writer = CopyWriter() if postgres else SqlWriter()
    counts = dict.fromkeys(BULK_TABLES, 0)
    chunk = CHUNK_CONTACTS
    try:
        for start in range(0, contacts, chunk):
            stop = min(contacts, start + chunk)
            tables = generator.chunk(start, stop)
            for table, rows in tables.items():
                counts[table] += len(rows)
            writer.write(list(tables.items()))
            if contacts > chunk:
                log(
                    f"    {stop:>10,} contacts  {counts['contacts_purchase']:>11,} purchases  "
                    f"{counts['contacts_touchpoint']:>12,} touchpoints  {phases.since_last():7.1f} s"
                )
        communities = generator.community_rows()
        writer.write(
            [("communities_community", communities), ("communities_community_admins", generator.community_admins)]
        )
    finally:
        writer.close()
    counts["communities_community"] = len(communities)
    return counts


def _pg_session_settings() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO off")
        cursor.execute("SET LOCAL maintenance_work_mem TO '512MB'")
        cursor.execute("SET LOCAL work_mem TO '64MB'")


def _pg_drop_secondary_schema(phases: _Phases) -> list[str]:
    """Drop the non-unique indexes and foreign keys of the bulk tables; returns the statements that
    recreate them."""
    with connection.cursor() as cursor:
        # Check the deferred foreign keys of the rows written so far now: a table with pending
        # trigger events cannot be altered.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        drop, create = pg_secondary_schema(cursor)
        for statement in drop:
            cursor.execute(statement)
    phases.done(f"drop {len(drop)} indexes and foreign keys")
    return create


def _pg_recreate_secondary_schema(create: list[str], log: Callable[[str], None]) -> None:
    slowest = []
    with connection.cursor() as cursor:
        for statement in create:
            started = time.perf_counter()
            cursor.execute(statement)
            slowest.append((time.perf_counter() - started, statement))
    for seconds, statement in sorted(slowest, reverse=True)[:8]:
        if seconds >= 1:
            log(f"    {seconds:6.1f} s  {statement[:110]}")


def _pg_move_sequences() -> None:
    """Move each table's sequence past the ids assigned by the generator."""
    with connection.cursor() as cursor:
        for table in MODELS:
            cursor.execute(
                f"SELECT setval(%s, GREATEST((SELECT MAX(id) FROM {table}), 1))", [pg_sequence(cursor, table)]
            )


def _pg_analyze() -> None:
    with connection.cursor() as cursor:
        for table in (*MODELS, "contacts_channelspend"):
            cursor.execute(f"ANALYZE {table}")
