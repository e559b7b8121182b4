"""The people: when each contact arrives and through which channel, who referred whom, where they live,
their tags and finally the contact row itself, with the facts its other rows imply.

Every function draws from the generator's one random stream; the order of the calls is part of the
output (the same seed makes the same data), so the steps run in the order ``Generator`` calls them."""

from __future__ import annotations

import datetime as dt
import math
from bisect import bisect_right
from itertools import accumulate
from typing import TYPE_CHECKING

from contacts.phones import _cn_mobile_prefix_is_valid

from .tables import cents
from .vocabulary import (
    CHANNELS,
    CONSENT_SOURCE_OF_KIND,
    DAY,
    EMAIL_DOMAINS,
    INTENT_TAG,
    MEMBER_LEVELS,
    NICKNAMES,
    PERSONAS,
    PROMOS,
    REFERRED_SHARE,
    REGIONS,
    SKIN_TYPES,
    SOURCE_TAG_OF_CHANNEL,
    STORE_CITIES,
    TEA_TASTES,
    TIER_TAG,
    UNIONID_MULTIPLIER,
    WECOM_MULTIPLIER,
    K,
    Persona,
)

if TYPE_CHECKING:
    from .generator import Chunk, Generator


class Person:
    """One contact while its rows are made: what the later steps need from the earlier ones."""

    __slots__ = (
        "i",
        "scid",
        "t0",
        "span",
        "persona",
        "sowner",
        "channel_id",
        "channel_name",
        "channel_kind",
        "silent",
        "female",
        "province",
        "city",
        "tier",
        "purchases",
        "paid_n",
        "paid_sum",
        "first_paid",
        "last_paid",
        "purchase_times",
        "events",
        "stays",
        "last_in",
    )

    i: int
    scid: str
    t0: int
    span: int
    persona: Persona
    sowner: str | None
    channel_id: int
    channel_name: str
    channel_kind: str
    silent: bool
    female: bool
    province: str
    city: str
    tier: int
    purchases: int  # planned count
    paid_n: int
    paid_sum: int  # cents
    first_paid: int | None
    last_paid: int | None
    purchase_times: list[int]
    events: list[tuple]  # (time, kind, medium, staff, community, metadata) of fixed touchpoints
    stays: list[tuple]  # (community, joined, left)
    last_in: int | None


# --- Plan ---------------------------------------------------------------------------------------


def acquisition_times(g: Generator) -> list[int]:
    """When each contact arrives, sorted: growing over time (density ∝ 0.35 + x), with surges around the
    big promotions."""
    rnd, getrandbits = g.rng.random, g.rng.getrandbits
    days, tod = g.days, g.tod
    promo_days = []
    for year in (g.first_day.year, g.first_day.year + 1, g.today.year):
        for month, day in PROMOS:
            d = (dt.date(year, month, day) - g.first_day).days
            if 0 <= d < days and d not in promo_days:
                promo_days.append(d)
    a = 0.35
    norm = 2 * (a + 0.5)
    acq = []
    for _ in range(g.n):
        if promo_days and rnd() < 0.08:
            d = promo_days[int(rnd() * len(promo_days))] - int(rnd() * 4)
        else:
            d = int((-a + math.sqrt(a * a + norm * rnd())) * days)
        d = min(max(d, 0), days - 1)
        acq.append(d * DAY + tod[getrandbits(12)])
    acq.sort()
    return acq


