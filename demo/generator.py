"""The generator: one random stream, a plan of what must be known across contacts before any row is
made, pools drawn once, then the rows of the contacts chunk by chunk.

Every row is a function of the seed, the sizes and the day the data is made for. The steps draw from the
one stream in a fixed order (plan, pools, then per contact: person, purchases, memberships, touchpoints,
tags, the contact row), so changing that order changes the data made for a seed."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from . import communities, people, purchases, touchpoints
from .tables import RowFormat
from .vocabulary import DAY, HISTORY_DAYS, HOUR_WEIGHTS, PERSONAS, REGIONS


@dataclass
class Refs:
    """Ids of the reference rows the generated rows point to."""

    owners: list[int | None]
    owner_cum: list[float]
    staff_ids: list[int]
    channels: list[tuple[int, str, str]]  # id, name, kind
    tags: dict[tuple[str, str], int]
    products: list[tuple[int, int, int, str, int]]  # id, price in cents, cycle days, category, popularity


class Generator:
    def __init__(
        self,
        *,
        n: int,
        seed: int,
        purchases_per_contact: float,
        touchpoints_per_contact: float,
        today: dt.date,
        refs: Refs,
        ids: dict[str, int],
        fmt: RowFormat,
    ) -> None:
        self.n = n
        self.seed = seed
        self.rng = random.Random(seed)
        self.purchases_target = round(n * purchases_per_contact)
        self.touchpoints_target = round(n * touchpoints_per_contact)
        self.refs = refs
        self.ids = dict(ids)  # next id per table
        self.first_ids = dict(ids)
        self.fmt = fmt
        self.communities = communities.Communities(self)
        self._clock(today)

    # Time: internal times are seconds since local midnight of the first day, < self.t_end (local
    # midnight today). They become UTC text through two lookup tables (day, second of day).
    def _clock(self, today: dt.date) -> None:
        tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
        self.today = today
        self.first_day = today - dt.timedelta(days=HISTORY_DAYS)
        self.days = HISTORY_DAYS
        self.t_end = HISTORY_DAYS * DAY
        start = dt.datetime.combine(self.first_day, dt.time(), tzinfo=tz)
        epoch = int(start.timestamp())
        self.shift = epoch % DAY
        utc_day0 = dt.datetime.fromtimestamp(epoch - self.shift, tz=dt.UTC).date()
        self.day_text = [(utc_day0 + dt.timedelta(days=d)).isoformat() + " " for d in range(self.days + 4)]
        suffix = self.fmt.tz_suffix
        self.hms = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{suffix}" for s in range(DAY)]
        # Shop order numbers carry the local date.
        self.local_day_compact = [
            (self.first_day + dt.timedelta(days=d)).strftime("%Y%m%d") for d in range(self.days + 2)
        ]
        rng = self.rng
        hours = rng.choices(range(24), weights=HOUR_WEIGHTS, k=4096)
        self.tod = [h * 3600 + rng.randrange(3600) for h in hours]

    def ts(self, t: int) -> str:
        d, s = divmod(t + self.shift, DAY)
        return self.day_text[d] + self.hms[s]

    def next_id(self, table: str, count: int = 1) -> int:
        value = self.ids[table]
        self.ids[table] = value + count
        return value

    def plan(self) -> None:
        """What must be known across contacts before any row is made: arrival times, channels, purchase
        counts, referrals, touchpoint counts."""
        # Counts are each contact's expected share of the target, jittered and rounded at random.
        rnd = self.rng.random
        self.acq = people.acquisition_times(self)
        self.channel_of = people.channel_mix(self)
        self.purchase_plan = allocate(purchases.purchase_weights(self), self.purchases_target, rnd)
        self.referred_by, self.referral_count = people.referrals(self)
        self.silent, weights = touchpoints.touchpoint_weights(self)
        self.touch_plan = allocate(weights, self.touchpoints_target, rnd)

    def pools(self) -> None:
        """Names, phones, touchpoint kinds and products, drawn once for every chunk."""
        self.people = people.PeoplePools(self)
        self.touch_pools = touchpoints.TouchPools(self)
        self.products = purchases.ProductPools(self)

    def chunk(self, start: int, stop: int) -> dict[str, list[tuple]]:
        """Rows for contacts start..stop-1 and everything that belongs to them."""
        chunk = Chunk(self, start, stop)
        for i in range(start, stop):
            p = people.person(chunk, i)
            purchases.add_purchases(chunk, p)
            communities.add_memberships(chunk, p)
            touchpoints.add_touchpoints(chunk, p)
            intent = people.add_tags(chunk, p)
            people.add_contact(chunk, p, intent)
        return chunk.tables()

    def community_rows(self) -> list[tuple]:
        return self.communities.rows()

    @property
    def community_admins(self) -> list[tuple]:
        return self.communities.admins


class Chunk:
    """The rows of contacts start..stop-1 while they are made, and what every step of a contact reads."""

    def __init__(self, g: Generator, start: int, stop: int) -> None:
        rng, f, refs, ids = g.rng, g.fmt, g.refs, g.ids
        self.g = g
        self.start = start
        self.rnd, self.getrandbits = rng.random, rng.getrandbits
        self.null, self.true, self.false = f.null, f.true, f.false
        day_text, hms, shift = g.day_text, g.hms, g.shift

        def ts(t: int) -> str:  # Generator.ts without its attribute lookups: it runs for every row
            d, s = divmod(t + shift, DAY)
            return day_text[d] + hms[s]

        self.ts = ts
        self.tags = {key: str(value) for key, value in refs.tags.items()}
        self.today_ord = g.today.toordinal()
        self.cbase = ids["contacts_contact"]
        # Shop order numbers and member ids count from this run's first row, not from database ids, so
        # the same seed makes the same values; they cannot collide, as seeding needs an empty contacts
        # table (and purchases, tags ... belong to contacts).
        self.order_base = g.first_ids["contacts_purchase"] - 1
        self.contacts: list[tuple] = []
        self.purchases: list[tuple] = []
        self.items: list[tuple] = []
        self.touchpoints: list[tuple] = []
        self.memberships: list[tuple] = []
        self.contact_tags: list[tuple] = []
        size = stop - start
        self.personas = rng.choices(PERSONAS, cum_weights=g.people.persona_cum, k=size)
        self.owners = rng.choices(refs.owners, cum_weights=refs.owner_cum, k=size)
        self.regions = rng.choices(REGIONS, cum_weights=g.people.region_cum, k=size)
        self.tid = ids["contacts_touchpoint"]
        self.pid = ids["contacts_purchase"]
        self.iid = ids["contacts_purchaseitem"]
        self.ctid = ids["contacts_contacttag"]

    def tables(self) -> dict[str, list[tuple]]:
        """The chunk's rows by table; the next chunk's ids continue after them."""
        ids = self.g.ids
        ids["contacts_touchpoint"], ids["contacts_purchase"] = self.tid, self.pid
        ids["contacts_purchaseitem"], ids["contacts_contacttag"] = self.iid, self.ctid
        return {
            "contacts_contact": self.contacts,
            "contacts_purchase": self.purchases,
            "contacts_purchaseitem": self.items,
            "contacts_touchpoint": self.touchpoints,
            "communities_membership": self.memberships,
            "contacts_contacttag": self.contact_tags,
        }


def allocate(weights: list[float], total: int, rnd: Callable[[], float]) -> list[int]:
    """Integer counts proportional to ``weights`` summing to about ``total`` (rounded at random)."""
    weight_sum = sum(weights) or 1.0
    scale = total / weight_sum
    counts = []
    for w in weights:
        x = w * scale
        whole = int(x)
        counts.append(whole + (1 if rnd() < x - whole else 0))
    return counts
