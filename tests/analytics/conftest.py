"""A randomised but seeded data set for the analytics tests, built through the services (so the
denormalised facts on contacts are exactly what production would have), once per test module.

Building it takes thousands of service calls, so it is committed once per module (outside the per-test
transactions, which roll back whatever a test writes on top of it) and deleted afterwards.
"""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.conf import settings

from communities.models import Community, Membership
from communities.services import membership_join, membership_leave
from contacts.models import Channel, ChannelSpend, Contact, ContactTag, Purchase, PurchaseItem, Touchpoint
from contacts.services import (
    contact_create,
    contact_erase,
    contact_merge,
    purchase_record,
    purchase_refund,
    touchpoint_record,
)
from scrm import roles
from tests.factories import UserFactory

TZ = zoneinfo.ZoneInfo(settings.TIME_ZONE)
FIRST_DAY = dt.date(2024, 10, 1)
LAST_DAY = dt.date(2025, 12, 31)
INBOUND_KINDS = [k for k in Touchpoint.Kind.values if k not in Touchpoint.OUTBOUND_KINDS]


@dataclass
class Dataset:
    users: dict[str, object]
    channels: list[Channel]
    communities: list[Community]
    merged: list[int] = field(default_factory=list)
    erased: list[int] = field(default_factory=list)


def local(day: dt.date, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second), tzinfo=TZ)


def _random_moment(rng: random.Random, after: dt.datetime, max_days: int) -> dt.datetime:
    roll = rng.random()
    moment = after + dt.timedelta(days=rng.randrange(0, max_days), seconds=rng.randrange(0, 86400))
    day = moment.astimezone(TZ).date()
    if roll < 0.06:
        # 23:30 on the last day of a month (15:30 UTC): counts in that month.
        next_month = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        return local(next_month - dt.timedelta(days=1), 23, 30)
    if roll < 0.12:
        # 00:10 on the first day of a month (16:10 UTC the day before): counts in the new month.
        return local(day.replace(day=1), 0, 10)
    return moment


def build_dataset(seed: int = 20250101, contacts: int = 260) -> Dataset:
    rng = random.Random(seed)
    users = {
        "manager": UserFactory(username="analytics-manager", role=roles.MANAGER),
        "op1": UserFactory(username="analytics-op1", role=roles.OPERATOR),
        "op2": UserFactory(username="analytics-op2", role=roles.OPERATOR),
    }
    channels = [Channel.objects.create(name=f"analytics-channel-{i}", kind=Channel.Kind.PAID_ADS) for i in range(4)]
    for channel in channels[:3]:
        for _ in range(7):
            start = FIRST_DAY + dt.timedelta(days=rng.randrange(0, 470))
            end = start + dt.timedelta(days=rng.choice([0, 3, 13, 29, 30, 44, 61]))
            amount = Decimal(rng.randrange(0, 900_001)) / 100
            ChannelSpend.objects.create(channel=channel, start_date=start, end_date=end, amount=amount)
    communities = [
        Community.objects.create(name="analytics-group-a", owner=users["op1"]),
        Community.objects.create(name="analytics-group-b", owner=users["op2"]),
        Community.objects.create(name="analytics-group-c", owner=users["manager"]),
    ]
    communities[2].admins.add(users["op1"])

    created: list[Contact] = []
    order = 0
    span = (LAST_DAY - FIRST_DAY).days + 1
    for i in range(contacts):
        acquired = _random_moment(rng, local(FIRST_DAY), span)
        if acquired.astimezone(TZ).date() > LAST_DAY:
            acquired = local(LAST_DAY, 12)
        referrer = rng.choice(created) if created and rng.random() < 0.25 else None
        contact = contact_create(
            name=f"客户{i}",
            channel=rng.choice([*channels, None]),
            owner=rng.choice([users["op1"], users["op1"], users["op2"], users["manager"], None]),
            acquired_at=acquired,
            intent_level=rng.choice(Contact.IntentLevel.values),
            referred_by=referrer,
        )
        created.append(contact)
        if rng.random() < 0.65:
            previous = None
            for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4, 6])):
                if previous is not None and rng.random() < 0.12:
                    moment = previous + dt.timedelta(minutes=rng.randrange(1, 120))  # same day, mostly
                elif rng.random() < 0.05:
                    moment = acquired - dt.timedelta(days=rng.randrange(1, 40))  # bought before joining
                else:
                    moment = _random_moment(rng, previous or acquired, 200)
                previous = moment
                amount = Decimal(0) if rng.random() < 0.03 else Decimal(rng.randrange(100, 300_000)) / 100
                order += 1
                purchase, _created = purchase_record(
                    contact=contact, external_order_id=f"AN{order:06d}", purchased_at=moment, amount=amount
                )
                if rng.random() < 0.1:
                    purchase_refund(purchase=purchase, refunded_at=moment + dt.timedelta(days=3))
        for _ in range(rng.randrange(0, 7)):
            kind = Touchpoint.Kind.MESSAGE_OUT if rng.random() < 0.4 else rng.choice(INBOUND_KINDS)
            touchpoint_record(
                contact=contact,
                medium=rng.choice(Touchpoint.Medium.values),
                kind=kind,
                occurred_at=_random_moment(rng, acquired, 300),
            )
        if rng.random() < 0.45:
            community = rng.choice(communities)
            joined = _random_moment(rng, acquired, 120)
            membership, _created = membership_join(community=community, contact=contact, joined_at=joined)
            if rng.random() < 0.3:
                membership_leave(membership=membership, left_at=joined + dt.timedelta(days=rng.randrange(0, 200)))

    data = Dataset(users=users, channels=channels, communities=communities)
    pool = list(created)
    rng.shuffle(pool)
    for _ in range(14):
        primary, duplicate = pool.pop(), pool.pop()
        contact_merge(primary=primary, duplicate=duplicate)
        data.merged.append(duplicate.pk)
    for _ in range(9):
        victim = pool.pop()
        contact_erase(contact=victim)
        data.erased.append(victim.pk)
    return data


def delete_everything() -> None:
    """Remove what ``build_dataset`` (and the tests, were anything committed) wrote."""
    from analytics.models import ClvFit, ContactScore

    ContactScore.objects.all().delete()
    ClvFit.objects.all().delete()
    Membership.objects.all().delete()
    Touchpoint.objects.all().delete()
    PurchaseItem.objects.all().delete()
    Purchase.objects.all().delete()
    ContactTag.objects.all().delete()
    Contact.objects.update(referred_by=None, merged_into=None)
    Contact.objects.all().delete()
    Community.objects.all().delete()
    ChannelSpend.objects.all().delete()
    Channel.objects.all().delete()
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username__startswith="analytics-").delete()


@pytest.fixture(scope="module")
def dataset(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        try:
            yield build_dataset()
        finally:
            delete_everything()
