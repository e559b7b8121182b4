"""The sales waterfall: the change in sales between two periods split into what each factor's change added
or took away, in money (additive LMDI-I, docs/metrics.md). The parts add up exactly to the change — also
when a factor is zero in a period — and a factor that rose never shows as a fall."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import zoneinfo
from decimal import Decimal
from fractions import Fraction

import pytest
from django.template import Context, Template
from django.test import Client
from django.urls import reverse
from django.utils import translation
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import metrics
from analytics.metrics import REACH, Filters
from contacts.services import contact_create, purchase_record

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
_orders = iter(range(1, 10**6))


def period(retained=0, referred=0, buyers=0, orders=0, sales="0"):
    """The counts of one period, as ``decomposition_factors`` gives them (sales exact)."""
    return {
        "retained_users": retained,
        "referred_leads": referred,
        "buyers": buyers,
        "paid_orders": orders,
        "sales": Fraction(Decimal(sales)),
    }


def change(a, b) -> Decimal:
    return metrics.money(b["sales"]) - metrics.money(a["sales"])


def split(a, b) -> dict[str, Decimal]:
    parts = metrics.sales_change_contributions(a, b)
    assert parts is not None
    assert sum(item.amount for item in parts) == change(a, b)
    return {item.key: item.amount for item in parts}


# --- the split ------------------------------------------------------------------------------------------


def test_contributions_are_the_log_mean_divisia_split_and_add_up_to_the_change():
    a = period(retained=2, buyers=1, orders=1, sales="100.00")
    b = period(retained=2, referred=1, buyers=2, orders=3, sales="360.00")
    parts = split(a, b)
    weight = (360 - 100) / math.log(360 / 100)  # the logarithmic mean of the two sales
    assert parts["retained_users"] == Decimal("0.00")
    assert parts["fission"] == pytest.approx(Decimal(str(round(weight * math.log(1.5), 2))), abs=Decimal("0.01"))
    assert parts["conversion"] == pytest.approx(Decimal(str(round(weight * math.log(4 / 3), 2))), abs=Decimal("0.01"))
    assert parts["aov"] == pytest.approx(Decimal(str(round(weight * math.log(1.2), 2))), abs=Decimal("0.01"))
    assert sum(parts.values()) == Decimal("260.00")


def test_a_factor_that_rose_while_sales_fell_adds_money_and_the_others_take_it_away():
    # More retained users, but each converted less and bought less often: sales fell.
    a = period(retained=100, buyers=20, orders=30, sales="3000.00")
    b = period(retained=120, buyers=15, orders=18, sales="1800.00")
    parts = split(a, b)
    assert parts["retained_users"] > 0
    assert parts["conversion"] < 0 and parts["repurchase"] < 0
    assert parts["fission"] == parts["aov"] == Decimal("0.00")
    assert sum(parts.values()) == Decimal("-1200.00")


def test_only_the_factor_that_changed_gets_the_change():
    a = period(retained=10, buyers=5, orders=5, sales="500.00")
    b = period(retained=10, buyers=5, orders=5, sales="650.00")
    assert split(a, b) == {
        "retained_users": Decimal("0.00"),
        "fission": Decimal("0.00"),
        "conversion": Decimal("0.00"),
        "aov": Decimal("150.00"),
        "repurchase": Decimal("0.00"),
    }


def test_offsetting_factors_with_unchanged_sales_split_a_change_of_zero():
    a = period(retained=10, buyers=5, orders=5, sales="500.00")
    b = period(retained=20, buyers=5, orders=5, sales="500.00")
    parts = split(a, b)
    assert parts["retained_users"] > 0 and parts["conversion"] < 0
    assert parts["retained_users"] == -parts["conversion"]
    assert sum(parts.values()) == 0


def test_from_no_buyers_to_buyers_the_whole_rise_is_conversion():
    a = period(retained=50, buyers=0, orders=0, sales="0")
    b = period(retained=60, referred=5, buyers=4, orders=6, sales="480.00")
    parts = split(a, b)
    assert parts["conversion"] == Decimal("480.00")
    assert {key: value for key, value in parts.items() if key != "conversion"} == dict.fromkeys(
        ("retained_users", "fission", "aov", "repurchase"), Decimal("0.00")
    )


def test_from_buyers_to_none_the_whole_fall_is_conversion():
    parts = split(period(retained=60, buyers=4, orders=6, sales="480.00"), period(retained=60))
    assert parts["conversion"] == Decimal("-480.00")
    assert sum(parts.values()) == Decimal("-480.00")


def test_free_orders_make_the_average_order_value_the_zero_factor():
    a = period(retained=10, buyers=2, orders=2, sales="0.00")
    b = period(retained=10, buyers=2, orders=2, sales="99.99")
    assert split(a, b)["aov"] == Decimal("99.99")


def test_from_no_retained_users_the_whole_rise_is_retained_users():
    a = period()
    b = period(retained=3, buyers=1, orders=1, sales="10.00")
    parts = split(a, b)
    # Fission, conversion, AOV and repurchase have no value in A (0 ÷ 0): they moved nothing.
    assert parts["retained_users"] == Decimal("10.00")


def test_factors_zero_together_share_the_change():
    a = period(retained=10, buyers=2, orders=2, sales="0.00")  # free orders: AOV 0
    b = period(retained=10, buyers=0, orders=0, sales="0.00")
    assert set(split(a, b).values()) == {Decimal("0.00")}
    two_zeros = metrics.lmdi_contributions(
        {"x": Fraction(0), "y": Fraction(0), "z": Fraction(2)},
        {"x": Fraction(3), "y": Fraction(5), "z": Fraction(2)},
        sales_a=Fraction(0),
        sales_b=Fraction(30),
    )
    assert two_zeros == {"x": 15.0, "y": 15.0, "z": 0.0}


def test_no_sales_in_either_period_changes_nothing():
    assert set(split(period(retained=3), period(retained=8, referred=2)).values()) == {Decimal("0.00")}


def test_referred_leads_without_retained_users_make_one_part_of_retained_users_and_fission():
    a = period(retained=0, referred=3, buyers=1, orders=1, sales="50.00")
    b = period(retained=2, referred=1, buyers=2, orders=3, sales="360.00")
    parts = split(a, b)
    assert list(parts) == [REACH, "conversion", "aov", "repurchase"]
    assert parts[REACH] == Decimal("0.00")  # 3 contacts reached in both periods


def test_sales_by_contacts_neither_retained_nor_referred_cannot_be_split():
    a = period(retained=0, referred=0, buyers=1, orders=1, sales="50.00")
    assert metrics.sales_change_contributions(a, period(retained=5, buyers=1, orders=1, sales="60.00")) is None


counts = st.integers(min_value=0, max_value=5000)
cents = st.integers(min_value=0, max_value=10**9)


@st.composite
def periods(draw):
    retained, referred = draw(counts), draw(counts)
    reached = retained + referred
    buyers = draw(st.integers(min_value=0, max_value=reached)) if reached else 0
    orders = draw(st.integers(min_value=buyers, max_value=buyers * 5)) if buyers else 0
    sales = Decimal(draw(cents) if orders else 0) / 100
    return period(retained=retained, referred=referred, buyers=buyers, orders=orders, sales=str(sales))


@settings(max_examples=400, deadline=None)
@given(periods(), periods())
def test_the_contributions_always_add_up_to_the_change_in_cents(a, b):
    parts = metrics.sales_change_contributions(a, b)
    assert parts is not None
    assert sum(item.amount for item in parts) == change(a, b)
    assert all(item.amount == item.amount.quantize(Decimal("0.01")) for item in parts)


def test_rounding_to_cents_keeps_the_sum_and_leaves_exact_zeros_alone():
    third = 100 / 3
    rounded = metrics.cents_adding_up_to({"a": third, "b": third, "c": third, "d": 0.0}, Decimal("100.00"))
    assert sum(rounded.values()) == Decimal("100.00")
    assert sorted(rounded.values()) == [Decimal("0.00"), Decimal("33.33"), Decimal("33.33"), Decimal("33.34")]
    negative = metrics.cents_adding_up_to({"a": -0.005, "b": -0.005}, Decimal("-0.01"))
    assert sum(negative.values()) == Decimal("-0.01")


# --- through the metric service, on real rows ------------------------------------------------------------


@pytest.fixture
def manager_client(manager):
    client = Client()
    client.force_login(manager)
    return client


def at(y, m, d):
    return dt.datetime(y, m, d, 12, tzinfo=TZ)


def buy(contact, when, amount):
    purchase_record(contact=contact, external_order_id=f"W{next(_orders)}", purchased_at=when, amount=Decimal(amount))


@pytest.fixture
def two_months(manager):
    old = [contact_create(acquired_at=at(2025, 1, 5)) for _ in range(4)]
    buy(old[0], at(2025, 2, 3), "100.00")
    buy(old[1], at(2025, 2, 4), "300.00")
    buy(old[2], at(2025, 2, 5), "80.50")
    buy(old[1], at(2025, 3, 3), "100.00")
    referred = contact_create(acquired_at=at(2025, 3, 9), referred_by=old[0])
    buy(referred, at(2025, 3, 10), "60.00")

    def filters(month):
        return Filters(date_from=dt.date(2025, month, 1), date_to=dt.date(2025, month, 28), user=manager)

    return metrics.sales_decomposition(period_a=filters(2), period_b=filters(3))


def test_the_service_gives_each_factor_its_part_of_the_change(two_months):
    result = two_months
    assert result.sales_difference == result.b.sales - result.a.sales == Decimal("-320.50")
    assert sum(item.amount for item in result.contributions) == result.sales_difference
    assert [item.key for item in result.contributions] == list(metrics.DECOMPOSITION_FACTORS)
    # Fission rose (a referred lead in March) although the sales fell: it added money.
    assert result.contribution("fission") > 0
    assert result.contribution("conversion") < 0


def _render(template: str, **context) -> str:
    return Template("{% load reports %}" + template).render(Context({"currency_symbol": "¥", **context}))


def test_the_sentence_under_the_waterfall_says_what_moved_the_sales_biggest_first(two_months):
    with translation.override("en"):
        sentence = _render("{% decomposition_sentence result %}", result=two_months)
    assert sentence.startswith("Sales fell ¥320.50: ")
    effects = re.findall(r"(added|took away) (¥[\d,.]+)", sentence)
    assert effects and effects[0][0] == "took away"
    assert "a higher fission rate added" in sentence and sentence.endswith(".")


def test_the_waterfall_starts_at_a_ends_at_b_and_each_step_starts_where_the_last_ended(two_months):
    spec = _waterfall(two_months)
    steps = spec["steps"]
    assert steps[0] == {"kind": "total", "base": 0.0, "value": float(two_months.a.sales)}
    assert steps[-1] == {"kind": "total", "base": 0.0, "value": float(two_months.b.sales)}
    level = steps[0]["value"]
    for step in steps[1:-1]:
        assert step["base"] == pytest.approx(level)
        assert step["kind"] == ("rise" if step["value"] > 0 else "fall" if step["value"] < 0 else "flat")
        level += step["value"]
    assert level == pytest.approx(steps[-1]["value"])


def _waterfall(result):
    from analytics.templatetags.reports import waterfall_chart

    return waterfall_chart(result)


def test_the_page_draws_the_waterfall_and_lists_each_contribution(manager_client, two_months):
    response = manager_client.get(
        reverse("analytics:decomposition"),
        {"date_from": "2025-03-01", "date_to": "2025-03-28", "compare_from": "2025-02-01", "compare_to": "2025-02-28"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    page = response.content.decode()
    spec = json.loads(re.search(r'<script id="chart-waterfall" type="application/json">(.*?)</script>', page).group(1))
    assert spec["type"] == "waterfall" and len(spec["steps"]) == 7
    assert 'data-testid="decomposition-sentence">Sales fell ¥320.50:' in page
    assert 'data-testid="sales-difference">-¥320.50<' in page
    assert page.count('data-testid="factor-contribution"') == 5


def test_a_joint_part_of_retained_users_and_fission_is_one_step_and_one_phrase():
    a = period(retained=0, referred=3, buyers=1, orders=1, sales="50.00")
    b = period(retained=4, referred=2, buyers=2, orders=2, sales="150.00")
    parts = metrics.sales_change_contributions(a, b)
    result = metrics.Decomposition(
        a=None, b=None, sales_change=3.0, factors=[], sales_difference=Decimal("100.00"), contributions=parts
    )
    with translation.override("en"):
        sentence = _render("{% decomposition_sentence result %}", result=result)
        labels = _waterfall_labels(parts)
    assert "more contacts reached added ¥" in sentence
    assert labels == [
        "Contacts reached (retained × fission)",
        "Conversion",
        "Average order value",
        "Repurchase (orders per buyer)",
    ]


def _waterfall_labels(parts):
    from analytics.templatetags.reports import factor_label

    return [factor_label(item.key) for item in parts]
