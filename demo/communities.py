"""Communities: WeChat/WeCom groups of at most 500 people, opened one after the other as each fills up
(宝妈交流群1群, 2群, ...), camps with one group per cohort, and who joins (and leaves) which group when."""

from __future__ import annotations

from typing import TYPE_CHECKING

from communities.models import Community

from .vocabulary import CAMP_DAYS, DAY, GROUP_FILL, SERIES, WECOM_MULTIPLIER, K, M, P, T

if TYPE_CHECKING:
    from .generator import Chunk, Generator
    from .people import Person


class _Series:
    """Groups of one kind (宝妈交流群1群, 2群, ...): people join the open group until it is nearly full.
    Camps open one group per cohort (``slot`` = the camp's start)."""

    def __init__(self, key, pattern, kind, platform, rules) -> None:
        self.key, self.pattern, self.kind, self.platform, self.rules = key, pattern, kind, platform, rules
        self.number = 0
        self.open: dict[int | None, list] = {}  # slot → [community id, joins, last member's id]


class Communities:
    """The groups made so far, with their admins; rows are written once every contact has joined."""

    def __init__(self, g: Generator) -> None:
        self.g = g
        self.groups: dict[int, list] = {}  # id → [row fields..., first join time]
        self.admins: list[tuple] = []
        self.series: dict[str, _Series] = {}

    def _series(self, key: str, city: str = "") -> _Series:
        name = f"{key}:{city}"
        series = self.series.get(name)
        if series is None:
            spec = next(s for s in SERIES if s[0] == key)
            pattern = spec[1].replace("{city}", city)
            series = self.series[name] = _Series(key, pattern, spec[2], spec[3], spec[4])
        return series

    def join(self, key: str, city: str, t: int, slot: int | None = None, ends: int | None = None) -> list:
        """The open group of a series for someone joining at t: [community id, joins, last member]."""
        series = self._series(key, city)
        state = series.open.get(slot)
        if state is None or state[1] >= GROUP_FILL:
            series.number += 1
            state = series.open[slot] = [self._new(series, ends), 0, None]
        state[1] += 1
        first = self.groups[state[0]]
        if t < first[-1]:
            first[-1] = t
        return state

    def _new(self, series: _Series, ends: int | None) -> int:
        g = self.g
        cid = g.next_id("communities_community")
        staff = g.refs.staff_ids
        owner, admin = staff[len(self.groups) % len(staff)], staff[(len(self.groups) + 1) % len(staff)]
        archived = ends is not None and ends + 7 * DAY < g.t_end
        chat_id = (
            f"wrOgQh{(cid * WECOM_MULTIPLIER) % (1 << 64):016x}" if series.platform == P.WECOM_GROUP else g.fmt.null
        )
        self.groups[cid] = [
            str(cid),
            series.pattern.format(n=series.number),
            series.kind,
            series.platform,
            str(owner),
            "500",
            series.rules,
            Community.Status.ARCHIVED if archived else Community.Status.ACTIVE,
            chat_id,
            g.t_end,  # becomes the first join time
        ]
        self.admins.append((str(cid), str(owner)))
        if admin != owner:
            self.admins.append((str(cid), str(admin)))
        return cid

    def rows(self) -> list[tuple]:
        """The communities' rows, each created a little before its first member joined."""
        g = self.g
        rng = g.rng
        rows = []
        for values in self.groups.values():
            created = max(0, values[-1] - DAY - rng.randrange(DAY * 3))
            rows.append((*values[:-1], g.ts(created)))
        return rows


def _joins(c: Chunk, p: Person) -> list[tuple[str, int]]:
    """The series a contact joins and when: by persona, deals, the store, VIP after three orders, new
    products after a first order, a skincare camp."""
    rnd, t0, span, k = c.rnd, p.t0, p.span, p.purchases
    joins = []
    if rnd() < 0.3:
        joins.append((p.persona.series, t0 + int(span * 0.1 * rnd())))
    if rnd() < 0.14:
        joins.append(("deals", t0 + int(span * 0.3 * rnd())))
    if p.channel_kind == K.OFFLINE_STORE and rnd() < 0.5:
        joins.append(("store", t0 + int(rnd() * 3600)))
    if k >= 3 and rnd() < 0.6:
        joins.append(("vip", sorted(p.purchase_times)[2] + int(rnd() * DAY)))
    if k and rnd() < 0.06:
        joins.append(("newprod", min(p.purchase_times) + int(rnd() * 7 * DAY)))
    if p.persona.series == "skin" and rnd() < 0.05:
        joins.append(("camp", t0 + int(rnd() * 14 * DAY)))
    return joins


def add_memberships(c: Chunk, p: Person) -> None:
    """The contact's group memberships; sets ``p.events`` (join and leave touchpoints) and ``p.stays``.
    Not for people who never answer, nor without any touchpoint to record the joins."""
    p.events, p.stays = [], []
    g = c.g
    if p.silent or not g.touch_plan[p.i]:
        return
    rnd, ts, NULL, t_end, scid = c.rnd, c.ts, c.null, g.t_end, p.scid
    for key, joined in _joins(c, p):
        if joined >= t_end:
            joined = t_end - 1
        slot = ends = left = None
        if key == "camp":
            # Enrol before the next cohort starts; everyone leaves a few days after day 21.
            slot = (joined // (30 * DAY) + 1) * 30 * DAY
            ends = slot + CAMP_DAYS * DAY
            if ends + 3 * DAY < t_end:
                left = ends + int(rnd() * 3 * DAY)
        elif rnd() < 0.15:
            left = joined + int((t_end - joined) * rnd())
        state = g.communities.join(key, p.city if key == "store" else "", joined, slot, ends)
        community = str(state[0])
        u = rnd()
        role = "member"
        if g.referral_count[p.i] >= 2 and u < 0.5:
            role = "koc"
        elif u < 0.003:
            role = "admin"
        u = rnd()
        invited = NULL
        if key == "vip":
            source = "api"
        elif u < 0.5:
            source = "qr_code"
        elif u < 0.75 and state[2] is not None:
            source, invited = "invite", state[2]
        elif u < 0.95:
            source = "staff"
        else:
            source = "import"
        state[2] = scid
        c.memberships.append(
            (
                str(g.next_id("communities_membership")),
                community,
                scid,
                role,
                ts(joined),
                NULL if left is None else ts(left),
                source,
                invited,
            )
        )
        p.stays.append((community, joined, t_end if left is None else left))
        p.events.append((joined, T.JOIN_GROUP, M.GROUP, NULL, community, "{}"))
        if left is not None:
            p.events.append((left, T.LEAVE_GROUP, M.GROUP, NULL, community, "{}"))
