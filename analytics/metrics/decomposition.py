"""The sales decomposition: sales = retained users × fission × conversion × AOV × repurchase, compared
between two periods."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from django.db.models import Count, Q

from .numbers import divide, money, ratio
from .queries import ReportQueries, engaged_q
from .scope import Filters, in_period

DECOMPOSITION_FACTORS = ("retained_users", "fission", "conversion", "aov", "repurchase")


@dataclass(frozen=True)
class DecompositionPeriod:
    """The factors of one period: sales = retained_users × fission × conversion × aov × repurchase."""

    retained_users: int
    fission: float | None
    conversion: float | None
    aov: Decimal | None
    repurchase: float | None
    sales: Decimal
    referred_leads: int
    buyers: int
    paid_orders: int


@dataclass(frozen=True)
class DecompositionFactor:
    key: str
    a: float | Decimal | int | None
    b: float | Decimal | int | None
    change: float | None
    share: float | None


@dataclass(frozen=True)
class Decomposition:
    a: DecompositionPeriod
    b: DecompositionPeriod
    sales_change: float | None
    factors: list[DecompositionFactor]


def decomposition_factors(filters: Filters) -> dict[str, Any]:
    """The exact (unrounded) factors of one period: U, F, C, AOV, R and the sales they multiply to."""
    report = ReportQueries(filters)
    referred_in_p = in_period("acquired_at", filters) & Q(referred_by__isnull=False)
    counts = report.contacts.filter(acquired_at__lt=filters.end).aggregate(
        retained=Count("pk", filter=engaged_q() & ~referred_in_p),
        referred=Count("pk", filter=referred_in_p),
    )
    purchases = report.purchases
    retained, referred = counts["retained"], counts["referred"]
    buyers, orders, sales = purchases["buyers"], purchases["paid_orders"], purchases["revenue"]
    fission = divide(retained + referred, retained)
    return {
        "retained_users": retained,
        "fission": fission,
        "conversion": divide(buyers, retained + referred) if fission is not None else None,
        "aov": divide(sales, orders),
        "repurchase": divide(orders, buyers),
        "sales": sales,
        "referred_leads": referred,
        "buyers": buyers,
        "paid_orders": orders,
    }


def sales_decomposition(*, period_a: Filters, period_b: Filters) -> Decomposition:
    """Sales = retained users × fission × conversion × AOV × repurchase for periods A and B (an exact
    identity), each factor's change B/A, and its LMDI share of the change:
    share(f) = ln(f_B / f_A) / ln(S_B / S_A). Shares are empty when a factor or the sales are zero or
    empty in either period, or when the sales did not change."""
    exact_a, exact_b = decomposition_factors(period_a), decomposition_factors(period_b)
    sales_a, sales_b = exact_a["sales"], exact_b["sales"]
    sales_change = divide(sales_b, sales_a)
    usable = (
        sales_a > 0
        and sales_b > 0
        and sales_a != sales_b
        and all(exact[key] for exact in (exact_a, exact_b) for key in DECOMPOSITION_FACTORS)
    )
    factors = []
    for key in DECOMPOSITION_FACTORS:
        change = divide(exact_b[key], exact_a[key])
        share = math.log(change) / math.log(sales_change) if usable else None
        factors.append(
            DecompositionFactor(
                key=key,
                a=_factor_display(key, exact_a[key]),
                b=_factor_display(key, exact_b[key]),
                change=ratio(change),
                share=ratio(Fraction(share)) if share is not None else None,
            )
        )
    return Decomposition(
        a=_decomposition_period(exact_a),
        b=_decomposition_period(exact_b),
        sales_change=ratio(sales_change),
        factors=factors,
    )


def _factor_display(key: str, value: Any) -> Any:
    if key == "retained_users":
        return value
    if key == "aov":
        return money(value)
    return ratio(value)


def _decomposition_period(exact: dict[str, Any]) -> DecompositionPeriod:
    return DecompositionPeriod(
        retained_users=exact["retained_users"],
        fission=ratio(exact["fission"]),
        conversion=ratio(exact["conversion"]),
        aov=money(exact["aov"]),
        repurchase=ratio(exact["repurchase"]),
        sales=money(exact["sales"]),
        referred_leads=exact["referred_leads"],
        buyers=exact["buyers"],
        paid_orders=exact["paid_orders"],
    )
