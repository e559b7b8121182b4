"""The channel table: acquisition economics per channel."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from contacts.models import Channel

from .numbers import divide, fraction, money, ratio
from .queries import ReportQueries
from .scope import Filters


@dataclass(frozen=True)
class ChannelRow:
    channel_id: int | None
    channel: str
    spend: Decimal | None
    leads: int
    new_customers: int
    cpl: Decimal | None
    cac: Decimal | None
    revenue: Decimal
    clv: Decimal | None
    roi: float | None
    ltv_cac: float | None


def channel_rows(queries: ReportQueries) -> list[ChannelRow]:
    """The channel table from a report's shared queries, channels by name, "no channel" last."""
    leads = {row["channel_id"]: row for row in queries.leads_by_channel}
    new = queries.new_customers_by_channel
    spend = queries.spend_by_channel
    ids = set(leads) | set(new) | set(spend or ())
    names = dict(Channel.objects.filter(pk__in=[i for i in ids if i is not None]).values_list("pk", "name"))
    rows = []
    for channel_id in ids:
        row = leads.get(channel_id, {})
        n_leads = row.get("leads", 0)
        n_new = new.get(channel_id, 0)
        revenue = fraction(row.get("leads_revenue"))
        channel_spend = spend.get(channel_id, Fraction(0)) if spend is not None else None
        cac = divide(channel_spend, n_new)
        clv = divide(revenue, n_leads)
        rows.append(
            ChannelRow(
                channel_id=channel_id,
                channel=names.get(channel_id, "") if channel_id is not None else "",
                spend=money(channel_spend),
                leads=n_leads,
                new_customers=n_new,
                cpl=money(divide(channel_spend, n_leads)),
                cac=money(cac),
                revenue=money(revenue),
                clv=money(clv),
                roi=ratio(divide(revenue - channel_spend, channel_spend) if channel_spend is not None else None),
                ltv_cac=ratio(divide(clv, cac)),
            )
        )
    rows.sort(key=lambda r: (r.channel_id is None, r.channel, r.channel_id or 0))
    return rows


def channel_table(filters: Filters) -> list[ChannelRow]:
    """Per acquisition channel (and "no channel"): spend in P, leads, new customers, CPL, CAC, revenue to
    date of the leads (R), CLV, ROI, LTV:CAC. Four queries whatever the number of channels."""
    return channel_rows(ReportQueries(filters))
