"""Touchpoints: how many each contact has (buyers interact more; a fifth of non-buyers never answer) and
the touchpoints themselves, in the groups a contact belongs to or one to one with the owner."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from contacts.models import Touchpoint

from .vocabulary import CAMPAIGNS, DAY, TOUCH_KINDS, M, T

if TYPE_CHECKING:
    from .generator import Chunk, Generator
    from .people import Person


def touchpoint_weights(g: Generator) -> tuple[list[bool], list[float]]:
    """Who never answers, and each contact's share of the touchpoints. Buyers interact more; 20 % of
    non-buyers never answer (they only get our messages)."""
    rng, n, t_end, acq, plan = g.rng, g.n, g.t_end, g.acq, g.purchase_plan
    rnd = rng.random
    silent = [False] * n
    weights = []
    for i in range(n):
        k = plan[i]
        if k == 0 and rnd() < 0.2:
            silent[i] = True
            w = 0.25
        else:
            w = 1 + 0.35 * min(k, 12)
        weights.append(w * rng.lognormvariate(-0.18, 0.6) * min(1.0, (t_end - acq[i]) / (60 * DAY)) ** 0.5)
    return silent, weights


class TouchPools:
    """Touchpoint kinds drawn by weight, sampled by 13 random bits: for group members, for people in no
    group, and for people who never answer (our messages only)."""

    def __init__(self, g: Generator) -> None:
        rng = g.rng
        solo = [k for k in TOUCH_KINDS if not k[4]]
        self.member = rng.choices(TOUCH_KINDS, weights=[k[2] for k in TOUCH_KINDS], k=8192)
        self.solo = rng.choices(solo, weights=[k[2] for k in solo], k=8192)
        outbound = [k for k in solo if k[0] == T.MESSAGE_OUT]
        self.silent = rng.choices(outbound, weights=[k[2] for k in outbound], k=8192)
        self.campaign_meta = [json.dumps({"campaign": c}, ensure_ascii=False) for c in CAMPAIGNS]


def add_touchpoints(c: Chunk, p: Person) -> None:
    """The contact's touchpoints: the fixed events (added as a friend, joined or left a group) and the
    rest of its allotment drawn from the pools; sets ``p.last_in``, the last interaction."""
    g, rnd, getrandbits = c.g, c.rnd, c.getrandbits
    NULL, pools, tod = c.null, g.touch_pools, g.tod
    day_text, hms, shift = g.day_text, g.hms, g.shift
    t0, span, scid, sowner, silent, events, stays = p.t0, p.span, p.scid, p.sowner, p.silent, p.events, p.stays
    tp_append, tid = c.touchpoints.append, c.tid
    allot = g.touch_plan[p.i]
    last_in = None
    if allot and not silent:
        events.append((t0, T.ADD_FRIEND, M.WECOM if rnd() < 0.7 else M.CHAT, sowner, NULL, "{}"))
    for t, kind, medium, staff, community, meta in events:
        d, s = divmod(t + shift, DAY)
        tp_append((str(tid), scid, medium, kind, day_text[d] + hms[s], staff, community, meta))
        tid += 1
        if last_in is None or t > last_in:
            last_in = t
    free = allot - len(events)
    if free > 0:
        pool = pools.silent if silent else (pools.member if stays else pools.solo)
        campaign_meta = pools.campaign_meta
        for _ in range(free):
            kind, medium, _w, by_owner, in_group, meta = pool[getrandbits(13)]
            r = rnd()
            if in_group:
                community, joined, left = stays[int(r * len(stays))]
                t = joined + int((left - joined) * rnd())
            else:
                community = NULL
                t = t0 + int(span * (r * r if r < 0.6 else r))
                d = t - t % DAY + tod[getrandbits(12)]
                t = d if d >= t0 else t
            d, s = divmod(t + shift, DAY)
            tp_append(
                (
                    str(tid),
                    scid,
                    medium,
                    kind,
                    day_text[d] + hms[s],
                    sowner if by_owner else NULL,
                    community,
                    campaign_meta[getrandbits(10) % 6] if meta else "{}",
                )
            )
            tid += 1
            if kind not in Touchpoint.OUTBOUND_KINDS and (last_in is None or t > last_in):
                last_in = t
    c.tid = tid
    p.last_in = last_in
