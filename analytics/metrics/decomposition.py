"""The sales decomposition: sales = retained users × fission × conversion × AOV × repurchase, compared
between two periods, and the change in sales split into what each factor's change added or took away, in
money (additive log-mean Divisia index, LMDI-I; docs/metrics.md)."""

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
#: The joint contribution of retained users and fission (retained users × fission = contacts reached), used
#: when a period has referred leads but no retained users: fission is then infinite and the two cannot be
#: told apart.
REACH = "reach"
_CENT = Decimal("0.01")


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
class Contribution:
    """One step of the waterfall from sales A to sales B: what the change of a factor (``key``: one of
    ``DECOMPOSITION_FACTORS``, or ``REACH``) added to the sales, negative when it took some away."""

    key: str
    amount: Decimal


@dataclass(frozen=True)
class Decomposition:
    a: DecompositionPeriod
    b: DecompositionPeriod
    sales_change: float | None
    factors: list[DecompositionFactor]
    #: sales B − sales A, exactly (cents).
    sales_difference: Decimal = Decimal("0.00")
    #: The factors' contributions in factor order; they add up exactly to ``sales_difference``. None when
    #: the change cannot be split (a period with sales but no retained or referred contact).
    contributions: list[Contribution] | None = None

    def contribution(self, key: str) -> Decimal | None:
        """What the change of factor ``key`` added to the sales; None when it has no contribution of its
        own (the change cannot be split, or the factor is part of ``REACH``)."""
        return next((item.amount for item in self.contributions or () if item.key == key), None)


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
        sales_difference=money(sales_b) - money(sales_a),
        contributions=sales_change_contributions(exact_a, exact_b),
    )


# --- The change in sales, in money, per factor ----------------------------------------------------


def _attribution_values(exact: dict[str, Any]) -> dict[str, Fraction | None]:
    """The factors of one period from its counts (U, U + referred, buyers, orders, sales); None for 0/0."""
    retained, reached = exact["retained_users"], exact["retained_users"] + exact["referred_leads"]
    buyers, orders, sales = exact["buyers"], exact["paid_orders"], Fraction(exact["sales"])
    return {
        "retained_users": Fraction(retained),
        "fission": divide(reached, retained),
        "conversion": divide(buyers, reached),
        "aov": divide(sales, orders),
        "repurchase": divide(orders, buyers),
    }


def sales_change_contributions(exact_a: dict[str, Any], exact_b: dict[str, Any]) -> list[Contribution] | None:
    """Sales B − sales A split between the factors' changes (``lmdi_contributions``), in cents adding up
    exactly to the change. A factor that is empty (0 ÷ 0) in one period takes its value in the other (it
    moved nothing: the period's sales are 0 through another factor anyway), and 1 when empty in both.
    When a period has referred leads but no retained users, fission is infinite: retained users and
    fission then make one contribution, ``REACH`` (contacts reached = retained + referred). None when the
    factors do not multiply back to the sales (sales by contacts neither retained nor referred)."""
    values_a, values_b = _attribution_values(exact_a), _attribution_values(exact_b)
    keys: tuple[str, ...] = DECOMPOSITION_FACTORS
    if any(exact["retained_users"] == 0 and exact["referred_leads"] > 0 for exact in (exact_a, exact_b)):
        keys = (REACH, *DECOMPOSITION_FACTORS[2:])
        for values, exact in ((values_a, exact_a), (values_b, exact_b)):
            values[REACH] = Fraction(exact["retained_users"] + exact["referred_leads"])
    sales_a, sales_b = Fraction(exact_a["sales"]), Fraction(exact_b["sales"])
    filled_a: dict[str, Fraction] = {}
    filled_b: dict[str, Fraction] = {}
    for key in keys:
        a, b = values_a[key], values_b[key]
        filled_a[key] = a if a is not None else (b if b is not None else Fraction(1))
        filled_b[key] = b if b is not None else filled_a[key]
    if math.prod(filled_a.values()) != sales_a or math.prod(filled_b.values()) != sales_b:
        return None
    raw = lmdi_contributions(filled_a, filled_b, sales_a=sales_a, sales_b=sales_b)
    amounts = cents_adding_up_to(raw, money(sales_b) - money(sales_a))
    return [Contribution(key=key, amount=amounts[key]) for key in keys]


def lmdi_contributions(
    values_a: dict[str, Fraction], values_b: dict[str, Fraction], *, sales_a: Fraction, sales_b: Fraction
) -> dict[str, float]:
    """The additive LMDI-I split of sales_b − sales_a (sales = the product of the values, all ≥ 0):
    contribution(f) = L(S_A, S_B) × ln(f_B / f_A), with the logarithmic mean L(a, b) = (b − a) / ln(b / a)
    and L(a, a) = a. The contributions add up to the change (Σ ln(f_B / f_A) = ln(S_B / S_A)).

    Zero values (Ang & Liu 2007: the limits of the formula when the zeros tend to 0): sales 0 in A and
    positive in B, the factors that are 0 in A share the whole change equally, the others contribute
    nothing; the other way round, the factors that are 0 in B share the whole fall; sales 0 in both
    periods, nothing changed."""
    if sales_a > 0 and sales_b > 0:
        weight = float(sales_a) if sales_a == sales_b else float(sales_b - sales_a) / math.log(sales_b / sales_a)
        return {key: weight * math.log(values_b[key] / values_a[key]) for key in values_a}
    if sales_a == sales_b:
        return dict.fromkeys(values_a, 0.0)
    zero_side = values_a if sales_a == 0 else values_b
    zeros = [key for key, value in zero_side.items() if value == 0]
    each = float(sales_b - sales_a) / len(zeros)
    return {key: each if key in zeros else 0.0 for key in values_a}


def cents_adding_up_to(amounts: dict[str, float], total: Decimal) -> dict[str, Decimal]:
    """``amounts`` rounded to cents so that they add up to ``total`` exactly: each rounded half up, then
    the cents still missing (or over) go one by one to the amounts that rounding moved furthest from their
    value (the largest-remainder method), never to an amount that is exactly 0 while another is not."""
    target = int((total / _CENT).to_integral_value())
    scaled = {key: value * 100 for key, value in amounts.items()}
    cents = {key: math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1) for key, value in scaled.items()}
    candidates = [key for key, value in amounts.items() if value != 0] or list(amounts)
    missing = target - sum(cents.values())
    while missing and candidates:
        step = 1 if missing > 0 else -1
        key = max(candidates, key=lambda k: (scaled[k] - cents[k]) * step)
        cents[key] += step
        missing -= step
    return {key: Decimal(value) * _CENT for key, value in cents.items()}


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
