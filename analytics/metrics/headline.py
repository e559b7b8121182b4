"""The headline numbers of a period (KPIs)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from .numbers import divide, money, ratio
from .queries import ReportQueries
from .scope import Filters


@dataclass(frozen=True)
class Kpis:
    """Headline numbers of a period. ``leads_revenue`` is R of the doc (all paid revenue to date of
    the leads of P); ``repeat_buyers`` / ``buyers`` is the repurchase rate; ``referred_leads`` /
    ``referrers`` is the K-factor."""

    leads: int
    new_customers: int
    spend: Decimal | None
    cpl: Decimal | None
    cac: Decimal | None
    revenue: Decimal
    paid_orders: int
    buyers: int
    aov: Decimal | None
    leads_revenue: Decimal
    clv: Decimal | None
    roi: float | None
    ltv_cac: float | None
    repeat_buyers: int
    repurchase_rate: float | None
    referred_leads: int
    referrers: int
    k_factor: float | None


def kpis_of(queries: ReportQueries) -> Kpis:
    """The KPIs from a report's shared queries."""
    leads = queries.total("leads")
    new_customers = sum(queries.new_customers_by_channel.values())
    spend = sum(queries.spend_by_channel.values(), Fraction(0)) if queries.spend_by_channel is not None else None
    purchases = queries.purchases
    leads_revenue = queries.total("leads_revenue")
    referred = queries.total("referred")
    cpl = divide(spend, leads)
    cac = divide(spend, new_customers)
    clv = divide(leads_revenue, leads)
    return Kpis(
        leads=leads,
        new_customers=new_customers,
        spend=money(spend),
        cpl=money(cpl),
        cac=money(cac),
        revenue=money(purchases["revenue"]),
        paid_orders=purchases["paid_orders"],
        buyers=purchases["buyers"],
        aov=money(divide(purchases["revenue"], purchases["paid_orders"])),
        leads_revenue=money(leads_revenue),
        clv=money(clv),
        roi=ratio(divide(leads_revenue - spend, spend) if spend is not None else None),
        ltv_cac=ratio(divide(clv, cac)),
        repeat_buyers=purchases["repeat_buyers"],
        repurchase_rate=ratio(divide(purchases["repeat_buyers"], purchases["buyers"])),
        referred_leads=referred,
        referrers=queries.referrers,
        k_factor=ratio(divide(referred, queries.referrers)),
    )


def kpis(filters: Filters) -> Kpis:
    """Leads, new customers, spend, CPL, CAC, revenue, orders, buyers, AOV, CLV (R/M), ROI, LTV:CAC,
    repurchase rate and K-factor of the period (five queries)."""
    return kpis_of(ReportQueries(filters))
