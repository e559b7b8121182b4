"""Independent computations of every metric of docs/metrics.md, for the tests.

Deliberately a different method from ``analytics.metrics``: the raw rows are fetched once with
``.values()`` and everything is plain Python over them — local dates with ``zoneinfo``, sets and
dictionaries, spend spread day by day, exact ``Fraction`` arithmetic, NTILE by counting. No
denormalised fact on ``Contact`` is read (purchase and interaction facts are recomputed from the
purchase and touchpoint rows), so the comparisons also check that the services keep those facts right.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from typing import Any

from django.conf import settings

from communities.models import Community, Membership
from contacts.models import ChannelSpend, Contact, Purchase, Touchpoint

TZ = zoneinfo.ZoneInfo(settings.TIME_ZONE)
_WIDE = Context(prec=60)


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


def local_date(moment: dt.datetime | None) -> dt.date | None:
    return moment.astimezone(TZ).date() if moment is not None else None


def local_month(moment: dt.datetime) -> dt.date:
    return local_date(moment).replace(day=1)


def month_add(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass
class Rows:
    """Every raw row the metrics are made of."""

    contacts: dict[int, dict[str, Any]]
    purchases: list[dict[str, Any]]
    touchpoints: list[dict[str, Any]]
    spends: list[dict[str, Any]]
    memberships: list[dict[str, Any]]
    communities: dict[int, str]

    @classmethod
    def load(cls) -> Rows:
        return cls(
            contacts={
                row["id"]: row
                for row in Contact.objects.values(
                    "id",
                    "name",
                    "channel_id",
                    "owner_id",
                    "acquired_at",
                    "referred_by_id",
                    "merged_into_id",
                    "erased_at",
                    "intent_level",
                )
            },
            purchases=list(Purchase.objects.values("id", "contact_id", "purchased_at", "amount", "status")),
            touchpoints=list(Touchpoint.objects.values("contact_id", "kind", "occurred_at", "community_id")),
            spends=list(ChannelSpend.objects.values("channel_id", "start_date", "end_date", "amount")),
            memberships=list(
                Membership.objects.values("id", "community_id", "contact_id", "joined_at", "left_at", "role")
            ),
            communities=dict(Community.objects.values_list("id", "name")),
        )

    # --- facts recomputed from rows ---------------------------------------------------------------

    def paid(self, contact_id: int | None = None) -> list[dict[str, Any]]:
        return [
            p for p in self.purchases if p["status"] == "paid" and (contact_id is None or p["contact_id"] == contact_id)
        ]

    def paid_by_contact(self) -> dict[int, list[dict[str, Any]]]:
        grouped = defaultdict(list)
        for p in self.paid():
            grouped[p["contact_id"]].append(p)
        return grouped

    def inbound_by_contact(self) -> dict[int, list[dt.datetime]]:
        grouped = defaultdict(list)
        for t in self.touchpoints:
            if t["kind"] not in ("message_out", "delete_friend", "removed"):  # not the contact engaging
                grouped[t["contact_id"]].append(t["occurred_at"])
        return grouped

    def live_referrals(self) -> Counter:
        return Counter(
            c["referred_by_id"] for c in self.contacts.values() if c["merged_into_id"] is None and c["referred_by_id"]
        )


class Reference:
    """The metrics of one report (period, filters, user), computed from ``Rows``."""

    def __init__(
        self, rows: Rows, *, date_from, date_to, user, channel_id=None, owner_id=None, community_id=None, cohort=None
    ) -> None:
        self.rows = rows
        self.date_from, self.date_to = date_from, date_to
        self.user = user
        self.channel_id, self.owner_id, self.community_id, self.cohort = channel_id, owner_id, community_id, cohort
        visible = (
            set(Contact.objects.live().visible_to(user).values_list("pk", flat=True))
            if user is not None
            else {pk for pk, c in rows.contacts.items() if c["merged_into_id"] is None}
        )
        ever_members = {m["contact_id"] for m in rows.memberships if m["community_id"] == community_id}
        self.ids = set()
        for pk, c in rows.contacts.items():
            if c["merged_into_id"] is not None or pk not in visible:
                continue
            if channel_id is not None and c["channel_id"] != channel_id:
                continue
            if owner_id is not None and c["owner_id"] != owner_id:
                continue
            if community_id is not None and pk not in ever_members:
                continue
            if cohort is not None and local_month(c["acquired_at"]).strftime("%Y-%m") != cohort:
                continue
            self.ids.add(pk)
        self.paid = rows.paid_by_contact()
        self.inbound = rows.inbound_by_contact()
        self.referrals = rows.live_referrals()

    # --- helpers --------------------------------------------------------------------------------------

    def in_p(self, moment: dt.datetime | None) -> bool:
        return moment is not None and self.date_from <= local_date(moment) <= self.date_to

    def before_end(self, moment: dt.datetime | None) -> bool:
        return moment is not None and local_date(moment) <= self.date_to

    def contact(self, pk: int) -> dict[str, Any]:
        return self.rows.contacts[pk]

    def first_paid(self, pk: int) -> dt.datetime | None:
        times = [p["purchased_at"] for p in self.paid.get(pk, [])]
        return min(times) if times else None

    def spent(self, pk: int) -> Fraction:
        return sum((Fraction(p["amount"]) for p in self.paid.get(pk, [])), Fraction(0))

    def engaged(self, pk: int) -> bool:
        return bool(self.inbound.get(pk)) or bool(self.paid.get(pk))

    @property
    def spend_attributable(self) -> bool:
        return self.owner_id is None and self.community_id is None

    # --- acquisition and value --------------------------------------------------------------------------

    def leads(self) -> set[int]:
        return {pk for pk in self.ids if self.in_p(self.contact(pk)["acquired_at"])}

    def new_customers(self) -> set[int]:
        return {pk for pk in self.ids if self.in_p(self.first_paid(pk))}

    def spend_by_channel(self) -> dict[int, Fraction] | None:
        """Each spend row spread evenly over its days, summed day by day over the days of P (and of
        the cohort month with a cohort filter)."""
        if not self.spend_attributable:
            return None
        totals: dict[int, Fraction] = defaultdict(Fraction)
        for s in self.rows.spends:
            if self.channel_id is not None and s["channel_id"] != self.channel_id:
                continue
            days = (s["end_date"] - s["start_date"]).days + 1
            per_day = Fraction(s["amount"]) / days
            day = s["start_date"]
            while day <= s["end_date"]:
                in_cohort = self.cohort is None or day.strftime("%Y-%m") == self.cohort
                if self.date_from <= day <= self.date_to and in_cohort:
                    totals[s["channel_id"]] += per_day
                day += dt.timedelta(days=1)
        return totals

    def purchases_in_p(self) -> list[dict[str, Any]]:
        return [p for pk in self.ids for p in self.paid.get(pk, []) if self.in_p(p["purchased_at"])]

    def buyers(self) -> set[int]:
        return {p["contact_id"] for p in self.purchases_in_p()}

    def repeat_buyers(self) -> set[int]:
        counts = Counter(p["contact_id"] for p in self.purchases_in_p())
        return {pk for pk, n in counts.items() if n >= 2}

    def referred_leads(self) -> set[int]:
        return {pk for pk in self.leads() if self.contact(pk)["referred_by_id"] is not None}

    def kpis(self) -> dict[str, Any]:
        leads, new = self.leads(), self.new_customers()
        spend_rows = self.spend_by_channel()
        spend = sum(spend_rows.values(), Fraction(0)) if spend_rows is not None else None
        in_p = self.purchases_in_p()
        revenue = sum((Fraction(p["amount"]) for p in in_p), Fraction(0))
        r = sum((self.spent(pk) for pk in leads), Fraction(0))
        buyers, repeat = self.buyers(), self.repeat_buyers()
        referred = self.referred_leads()
        referrers = {self.contact(pk)["referred_by_id"] for pk in referred}
        clv, cac = div(r, len(leads)), div(spend, len(new))
        return {
            "leads": len(leads),
            "new_customers": len(new),
            "spend": money(spend),
            "cpl": money(div(spend, len(leads))),
            "cac": money(cac),
            "revenue": money(revenue),
            "paid_orders": len(in_p),
            "buyers": len(buyers),
            "aov": money(div(revenue, len(in_p))),
            "leads_revenue": money(r),
            "clv": money(clv),
            "roi": ratio(div(r - spend, spend)) if spend is not None else None,
            "ltv_cac": ratio(div(clv, cac)),
            "repeat_buyers": len(repeat),
            "repurchase_rate": ratio(div(len(repeat), len(buyers))),
            "referred_leads": len(referred),
            "referrers": len(referrers),
            "k_factor": ratio(div(len(referred), len(referrers))),
        }

    def channel_table(self) -> dict[int | None, dict[str, Any]]:
        spend = self.spend_by_channel()
        leads, new = self.leads(), self.new_customers()
        channels = {self.contact(pk)["channel_id"] for pk in leads | new} | set(spend or ())
        table = {}
        for channel in channels:
            ch_leads = {pk for pk in leads if self.contact(pk)["channel_id"] == channel}
            ch_new = {pk for pk in new if self.contact(pk)["channel_id"] == channel}
            ch_spend = spend.get(channel, Fraction(0)) if spend is not None else None
            r = sum((self.spent(pk) for pk in ch_leads), Fraction(0))
            clv, cac = div(r, len(ch_leads)), div(ch_spend, len(ch_new))
            table[channel] = {
                "spend": money(ch_spend),
                "leads": len(ch_leads),
                "new_customers": len(ch_new),
                "cpl": money(div(ch_spend, len(ch_leads))),
                "cac": money(cac),
                "revenue": money(r),
                "clv": money(clv),
                "roi": ratio(div(r - ch_spend, ch_spend)) if ch_spend is not None else None,
                "ltv_cac": ratio(div(clv, cac)),
            }
        return table

    # --- funnel ------------------------------------------------------------------------------------------

    def funnel_sets(self, leads: set[int] | None = None) -> dict[str, set[int]]:
        leads = self.leads() if leads is None else leads
        engaged = {pk for pk in leads if self.engaged(pk)}
        first = {pk for pk in engaged if len(self.paid.get(pk, [])) >= 1}
        repeat = {pk for pk in first if len(self.paid.get(pk, [])) >= 2}
        referrer = {pk for pk in repeat if self.referrals.get(pk, 0) >= 1}
        return {
            "leads": leads,
            "engaged": engaged,
            "first_purchase": first,
            "repeat_purchase": repeat,
            "referrer": referrer,
        }

    def funnel_counts(self, group_by: str | None = None) -> dict[Any, dict[str, int]]:
        leads = self.leads()
        if group_by is None:
            groups = {None: leads}
        else:
            groups = defaultdict(set)
            for pk in leads:
                key = (
                    self.contact(pk)["channel_id"]
                    if group_by == "channel"
                    else local_month(self.contact(pk)["acquired_at"])
                )
                groups[key].add(pk)
        return {key: {step: len(s) for step, s in self.funnel_sets(members).items()} for key, members in groups.items()}

    # --- cohorts -----------------------------------------------------------------------------------------

    def cohort_matrix(self, *, by: str, view: str, months: int = 12, today: dt.date | None = None):
        last = self.date_to.replace(day=1)
        first = month_add(last, -(months - 1))
        today = today or dt.datetime.now(TZ).date()
        last_data = min(last, today.replace(day=1))
        members: dict[dt.date, set[int]] = defaultdict(set)
        for pk in self.ids:
            moment = self.contact(pk)["acquired_at"] if by == "acquisition" else self.first_paid(pk)
            if moment is not None and self.before_end(moment) and local_month(moment) >= first:
                members[local_month(moment)].add(pk)
        if view == "purchase":
            activity = {pk: [p["purchased_at"] for p in self.paid.get(pk, [])] for pk in self.ids}
        else:
            activity = {pk: self.inbound.get(pk, []) for pk in self.ids}
        active_months = {pk: {local_month(t) for t in times if self.before_end(t)} for pk, times in activity.items()}
        matrix = []
        for i in range(months):
            cohort = month_add(first, i)
            cohort_members = members.get(cohort, set())
            counts, cells = [], []
            for k in range(months):
                month = month_add(cohort, k)
                if month > last_data:
                    counts.append(None)
                    cells.append(None)
                    continue
                n = sum(1 for pk in cohort_members if month in active_months[pk])
                counts.append(n)
                cells.append(ratio(div(n, len(cohort_members))))
            matrix.append(
                {
                    "month": cohort,
                    "size": len(cohort_members),
                    "counts": counts,
                    "cells": cells,
                    "members": cohort_members,
                }
            )
        return matrix

    # --- sales decomposition -----------------------------------------------------------------------------

    def decomposition(self) -> dict[str, Any]:
        referred_in_p = {
            pk
            for pk in self.ids
            if self.in_p(self.contact(pk)["acquired_at"]) and self.contact(pk)["referred_by_id"] is not None
        }
        engaged_before_end = {
            pk for pk in self.ids if self.before_end(self.contact(pk)["acquired_at"]) and self.engaged(pk)
        }
        u = len(engaged_before_end - referred_in_p)
        in_p = self.purchases_in_p()
        sales = sum((Fraction(p["amount"]) for p in in_p), Fraction(0))
        buyers = len(self.buyers())
        f = div(u + len(referred_in_p), u)
        return {
            "retained_users": u,
            "fission": f,
            "conversion": div(buyers, u * f) if f is not None else None,
            "aov": div(sales, len(in_p)),
            "repurchase": div(len(in_p), buyers),
            "sales": sales,
            "referred_leads": len(referred_in_p),
            "buyers": buyers,
            "paid_orders": len(in_p),
        }

    # --- community health --------------------------------------------------------------------------------

    def community_health(self) -> dict[int, dict[str, Any]]:
        end = dt.datetime.combine(self.date_to + dt.timedelta(days=1), dt.time.min, tzinfo=TZ)
        visible = (
            set(Community.objects.visible_to(self.user).values_list("pk", flat=True))
            if self.user is not None
            else set(self.rows.communities)
        )
        if self.community_id is not None:
            visible &= {self.community_id}
        result = {}
        for community in visible:
            stays = [m for m in self.rows.memberships if m["community_id"] == community and m["contact_id"] in self.ids]
            members = {
                m["contact_id"] for m in stays if m["joined_at"] < end and (m["left_at"] is None or m["left_at"] >= end)
            }

            def active(days: int, members: set[int] = members) -> set[int]:
                since_day = self.date_to - dt.timedelta(days=days - 1)
                return {
                    pk
                    for pk in members
                    if any(since_day <= local_date(t) <= self.date_to for t in self.inbound.get(pk, []))
                }

            buyers = {pk for pk in members if any(self.in_p(p["purchased_at"]) for p in self.paid.get(pk, []))}
            revenue = sum(
                (
                    Fraction(p["amount"])
                    for pk in members
                    for p in self.paid.get(pk, [])
                    if self.in_p(p["purchased_at"])
                ),
                Fraction(0),
            )
            result[community] = {
                "community": self.rows.communities[community],
                "members": len(members),
                "joins": sum(1 for m in stays if self.in_p(m["joined_at"])),
                "leaves": sum(1 for m in stays if self.in_p(m["left_at"])),
                "active_7d": len(active(7)),
                "active_30d": len(active(30)),
                "activity_rate": ratio(div(len(active(30)), len(members))),
                "buyers": len(buyers),
                "conversion": ratio(div(len(buyers), len(members))),
                "revenue": money(revenue),
                "active_30d_members": active(30),
                "member_ids": members,
            }
        return result

    # --- trend -------------------------------------------------------------------------------------------

    def trend(self, metric: str, grain: str) -> dict[dt.date, Any]:
        def bucket(day: dt.date) -> dt.date:
            if grain == "month":
                return day.replace(day=1)
            if grain == "week":
                return day - dt.timedelta(days=day.weekday())
            return day

        values: dict[dt.date, Any] = defaultdict(int)
        if metric in ("revenue", "orders", "buyers"):
            per_bucket_buyers = defaultdict(set)
            for p in self.purchases_in_p():
                b = bucket(local_date(p["purchased_at"]))
                if metric == "revenue":
                    values[b] += Fraction(p["amount"])
                elif metric == "orders":
                    values[b] += 1
                per_bucket_buyers[b].add(p["contact_id"])
            if metric == "buyers":
                values = {b: len(s) for b, s in per_bucket_buyers.items()}
        else:
            chosen = self.leads() if metric == "leads" else self.new_customers()
            for pk in chosen:
                moment = self.contact(pk)["acquired_at"] if metric == "leads" else self.first_paid(pk)
                values[bucket(local_date(moment))] += 1
        if metric == "revenue":
            return {b: money(v) for b, v in values.items()}
        return dict(values)


# --- RFM -----------------------------------------------------------------------------------------------


def ntile(keys: list[tuple], buckets: int = 5) -> list[int]:
    """NTILE(buckets) over rows already sorted: the first n % buckets tiles get one row more."""
    n = len(keys)
    size, extra = divmod(n, buckets)
    tiles = []
    for tile in range(1, buckets + 1):
        tiles.extend([tile] * (size + (1 if tile <= extra else 0)))
    return tiles


def rfm(rows: Rows, *, as_of: dt.date, dormant_days: int = 180) -> dict[int, dict[str, Any]]:
    """Scores and layer per live contact as of the end of ``as_of``."""
    live = {pk for pk, c in rows.contacts.items() if c["merged_into_id"] is None}
    history = defaultdict(list)
    for p in rows.paid():
        if p["contact_id"] in live and local_date(p["purchased_at"]) <= as_of:
            history[p["contact_id"]].append(p)
    customers = {}
    for pk, purchases in history.items():
        customers[pk] = {
            "last_day": max(local_date(p["purchased_at"]) for p in purchases),
            "frequency": len(purchases),
            "monetary": sum((Fraction(p["amount"]) for p in purchases), Fraction(0)),
        }
    for key, score, reverse in (
        ("last_day", "r_score", False),
        ("frequency", "f_score", False),
        ("monetary", "m_score", False),
    ):
        order = sorted(customers, key=lambda pk: (customers[pk][key], pk), reverse=reverse)
        for pk, tile in zip(order, ntile(order), strict=True):
            customers[pk][score] = tile
    result = {}
    for pk, c in customers.items():
        recency = (as_of - c["last_day"]).days
        if recency > dormant_days:
            layer = "dormant"
        elif c["frequency"] >= 2 and c["m_score"] == 5:
            layer = "core"
        elif c["frequency"] >= 2:
            layer = "repeat"
        else:
            layer = "first_time"
        result[pk] = {**c, "recency_days": recency, "layer": layer}
    inbound = rows.inbound_by_contact()
    for pk in live - set(customers):
        engaged = any(local_date(t) <= as_of for t in inbound.get(pk, []))
        intent = rows.contacts[pk]["intent_level"] in ("medium", "high")
        result[pk] = {
            "layer": "intent_only" if engaged or intent else "none",
            "r_score": None,
            "f_score": None,
            "m_score": None,
            "recency_days": None,
            "frequency": 0,
            "monetary": Fraction(0),
        }
    return result


def clv_inputs(rows: Rows, *, as_of: dt.date) -> dict[int, tuple[float, float, float, float]]:
    """(x, t_x, T, m_x) in days per customer, by the definitions of docs/predictive-clv.md, in plain
    Python: transactions are local purchase days, x the days after the first, m_x the mean of their
    day totals."""
    live = {pk for pk, c in rows.contacts.items() if c["merged_into_id"] is None}
    days: dict[int, dict[dt.date, Fraction]] = defaultdict(lambda: defaultdict(Fraction))
    for p in rows.paid():
        day = local_date(p["purchased_at"])
        if p["contact_id"] in live and day <= as_of:
            days[p["contact_id"]][day] += Fraction(p["amount"])
    result = {}
    for pk, totals in days.items():
        ordered = sorted(totals)
        first = ordered[0]
        x = len(ordered) - 1
        t_x = (ordered[-1] - first).days if x else 0
        T = (as_of - first).days
        m_x = float(sum(totals[d] for d in ordered[1:]) / x) if x else 0.0
        result[pk] = (float(x), float(t_x), float(T), m_x)
    return result


def is_close(a: float | None, b: float | None, rel: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