def channel_mix(g: Generator) -> list[int]:
    """Each contact's channel (an index into CHANNELS): the mix drifts from the first shares to the
    current ones."""
    acq, n, t_end = g.acq, g.n, g.t_end
    buckets = 12
    channel_of = []
    start = 0
    for b in range(buckets):
        x = (b + 0.5) / buckets
        weights = [c[2] + (c[3] - c[2]) * x for c in CHANNELS]
        stop = bisect_right(acq, (b + 1) * t_end // buckets) if b < buckets - 1 else n
        channel_of.extend(g.rng.choices(range(len(CHANNELS)), weights=weights, k=stop - start))
        start = stop
    return channel_of


def referrals(g: Generator) -> tuple[list[int], list[int]]:
    """Who referred whom, and how many each referred. A contact from 老带新 / 分销 / 裂变 was usually
    brought in by an earlier customer; some customers become hubs (KOCs) who bring many."""
    rnd, n, acq, channel_of = g.rng.random, g.n, g.acq, g.channel_of
    referred_by = [-1] * n
    referral_count = [0] * n
    buyers: list[int] = []
    hubs: list[int] = []
    eligible = 0
    kinds = [c[1] for c in CHANNELS]
    plan = g.purchase_plan
    for i in range(n):
        share = REFERRED_SHARE.get(kinds[channel_of[i]])
        if share and rnd() < share:
            limit = acq[i] - 3 * DAY
            while eligible < len(buyers) and acq[buyers[eligible]] <= limit:
                eligible += 1
            if eligible:
                r = hubs[int(rnd() * len(hubs))] if hubs and rnd() < 0.35 else buyers[int(rnd() * eligible)]
                referred_by[i] = r
                referral_count[r] += 1
                hubs.append(r)
        if plan[i]:
            buyers.append(i)
    return referred_by, referral_count


# --- Pools --------------------------------------------------------------------------------------


class PeoplePools:
    """Names, personas, regions, phone numbers and birthdays, drawn once so that a row is a few lookups."""

    def __init__(self, g: Generator) -> None:
        from faker.providers.person.zh_CN import Provider as ZhNames

        rng = g.rng
        last_names = list(ZhNames.last_names)
        self.surnames = rng.choices(last_names, weights=list(ZhNames.last_names.values()), k=4096)
        self.given_female = list(ZhNames.first_names_female)
        self.given_male = list(ZhNames.first_names_male)
        self.persona_cum = list(accumulate(p.weight for p in PERSONAS))
        self.region_cum = list(accumulate(r[1] for r in REGIONS))
        self.store_cities = [(r[0], city, tier) for r in REGIONS for city, tier in r[2] if city in STORE_CITIES]
        # Unique, valid mainland mobile numbers: distinct integers drawn from 2,000 valid 7-digit
        # blocks (13x/15x/18x/19x...) × 10,000 subscriber numbers.
        prefixes3 = (
            "130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 173 175 176 177 178 "
            "180 181 182 183 184 185 186 187 188 189 191 198 199"
        ).split()
        blocks = max(2000, g.n // 400)
        prefixes: list[str] = []
        seen = set()
        while len(prefixes) < blocks:
            p7 = rng.choice(prefixes3) + f"{rng.randrange(10000):04d}"
            if p7 not in seen and _cn_mobile_prefix_is_valid(p7):
                seen.add(p7)
                prefixes.append(p7)
        self.phone_prefixes = prefixes
        self.phone_numbers = rng.sample(range(blocks * 10000), g.n)
        self.birth_day0 = dt.date(g.today.year - 72, 1, 1)
        self.birth_text = [
            (self.birth_day0 + dt.timedelta(days=d)).isoformat() for d in range((g.today - self.birth_day0).days)
        ]


# --- One contact --------------------------------------------------------------------------------


def person(c: Chunk, i: int) -> Person:
    """Contact ``i``: arrival, owner, channel and where they live."""
    g, rnd = c.g, c.rnd
    j = i - c.start
    p = Person()
    p.i = i
    p.t0 = g.acq[i]
    p.span = g.t_end - p.t0
    p.scid = str(c.cbase + i)
    p.persona = persona = c.personas[j]
    owner = c.owners[j]
    p.sowner = c.null if owner is None else str(owner)
    p.channel_id, p.channel_name, p.channel_kind = g.refs.channels[g.channel_of[i]]
    p.silent = g.silent[i]
    p.female = rnd() < persona.female_share
    province, _w, cities = c.regions[j]
    city, tier = cities[int(rnd() * len(cities))]
    if p.channel_kind == K.OFFLINE_STORE and city not in STORE_CITIES:
        store_cities = g.people.store_cities
        province, city, tier = store_cities[int(rnd() * len(store_cities))]
    elif rnd() < 0.05:
        province = city = ""
        tier = 0
    p.province, p.city, p.tier = province, city, tier
    return p


def add_tags(c: Chunk, p: Person) -> str:
    """The contact's tags, as operators and automations would have set them; returns the intent level."""
    rnd, tags, NULL = c.rnd, c.tags, c.null
    t0, span, sowner, t_end = p.t0, p.span, p.sowner, c.g.t_end
    k, paid_n, persona = p.purchases, p.paid_n, p.persona
    u = rnd()
    if k:
        intent = "high" if u < 0.4 else ("medium" if u < 0.7 else ("low" if u < 0.8 else "none"))
    else:
        intent = "none" if u < 0.4 else ("low" if u < 0.7 else ("medium" if u < 0.9 else "high"))
    tag_rows = [(tags[("来源", SOURCE_TAG_OF_CHANNEL[p.channel_name])], NULL, "automation", t0)]
    if intent != "none":
        tag_rows.append((tags[("意向度", INTENT_TAG[intent])], sowner, "manual", t0 + int(span * 0.2 * rnd())))
    if rnd() < 0.7:
        tag_rows.append((tags[("人生阶段", persona.stage_tag)], sowner, "manual", t0 + int(span * 0.3 * rnd())))
    if rnd() < 0.6:
        interests = persona.interests
        first = int(rnd() * len(interests))
        picked = (interests[first],) if rnd() < 0.6 else (interests[first], interests[first - 1])
        for interest in picked:
            tag_rows.append((tags[("兴趣偏好", interest)], sowner, "manual", t0 + int(span * rnd())))
    if p.tier:
        tag_rows.append((tags[("地域", TIER_TAG[p.tier])], NULL, "automation", t0 + 60))
    if paid_n:
        level = next((name for limit, name in MEMBER_LEVELS if p.paid_sum < limit), "黑金会员")
        tag_rows.append((tags[("会员等级", level)], NULL, "automation", p.last_paid + 600))
    u = rnd()
    if c.g.referral_count[p.i] >= 2:
        tag_rows.append((tags[("运营标记", "高潜KOC")], sowner, "manual", t0 + int(span * rnd())))
    if u < 0.05:
        tag_rows.append((tags[("运营标记", "价格敏感")], sowner, "manual", t0 + int(span * rnd())))
    elif u < 0.12:
        tag_rows.append((tags[("运营标记", "需回访")], sowner, "manual", t0 + int(span * rnd())))
    elif u < 0.16 and paid_n:
        tag_rows.append((tags[("运营标记", "大促活跃")], sowner, "manual", t0 + int(span * rnd())))
    elif u < 0.22 and not p.silent and p.last_in is not None and t_end - p.last_in > 90 * DAY:
        tag_rows.append((tags[("运营标记", "沉睡待唤醒")], sowner, "manual", t_end - int(rnd() * 30 * DAY)))
    day_text, hms, shift = c.g.day_text, c.g.hms, c.g.shift
    ct_append, ctid, scid = c.contact_tags.append, c.ctid, p.scid
    for tag_id, by, source, t in tag_rows:
        d, s = divmod((t if t < t_end else t_end - 1) + shift, DAY)
        ct_append((str(ctid), scid, tag_id, by, source, day_text[d] + hms[s]))
        ctid += 1
    c.ctid = ctid
    return intent


def add_contact(c: Chunk, p: Person, intent: str) -> None:
    """The contact row, with the denormalised facts of the rows made before it."""
    g, rnd, getrandbits, ts = c.g, c.rnd, c.getrandbits, c.ts
    NULL, TRUE, FALSE = c.null, c.true, c.false
    pools, i, t0, span, persona = g.people, p.i, p.t0, p.span, p.persona
    if rnd() < 0.14:
        name = NICKNAMES[int(rnd() * len(NICKNAMES))]
    else:
        given = pools.given_female if p.female else pools.given_male
        name = given[int(rnd() * len(given))]
        if len(name) == 1 and rnd() < 0.6:
            name += given[int(rnd() * len(given))][-1]
        name = pools.surnames[getrandbits(12)] + name
    number = pools.phone_numbers[i]
    phone = "+86" + pools.phone_prefixes[number // 10000] + f"{number % 10000:04d}" if rnd() < 0.93 else NULL
    email = f"{10_000_000 + int(rnd() * 3_989_999_999)}@{EMAIL_DOMAINS[int(rnd() * 7)]}" if rnd() < 0.15 else ""
    external_id = f"YZ{i + 1:010d}" if rnd() < 0.65 else NULL
    wecom = f"wm{((i + 1) * WECOM_MULTIPLIER) % (1 << 64):016x}" if rnd() < 0.75 else NULL
    unionid = f"o{((i + 1) * UNIONID_MULTIPLIER) % (1 << 100):026x}" if rnd() < 0.55 else NULL
    gender = ("female" if p.female else "male") if rnd() < 0.92 else "unknown"
    if rnd() < 0.75:
        lo, hi = persona.ages
        age_days = int((lo + (hi - lo + 1) * rnd()) * 365.25)
        birthday = pools.birth_text[c.today_ord - age_days - pools.birth_day0.toordinal()]
    else:
        birthday = NULL
    occupation = persona.occupations[int(rnd() * len(persona.occupations))] if rnd() < 0.85 else ""
    ref = g.referred_by[i]
    consent_at = consent_source = opted_out = NULL
    consent = FALSE
    if rnd() < 0.88:
        consent = TRUE
        consent_at = ts(t0 + int(rnd() * 600))
        consent_source = CONSENT_SOURCE_OF_KIND.get(p.channel_kind, "企业微信好友验证")
        if rnd() < 0.045:
            consent = FALSE
            opted_out = ts(t0 + 600 + int((span - 600) * rnd()))
    else:
        consent_source = ""
    attributes = _attributes(c, persona)
    refs_n = g.referral_count[i]
    paid_n, first_paid, last_paid, last_in = p.paid_n, p.first_paid, p.last_paid, p.last_in
    updated = max(t0, last_paid or 0, last_in or 0)
    acquired = ts(t0)
    c.contacts.append(
        (
            p.scid,
            name,
            phone,
            email,
            external_id,
            wecom,
            unionid,
            gender,
            birthday,
            p.province,
            p.city,
            occupation,
            str(p.channel_id),
            acquired,
            p.sowner,
            intent,
            _stage_hint(paid_n, refs_n, last_in),
            NULL if ref < 0 else str(c.cbase + ref),
            attributes,
            consent,
            consent_at,
            consent_source,
            opted_out,
            NULL,
            NULL,
            NULL if first_paid is None else ts(first_paid),
            NULL if last_paid is None else ts(last_paid),
            str(paid_n),
            cents(p.paid_sum),
            NULL if last_in is None else ts(last_in),
            str(refs_n),
            acquired,
            ts(updated),
        )
    )


def _attributes(c: Chunk, persona: Persona) -> str:
    """Custom attributes (JSON text) of some personas: a baby's age, a due date, a skin type, a taste."""
    rnd = c.rnd
    if persona.key in ("mom", "expecting") and rnd() < 0.6:
        if persona.key == "mom":
            return f'{{"宝宝月龄": {1 + int(rnd() * 47)}}}'
        return f'{{"预产期": "{(c.g.today + dt.timedelta(days=20 + int(rnd() * 230))).isoformat()}"}}'
    if persona.series == "skin" and rnd() < 0.4:
        return f'{{"肤质": "{SKIN_TYPES[int(rnd() * 5)]}"}}'
    if persona.key == "tea" and rnd() < 0.4:
        return f'{{"口味偏好": "{TEA_TASTES[int(rnd() * 5)]}"}}'
    return "{}"


def _stage_hint(paid_n: int, referrals_n: int, last_in: int | None) -> str:
    """The lifecycle stage as ``contacts.services.stage_expression`` defines it (checked after the load)."""
    if paid_n and referrals_n:
        return "advocate"
    if paid_n >= 2:
        return "repeat"
    if paid_n:
        return "customer"
    if last_in is not None:
        return "engaged"
    return "lead"
