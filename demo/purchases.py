"""Purchases: how many each contact makes (most people buy 0–2 times, a core buys often), and the orders
themselves, following the favourite product's repurchase cycle; about 5 % are refunded."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import TYPE_CHECKING

from .tables import cents
from .vocabulary import DAY, ORDER_SOURCES, PERSONAS, K

if TYPE_CHECKING:
    from .generator import Chunk, Generator
    from .people import Person


def purchase_weights(g: Generator) -> list[float]:
    """Each contact's share of the purchases: 42 % never buy, 40 % buy now and then, 18 % are the core;
    newer contacts have had less time."""
    rng, t_end = g.rng, g.t_end
    rnd = rng.random
    life = [min(1.0, (t_end - t) / (150 * DAY)) ** 0.7 for t in g.acq]
    weights = []
    for i in range(g.n):
        u = rnd()
        if u < 0.42:
            weights.append(0.0)
        elif u < 0.82:
            weights.append(life[i] * rng.lognormvariate(-0.125, 0.5))
        else:
            weights.append(life[i] * min(40.0, 2 + 2 * rng.paretovariate(1.6)))
    return weights


class ProductPools:
    """Products by category weighted by popularity, the personas' category weights, and order sources."""

    def __init__(self, g: Generator) -> None:
        products_by_category: dict[str, tuple[list, list]] = {}
        for product in g.refs.products:
            ids, weights = products_by_category.setdefault(product[3], ([], []))
            ids.append(product)
            weights.append(product[4])
        self.by_category = {cat: (items, list(accumulate(w))) for cat, (items, w) in products_by_category.items()}
        everything = g.refs.products
        self.any = (everything, list(accumulate(p[4] for p in everything)))
        self.sources = g.rng.choices(ORDER_SOURCES, weights=[s[2] for s in ORDER_SOURCES], k=1024)
        self.persona_categories = {
            p.key: (list(p.categories), list(accumulate(p.categories.values()))) for p in PERSONAS
        }


def add_purchases(c: Chunk, p: Person) -> None:
    """The contact's planned purchases with their items; sets the paid-purchase facts on ``p``."""
    k = p.purchases = c.g.purchase_plan[p.i]
    p.paid_n = p.paid_sum = 0
    p.first_paid = p.last_paid = None
    p.purchase_times = []
    if not k:
        return
    g, rng, rnd, getrandbits = c.g, c.g.rng, c.rnd, c.getrandbits
    pools, ts, NULL = g.products, c.ts, c.null
    t0, span, t_end, tod = p.t0, p.span, g.t_end, g.tod
    local_day_compact, order_base = g.local_day_compact, c.order_base
    it_append, p_append = c.items.append, c.purchases.append
    pid, iid = c.pid, c.iid
    paid_n = paid_sum = 0
    first_paid = last_paid = None
    purchase_times = p.purchase_times

    def pick(cum_pair):
        products, cum = cum_pair
        return products[bisect_right(cum, rnd() * cum[-1])]

    names, cum = pools.persona_categories[p.persona.key]
    fav = pick(pools.by_category[names[bisect_right(cum, rnd() * cum[-1])]])
    cycle = fav[2] * DAY
    t = t0 + (int(rnd() * 3 * 3600) if rnd() < 0.35 else int(rng.expovariate(1 / (12 * DAY))))
    offsets = [t - t0]
    for _ in range(k - 1):
        gap = cycle * (0.7 + 0.7 * rnd())
        if rnd() < 0.15:
            gap *= 2
        t += int(gap)
        offsets.append(t - t0)
    room = span - 3600
    if offsets[-1] > room:
        scale = room / max(offsets[-1], 1) * (0.6 + 0.4 * rnd())
        offsets = [int(o * scale) for o in offsets]
    source_name, prefix, _w = pools.sources[getrandbits(10)]
    if p.channel_kind == K.OFFLINE_STORE and rnd() < 0.7:
        source_name, prefix = "线下门店", "MD"
    for o in offsets:
        t = t0 + o
        t = t - t % DAY + tod[getrandbits(12)]
        if t < t0:
            t = t0 + int(rnd() * 600)
            if t >= t_end:
                t = t_end - 1
        purchase_times.append(t)
        n_items = 1 if rnd() < 0.65 else (2 if rnd() < 0.7 else 3)
        amount = 0
        used = []
        for x in range(n_items):
            product = fav if x == 0 and rnd() < 0.7 else pick(pools.any)
            if product in used:
                continue
            used.append(product)
            u = rnd()
            qty = 1 if u < 0.8 else (2 if u < 0.95 else 3)
            u = rnd()
            price = product[1] if u < 0.75 else (product[1] * 9 // 10 if u < 0.9 else product[1] * 8 // 10)
            amount += qty * price
            it_append((str(iid), str(pid), str(product[0]), str(qty), cents(price)))
            iid += 1
        text = ts(t)
        order_id = f"{prefix}{local_day_compact[t // DAY]}{pid - order_base:010d}"
        if rnd() < 0.05:
            refunded = min(t + DAY + int(rnd() * 6 * DAY), t_end - 1)
            status, refunded_at = "refunded", ts(refunded)
        else:
            status, refunded_at = "paid", NULL
            paid_n += 1
            paid_sum += amount
            if first_paid is None or t < first_paid:
                first_paid = t
            if last_paid is None or t > last_paid:
                last_paid = t
        p_append(
            (
                str(pid),
                p.scid,
                order_id,
                text,
                cents(amount),
                status,
                refunded_at,
                source_name,
                ts(t + 5 + int(rnd() * 300)),
            )
        )
        pid += 1
    c.pid, c.iid = pid, iid
    p.paid_n, p.paid_sum, p.first_paid, p.last_paid = paid_n, paid_sum, first_paid, last_paid
