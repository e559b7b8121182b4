"""How the report pages write numbers and mark incomplete periods, and the small things every page has.

- Numbers: a comma every three digits in Chinese as in English (Django's own zh-Hans format has none),
  money with two decimals, huge percentages as multiples (ROI 12,345 % → 123×).
- The month, week or day holding today is counted only to date: the trend's bar and the cohort matrix's
  cells of that month are marked, and a note says so ("month to date").
- The favicon, the "API docs" footer link for the roles that use the API, and empty choices that say what
  they mean instead of "---------"."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from analytics import metrics
from analytics.forms import KocForm
from analytics.templatetags.reports import grouped, money_text, num, percent, ratio
from communities.forms import DashboardCommunityFilterSet
from communities.models import Community
from contacts.services import contact_create, purchase_record
from scrm import roles
from tests.factories import ChannelSpendFactory, UserFactory
from wecom.forms import LiveCodeForm

BLANK = "---------"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _render(template: str, **context) -> str:
    return Template("{% load reports %}" + template).render(Context({"currency_symbol": "¥", **context}))


# --- numbers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_numbers_have_thousands_separators_in_both_languages(language):
    with translation.override(language):
        assert num(1234567) == "1,234,567"
        assert num(999) == "999"
        assert num(None) == "—"
        assert _render("{% money value %}", value=Decimal("1234567.5")) == "¥1,234,567.50"
        assert _render("{% money value %}", value=Decimal("-700")) == "-¥700.00"
        assert _render("{% signed_money value %}", value=Decimal("9000")) == "+¥9,000.00"
        assert ratio(12345.678) == "12,345.68"
        assert percent(0.1234) == "12.3%"


def test_rounding_is_half_up_and_never_gives_minus_zero():
    assert grouped(Decimal("2.345"), 2) == "2.35"
    assert grouped(Decimal("-0.001"), 2) == "0.00"
    assert money_text(Decimal("12345.5"), "¥", whole=True) == "¥12,346"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.5, "50.0%"),
        (9.994, "999.4%"),
        (10, "10×"),
        (12.345, "12.3×"),
        (123.45, "123×"),  # ROI 12,345 %
        (12345.6, "12,346×"),
        (-15, "-15×"),
        (None, "—"),
    ],
)
def test_percentages_from_a_thousand_percent_on_are_written_as_multiples(value, text):
    assert percent(value) == text


def test_chinese_report_pages_write_numbers_with_separators(manager, settings):
    settings.LANGUAGE_CODE = "zh-hans"
    ChannelSpendFactory(start_date=dt.date(2025, 3, 1), end_date=dt.date(2025, 3, 31), amount=Decimal("123456.00"))
    page = client_for(manager).get(
        reverse("analytics:overview"),
        {"date_from": "2025-03-01", "date_to": "2025-03-31"},
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    html = page.content.decode()
    assert '<html lang="zh-hans">' in html
    assert 'data-testid="kpi-spend">¥123,456.00<' in html


# --- incomplete periods -----------------------------------------------------------------------------------


def test_the_bucket_holding_today_is_to_date_and_cut_and_future_ones_are_marked():
    spans = metrics.bucket_spans(
        [dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1), dt.date(2025, 4, 1)],
        "month",
        date_from=dt.date(2025, 1, 10),
        date_to=dt.date(2025, 4, 30),
        today=dt.date(2025, 3, 14),
    )
    assert [span.partial for span in spans] == [metrics.CUT, None, metrics.TO_DATE, metrics.FUTURE]
    assert (spans[0].first, spans[0].last) == (dt.date(2025, 1, 10), dt.date(2025, 1, 31))
    days = metrics.bucket_spans(
        [dt.date(2025, 3, 13), dt.date(2025, 3, 14)],
        "day",
        date_from=dt.date(2025, 3, 13),
        date_to=dt.date(2025, 3, 14),
        today=dt.date(2025, 3, 14),
    )
    assert [span.partial for span in days] == [None, metrics.TO_DATE]  # today is not over
    week = metrics.bucket_spans(
        [dt.date(2025, 3, 10)],
        "week",
        date_from=dt.date(2025, 3, 10),
        date_to=dt.date(2025, 3, 16),
        today=dt.date(2025, 4, 1),
    )
    assert week[0].partial is None and week[0].last == dt.date(2025, 3, 16)


def test_the_partial_month_of_a_retention_matrix():
    today = dt.date(2025, 3, 14)
    assert metrics.partial_month(dt.date(2025, 3, 31), today) == metrics.PartialMonth(
        month=dt.date(2025, 3, 1), through=today, to_date=True
    )
    assert metrics.partial_month(dt.date(2025, 2, 10), today) == metrics.PartialMonth(
        month=dt.date(2025, 2, 1), through=dt.date(2025, 2, 10), to_date=False
    )
    assert metrics.partial_month(dt.date(2025, 2, 28), today) is None


def _today_buyer():
    today = timezone.localdate()
    now = timezone.now()
    contact = contact_create(acquired_at=now - dt.timedelta(days=40))
    purchase_record(contact=contact, external_order_id="TODAY-1", purchased_at=now, amount=Decimal("88.00"))
    return today


def test_the_trend_marks_the_month_to_date(manager):
    today = _today_buyer()
    page = client_for(manager).get(
        reverse("analytics:trend"),
        {"date_from": f"{today.year - 1}-01-01", "date_to": today.isoformat(), "grain": "month"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    html = page.content.decode()
    spec = json.loads(re.search(r'<script id="chart-trend" type="application/json">(.*?)</script>', html).group(1))
    assert spec["type"] == "bar"
    assert spec["partial"][-1] == "month to date" and not any(spec["partial"][:-1])
    assert f"{today:%Y-%m}: month to date" in html
    assert html.count('data-testid="trend-partial"') == 1


def test_the_cohort_matrix_marks_the_cells_of_the_current_month(manager):
    today = _today_buyer()
    page = client_for(manager).get(
        reverse("analytics:cohorts"), {"date_to": today.isoformat()}, HTTP_ACCEPT_LANGUAGE="en"
    )
    html = page.content.decode()
    # One cell per cohort falls in the current month: the diagonal of the matrix.
    assert html.count('data-testid="cohort-partial-cell"') + html.count('heat-partial">—') >= 1
    assert f"{today:%Y-%m}: month to date, up to {today:%Y-%m-%d}." in html
    assert 'data-testid="cohort-partial-month"' in html
    spec = json.loads(re.search(r'<script id="chart-retention" type="application/json">(.*?)</script>', html).group(1))
    partial_at = {dataset["label"]: dataset["partialIndex"] for dataset in spec["datasets"]}
    cohort = f"{today - dt.timedelta(days=40):%Y-%m}"
    assert partial_at[cohort] == metrics.months_between(
        metrics.month_start(today - dt.timedelta(days=40)), metrics.month_start(today)
    )


def test_a_period_ending_on_a_month_end_in_the_past_has_nothing_partial(manager):
    page = client_for(manager).get(reverse("analytics:cohorts"), {"date_to": "2024-06-30"}, HTTP_ACCEPT_LANGUAGE="en")
    html = page.content.decode()
    assert "heat-partial" not in html and 'data-testid="partial-note"' not in html


# --- small things on every page ---------------------------------------------------------------------------


def test_every_page_links_the_favicon(manager):
    html = client_for(manager).get(reverse("analytics:overview")).content.decode()
    assert re.search(r'<link rel="icon" href="/static/favicon\.svg" type="image/svg\+xml">', html)


@pytest.mark.parametrize(
    ("role", "shown"), [(roles.MANAGER, True), (roles.ADMIN, True), (roles.INTEGRATOR, True), (roles.OPERATOR, False)]
)
def test_the_footer_links_the_api_docs_for_the_roles_that_use_the_api(db, role, shown):
    user = UserFactory(username=f"footer-{role}", role=role)
    html = client_for(user).get(reverse("contacts:list")).content.decode()
    assert ('href="/api/docs/"' in html) is shown


def test_empty_choices_say_what_they_mean(manager):
    Community.objects.create(name="益生菌宝妈群", owner=manager)
    with translation.override("en"):
        koc = KocForm(user=manager, page=True)
        assert str(koc.fields["community"].empty_label) == "Choose a community"
        assert BLANK not in str(koc["community"])
        live_code = LiveCodeForm()
        assert BLANK not in str(live_code["channel"]) and "Choose a channel" in str(live_code["channel"])
        filters = DashboardCommunityFilterSet({}, queryset=Community.objects.all())
        for name, label in (("platform", "All platforms"), ("status", "All statuses")):
            rendered = str(filters.form[name])
            assert BLANK not in rendered and rendered.count('value=""') == 1 and label in rendered
