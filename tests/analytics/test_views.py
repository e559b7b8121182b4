"""The report pages (/reports/), the contact list's drill-down behind their numbers, the scores on the
contact page and the score filters of the contact list, through Django's test client."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import zoneinfo
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from analytics import metrics
from analytics.metrics import Filters
from analytics.models import ClvFit, ContactScore, Layer
from communities.services import membership_join
from contacts.services import contact_create, purchase_record, touchpoint_record
from scrm import roles
from tests.factories import ChannelFactory, ChannelSpendFactory, CommunityFactory, UserFactory

PASSWORD = "pass-word-123"
TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
MARCH = {"date_from": "2025-03-01", "date_to": "2025-03-31"}
LIST_URL = reverse("contacts:list")
REPORTS = ["overview", "funnel", "cohorts", "channels", "trend", "decomposition", "layers", "communities", "koc"]
_orders = iter(range(1, 10**6))


def at(y: int, m: int, d: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(y, m, d, hour, tzinfo=TZ)


def buy(contact, when, amount="100.00"):
    purchase_record(contact=contact, external_order_id=f"V{next(_orders)}", purchased_at=when, amount=Decimal(amount))


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def march(user, **values) -> Filters:
    return Filters(date_from=dt.date(2025, 3, 1), date_to=dt.date(2025, 3, 31), user=user, **values)


def links(response, testid: str) -> list[tuple[str, int]]:
    """(href, number shown) of every link with that data-testid."""
    found = re.findall(rf'<a href="([^"]+)"[^>]*data-testid="{testid}"[^>]*>(\d+)', response.content.decode())
    return [(html.unescape(href), int(number)) for href, number in found]


def listed_ids(response) -> set[int]:
    return {contact.pk for contact in response.context["contacts"]}


@pytest.fixture
def manager_client(manager):
    return logged_in(manager)


@pytest.fixture
def operator_client(operator):
    return logged_in(operator)


@pytest.fixture
def shop(operator, other_operator):
    """A small March 2025: two channels (one with spend), leads of both operators, buyers, a repeat buyer,
    a referral, an engaged lead, a February lead who bought in March, and a community."""
    douyin, wechat = ChannelFactory(name="抖音"), ChannelFactory(name="公众号")
    ChannelSpendFactory(channel=douyin, start_date=dt.date(2025, 3, 1), end_date=dt.date(2025, 3, 31), amount=3000)
    repeat = contact_create(name="甲复购", owner=operator, channel=douyin, acquired_at=at(2025, 3, 3))
    buy(repeat, at(2025, 3, 5), "200.00")
    buy(repeat, at(2025, 3, 20), "100.00")
    referred = contact_create(
        name="乙被推荐", owner=operator, channel=wechat, acquired_at=at(2025, 3, 10), referred_by=repeat
    )
    touchpoint_record(contact=referred, medium="chat", kind="message_in", occurred_at=at(2025, 3, 11))
    theirs = contact_create(name="丙同事的", owner=other_operator, channel=douyin, acquired_at=at(2025, 3, 12))
    buy(theirs, at(2025, 3, 14), "50.00")
    february = contact_create(name="丁二月", owner=other_operator, channel=None, acquired_at=at(2025, 2, 10))
    buy(february, at(2025, 2, 11), "80.00")
    buy(february, at(2025, 3, 2), "80.00")
    lead = contact_create(name="戊线索", owner=operator, channel=douyin, acquired_at=at(2025, 3, 25))
    community = CommunityFactory(owner=operator, name="测试群")
    membership_join(community=community, contact=repeat, joined_at=at(2025, 3, 6))
    return {
        "douyin": douyin,
        "wechat": wechat,
        "repeat": repeat,
        "referred": referred,
        "theirs": theirs,
        "february": february,
        "lead": lead,
        "community": community,
    }


# --- Access ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REPORTS)
def test_every_report_page_renders_for_a_manager(manager_client, shop, name):
    response = manager_client.get(reverse(f"analytics:{name}"), MARCH)
    assert response.status_code == 200
    assert response.context["ready"], response.context["form"].errors
    assert 'data-testid="report-tabs"' in response.content.decode()


@pytest.mark.parametrize("role", [roles.ADMIN, roles.INTEGRATOR])
def test_admins_and_integrators_may_read_the_reports(db, role):
    user = UserFactory(username=f"reports-{role}", role=role)
    assert logged_in(user).get(reverse("analytics:overview")).status_code == 200


@pytest.mark.parametrize("name", REPORTS)
def test_operators_see_every_report_page_for_their_own_contacts(operator_client, name):
    # Their own figures (tests/analytics/test_workbench.py checks the scoping); spend stays the managers'.
    assert operator_client.get(reverse(f"analytics:{name}")).status_code == 200


def test_anonymous_visitors_are_sent_to_the_login_page(client, db):
    response = client.get(reverse("analytics:overview"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_reports_are_in_the_navigation_of_managers_and_operators(manager_client, operator_client):
    assert f'href="{reverse("analytics:overview")}"' in manager_client.get(LIST_URL).content.decode()
    assert f'href="{reverse("analytics:overview")}"' in operator_client.get(LIST_URL).content.decode()


# --- The filter form ------------------------------------------------------------------------------


#: (page, query string, the field at fault): the page and the analytics API share the forms, and refuse alike.
BAD_FILTERS = [
    ("overview", {"date_from": "2025-03-31", "date_to": "2025-03-01"}, "date_to"),
    ("overview", {"date_from": "2025-02-30", "date_to": "2025-03-31"}, "date_from"),
    ("overview", {**MARCH, "cohort": "2025-13"}, "cohort"),
    ("overview", {**MARCH, "channel": "999999"}, "channel"),
    ("overview", {"date_from": "1900-01-01", "date_to": "2025-03-31"}, "date_from"),
    ("overview", {"date_from": "2000-01-01", "date_to": "2025-03-31"}, "date_from"),
    ("channels", {"date_from": "2025-03-01", "date_to": "9999-12-31"}, "date_to"),
    ("cohorts", {**MARCH, "months": "40"}, "months"),
    ("cohorts", {**MARCH, "view": "clicks"}, "view"),
    ("funnel", {**MARCH, "group_by": "owner"}, "group_by"),
    ("trend", {**MARCH, "metric": "profit"}, "metric"),
    ("trend", {**MARCH, "grain": "year"}, "grain"),
    ("decomposition", {**MARCH, "compare_from": "2025-02-01"}, "compare_to"),
    ("decomposition", {**MARCH, "compare_from": "2025-02-10", "compare_to": "2025-02-01"}, "compare_to"),
    ("koc", {"community": "999999"}, "community"),
    ("koc", {"limit": "0"}, "limit"),
]


def test_the_period_defaults_to_the_last_30_days(manager_client):
    response = manager_client.get(reverse("analytics:overview"))
    today = timezone.localdate()
    form = response.context["form"]
    assert (form.cleaned_data["date_from"], form.cleaned_data["date_to"]) == (today - dt.timedelta(days=29), today)
    assert f'value="{today - dt.timedelta(days=29):%Y-%m-%d}"' in response.content.decode()


@pytest.mark.parametrize(("name", "params", "field"), BAD_FILTERS)
def test_bad_filters_are_shown_on_the_form_not_as_an_error_page(manager_client, shop, name, params, field):
    response = manager_client.get(reverse(f"analytics:{name}"), params)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    page = response.content.decode()
    assert f"field field-{field} has-error" in page
    if name != "koc" or field != "community":
        assert 'data-testid="report-not-ready"' in page


@pytest.mark.parametrize(("name", "params", "field"), BAD_FILTERS)
def test_the_api_refuses_what_the_page_refuses_naming_the_same_field(manager_api, shop, name, params, field):
    response = manager_api.get(f"/api/v1/analytics/{name}/", params)
    assert response.status_code == 400
    assert field in {error["field"] for error in response.json()["errors"]}


def test_the_owner_list_offers_the_staff_and_the_report_takes_any_owner_like_the_api(
    manager_client, operator, integrator, shop
):
    page = manager_client.get(reverse("analytics:overview"), MARCH)
    options = re.search(r'<select name="owner"[^>]*>(.*?)</select>', page.content.decode(), re.S).group(1)
    assert f'value="{operator.pk}"' in options and f'value="{integrator.pk}"' not in options
    response = manager_client.get(reverse("analytics:overview"), {**MARCH, "owner": integrator.pk})
    assert response.context["ready"], response.context["form"].errors


def test_a_drill_down_by_a_community_the_operator_does_not_see_is_refused(operator_client, other_operator, shop):
    hidden = CommunityFactory(owner=other_operator)
    params = {"drill-metric": "leads", "drill-date_from": "2025-03-01", "drill-date_to": "2025-03-31"}
    response = operator_client.get(LIST_URL, {**params, "drill-community": hidden.pk})
    assert 'data-testid="drill-error"' in response.content.decode()
    own = operator_client.get(LIST_URL, {**params, "drill-community": shop["community"].pk})
    assert listed_ids(own) == {shop["repeat"].pk}


# --- What the pages show --------------------------------------------------------------------------


def test_overview_shows_the_kpis_of_the_metric_service(manager, manager_client, shop):
    response = manager_client.get(reverse("analytics:overview"), MARCH)
    kpis = metrics.kpis(march(manager))
    assert response.context["kpis"] == kpis
    page = response.content.decode()
    assert re.search(rf'data-testid="kpi-leads"[^>]*>{kpis.leads}<', page)
    assert re.search(r'data-testid="kpi-cac">¥1,500.00<', page)  # 3000 spend ÷ M = 2 new customers
    assert "M = 2" in page or "M = 2" in html.unescape(page)


def test_empty_values_are_shown_as_a_dash(manager_client, shop):
    page = manager_client.get(reverse("analytics:overview"), {"date_from": "2020-01-01", "date_to": "2020-01-31"})
    text = page.content.decode()
    for testid in ("kpi-cac", "kpi-cpl", "kpi-aov", "kpi-clv", "kpi-roi", "kpi-ltv-cac", "kpi-repurchase"):
        assert re.search(rf'data-testid="{testid}">—<', text), testid


def test_owner_filter_empties_the_spend_metrics_and_says_why(manager_client, shop, operator):
    page = manager_client.get(reverse("analytics:overview"), {**MARCH, "owner": operator.pk}).content.decode()
    assert 'data-testid="spend-note"' in page
    assert re.search(r'data-testid="kpi-cac">—<', page)


def test_chart_data_reaches_the_page_as_json_script(manager, manager_client, shop):
    page = manager_client.get(reverse("analytics:overview"), MARCH).content.decode()
    data = re.search(r'<script id="chart-funnel" type="application/json">(.*?)</script>', page, re.S)
    spec = json.loads(data.group(1))
    assert spec["type"] == "bar"
    assert spec["datasets"][0]["data"] == [step.count for step in metrics.funnel(march(manager)).total]
    assert 'data-chart="chart-funnel"' in page
    assert "vendor/chartjs/chart.umd.min.js" in page and "js/reports.js" in page


def test_trend_chart_has_one_point_per_bucket_and_money_as_numbers(manager, manager_client, shop):
    response = manager_client.get(reverse("analytics:trend"), {**MARCH, "metric": "revenue", "grain": "week"})
    points = metrics.trend(march(manager), metric="revenue", grain="week")
    spec = response.context["charts"]["trend"]
    assert spec["type"] == "line" and spec["format"] == "money"
    assert spec["datasets"][0]["data"] == [float(point.value) for point in points]
    assert len(spec["labels"]) == len(points)


def test_trend_grain_defaults_to_days_for_a_month_and_months_for_years(manager_client, shop):
    assert manager_client.get(reverse("analytics:trend"), MARCH).context["grain"] == "day"
    long = {"date_from": "2023-01-01", "date_to": "2025-03-31"}
    assert manager_client.get(reverse("analytics:trend"), long).context["grain"] == "month"


def test_decomposition_compares_with_the_preceding_period_of_equal_length(manager, manager_client, shop):
    response = manager_client.get(
        reverse("analytics:decomposition"), {"date_from": "2025-03-01", "date_to": "2025-03-10"}
    )
    assert response.context["period_a"] == (dt.date(2025, 2, 19), dt.date(2025, 2, 28))
    a = Filters(date_from=dt.date(2025, 2, 19), date_to=dt.date(2025, 2, 28), user=manager)
    b = Filters(date_from=dt.date(2025, 3, 1), date_to=dt.date(2025, 3, 10), user=manager)
    assert response.context["result"] == metrics.sales_decomposition(period_a=a, period_b=b)
    assert "compare_from=2025-02-19" in html.unescape(response.content.decode())


def test_cohort_page_shows_a_heatmap_of_the_chosen_size(manager_client, shop):
    response = manager_client.get(reverse("analytics:cohorts"), {**MARCH, "months": "6", "view": "engagement"})
    page = response.content.decode()
    assert 'data-testid="cohort-heatmap"' in page
    assert page.count('data-testid="cohort-row"') == 6
    assert response.context["cohort_view"] == "engagement"


def test_koc_page_ranks_current_members_and_htmx_gets_the_table_alone(manager_client, shop):
    url = reverse("analytics:koc")
    page = manager_client.get(url, {"community": shop["community"].pk})
    assert page.context["koc_rows"][0]["row"].contact_id == shop["repeat"].pk
    assert "<html" in page.content.decode()
    partial = manager_client.get(url, {"community": shop["community"].pk}, headers={"HX-Request": "true"})
    assert "<html" not in partial.content.decode()
    assert partial.content.decode().count('data-testid="koc-row"') == 1


def test_koc_page_without_any_community_says_so(manager_client):
    response = manager_client.get(reverse("analytics:koc"))
    assert response.status_code == 200
    assert 'data-testid="no-communities"' in response.content.decode()


def test_koc_page_defaults_to_the_biggest_community(manager_client, shop):
    CommunityFactory(name="一个空群")
    response = manager_client.get(reverse("analytics:koc"))
    assert response.context["community"] == shop["community"]


def test_communities_page_lists_community_health(manager_client, shop):
    response = manager_client.get(reverse("analytics:communities"), MARCH)
    [row] = response.context["communities"]
    assert (row.community, row.members, row.joins) == ("测试群", 1, 1)


# --- Export links ---------------------------------------------------------------------------------


def test_export_links_call_the_api_with_the_page_parameters(manager_client, shop):
    params = {**MARCH, "channel": shop["douyin"].pk, "group_by": "channel"}
    page = html.unescape(manager_client.get(reverse("analytics:funnel"), params).content.decode())
    [href] = re.findall(r'href="(/api/v1/analytics/funnel/\?[^"]+)"', page)
    query = parse_qs(urlsplit(href).query)
    assert query == {
        "date_from": ["2025-03-01"],
        "date_to": ["2025-03-31"],
        "channel": [str(shop["douyin"].pk)],
        "group_by": ["channel"],
        "format": ["csv"],
    }


def test_every_report_table_has_its_export_link(manager_client, shop):
    expected = {
        "overview": ["overview", "kpis", "funnel", "channels", "cohorts"],
        "cohorts": ["cohorts"],
        "trend": ["trend"],
        "decomposition": ["decomposition"],
        "layers": ["layers"],
        "communities": ["communities"],
        "koc": ["koc"],
    }
    for name, reports in expected.items():
        page = manager_client.get(reverse(f"analytics:{name}"), MARCH).content.decode()
        found = re.findall(r'href="/api/v1/analytics/([a-z]+)/\?[^"]*format=csv"', page)
        assert sorted(found) == sorted(reports), name


def test_export_links_download_csv_from_the_analytics_api(manager_client, shop):
    pytest.importorskip("analytics.api.views", reason="the analytics API is not in this tree")
    pages = [("overview", MARCH), ("funnel", {**MARCH, "group_by": "cohort"}), ("cohorts", MARCH), ("trend", MARCH)]
    pages += [("decomposition", MARCH), ("layers", MARCH), ("communities", MARCH), ("koc", {})]
    for name, params in pages:
        page = html.unescape(manager_client.get(reverse(f"analytics:{name}"), params).content.decode())
        for href in re.findall(r'href="(/api/v1/analytics/[a-z]+/\?[^"]+)"', page):
            response = manager_client.get(href)
            assert response.status_code == 200, (href, response.content[:300])
            assert response["Content-Type"].startswith("text/csv"), href


# --- Drill-down -----------------------------------------------------------------------------------


def test_every_funnel_count_links_to_exactly_the_contacts_behind_it(manager, manager_client, shop):
    steps = links(manager_client.get(reverse("analytics:overview"), MARCH), "funnel-count")
    assert [number for _href, number in steps] == [step.count for step in metrics.funnel(march(manager)).total]
    for (href, number), step in zip(steps, metrics.FUNNEL_STEPS, strict=True):
        response = manager_client.get(href)
        expected = set(metrics.drilldown(march(manager), metric="funnel", step=step).values_list("pk", flat=True))
        assert listed_ids(response) == expected
        assert response.context["drill_count"] == number == len(expected)
        banner = response.content.decode()
        assert 'data-testid="drill-banner"' in banner
        assert f"{number}" in banner


def test_kpi_and_channel_counts_link_to_their_contacts(manager, manager_client, shop):
    page = manager_client.get(reverse("analytics:overview"), MARCH)
    checks = [
        ("kpi-leads", metrics.drilldown(march(manager), metric="leads")),
        ("kpi-new-customers", metrics.drilldown(march(manager), metric="new_customers")),
        ("kpi-buyers", metrics.drilldown(march(manager), metric="buyers")),
        (
            "channel-leads",
            metrics.drilldown(march(manager, channel_id=shop["douyin"].pk), metric="leads"),
        ),
    ]
    for testid, expected in checks:
        found = links(page, testid)
        if testid == "channel-leads":
            found = [(href, n) for href, n in found if f"drill-channel={shop['douyin'].pk}" in href]
        href, number = found[0]
        response = manager_client.get(href)
        assert listed_ids(response) == set(expected.values_list("pk", flat=True)), testid
        assert response.context["drill_count"] == number, testid


def test_cohort_cells_link_to_their_contacts(manager, manager_client, shop):
    response = manager_client.get(reverse("analytics:cohorts"), {**MARCH, "months": "2"})
    page = response.content.decode()
    cells = re.findall(r'<a href="([^"]+)" data-testid="cohort-cell" data-count="(\d+)"', page)
    assert cells
    for href, count in cells:
        followed = manager_client.get(html.unescape(href))
        assert followed.context["drill_count"] == int(count)
    # February's cohort (one lead) bought in February and again in March.
    february = response.context["heatmap"][0]
    assert [cell["count"] for cell in february["cells"]] == [1, 1]


def test_rfm_layer_counts_link_to_their_contacts(manager, manager_client, shop):
    today = timezone.localdate()
    for contact, layer in ((shop["repeat"], Layer.REPEAT), (shop["theirs"], Layer.FIRST_TIME)):
        ContactScore.objects.create(contact=contact, layer=layer, as_of=today, computed_at=timezone.now())
    page = manager_client.get(reverse("analytics:layers"), MARCH)
    counts = dict(links(page, "layer-count"))
    assert sorted(counts.values()) == [1, 1, 3]  # repeat, first-time, and the three not scored yet
    for href, number in counts.items():
        assert manager_client.get(href).context["drill_count"] == number
    unscored = [href for href in counts if "drill-layer=unscored" in href]
    assert listed_ids(manager_client.get(unscored[0])) == {shop["referred"].pk, shop["february"].pk, shop["lead"].pk}


def test_operators_drill_down_only_into_their_own_contacts(operator, operator_client, shop):
    params = {"drill-metric": "leads", "drill-date_from": "2025-03-01", "drill-date_to": "2025-03-31"}
    response = operator_client.get(LIST_URL, params)
    own = {shop["repeat"].pk, shop["referred"].pk, shop["lead"].pk}
    assert listed_ids(response) == own
    assert response.context["drill_count"] == 3
    assert set(metrics.drilldown(march(operator), metric="leads").values_list("pk", flat=True)) == own
    # Naming a colleague as owner cannot widen what an operator sees.
    forged = operator_client.get(LIST_URL, {**params, "drill-owner": shop["theirs"].owner_id})
    assert listed_ids(forged) == set()
    assert "丙同事的" not in forged.content.decode()


@pytest.mark.parametrize(
    "params",
    [
        {"drill-metric": "bogus", "drill-date_from": "2025-03-01", "drill-date_to": "2025-03-31"},
        {"drill-metric": "leads", "drill-date_from": "not-a-date", "drill-date_to": "2025-03-31"},
        {"drill-metric": "leads", "drill-date_from": "2025-03-31", "drill-date_to": "2025-03-01"},
        {"drill-metric": "funnel", "drill-date_from": "2025-03-01", "drill-date_to": "2025-03-31"},
        {"drill-metric": "funnel", "drill-step": "vip", "drill-date_from": "2025-03-01", "drill-date_to": "2025-03-31"},
        {
            "drill-metric": "cohort",
            "drill-month": "2025-3",
            "drill-date_from": "2025-03-01",
            "drill-date_to": "2025-03-31",
        },
        {
            "drill-metric": "cohort",
            "drill-month": "9999-12",
            "drill-offset": "35",
            "drill-date_from": "2025-03-01",
            "drill-date_to": "2025-03-31",
        },
        {
            "drill-metric": "cohort",
            "drill-month": "2025-03",
            "drill-offset": "100000",
            "drill-date_from": "2025-03-01",
            "drill-date_to": "2025-03-31",
        },
        {"drill-metric": "rfm", "drill-layer": "vip", "drill-date_from": "2025-03-01", "drill-date_to": "2025-03-31"},
        {"drill-metric": "leads", "drill-date_from": "2025-03-01", "drill-date_to": "2025-03-31", "drill-channel": "x"},
        {"drill-step": "leads"},
    ],
)
def test_bad_drill_parameters_show_a_message_and_the_unnarrowed_list(manager_client, shop, params):
    response = manager_client.get(LIST_URL, params)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="drill-error"' in page
    assert response.context["page_obj"].paginator.count == 5


def test_drill_down_combines_with_the_list_filters_and_can_be_cleared(manager_client, shop):
    params = {
        "drill-metric": "leads",
        "drill-date_from": "2025-03-01",
        "drill-date_to": "2025-03-31",
        "search": "甲",
    }
    response = manager_client.get(LIST_URL, params)
    assert listed_ids(response) == {shop["repeat"].pk}
    assert response.context["drill_count"] == 4  # the banner counts the contacts behind the number
    page = response.content.decode()
    assert '<input type="hidden" name="drill-metric" value="leads">' in page
    assert response.context["drill_clear_url"] == f"{LIST_URL}?search=%E7%94%B2"


# --- Bounded queries ------------------------------------------------------------------------------


def _grow(operator, count: int, start: int) -> None:
    """More contacts, channels, purchases, interactions and communities, over several months."""
    community = CommunityFactory(owner=operator)
    for i in range(count):
        channel = ChannelFactory(name=f"增长渠道{start + i}")
        ChannelSpendFactory(channel=channel, start_date=dt.date(2025, 1, 1), end_date=dt.date(2025, 3, 31))
        contact = contact_create(
            name=f"增长{start + i}", owner=operator, channel=channel, acquired_at=at(2025, 1 + i % 3, 1 + i % 27)
        )
        buy(contact, at(2025, 3, 1 + i % 28))
        buy(contact, at(2025, 2 + i % 2, 2 + i % 20))
        touchpoint_record(contact=contact, medium="chat", kind="message_in", occurred_at=at(2025, 3, 1 + i % 28))
        membership_join(community=community, contact=contact, joined_at=at(2025, 3, 1))


def test_overview_query_count_does_not_depend_on_the_size_of_the_data(
    manager_client, operator, shop, django_assert_max_num_queries
):
    url = reverse("analytics:overview")
    manager_client.get(url, MARCH)  # sessions, permissions and content types are warm from here on
    with django_assert_max_num_queries(40) as small:
        assert manager_client.get(url, MARCH).status_code == 200
    _grow(operator, 30, start=0)
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = manager_client.get(url, MARCH)
    assert response.context["kpis"].buyers > 30


@pytest.mark.parametrize("name", ["funnel", "cohorts", "channels", "trend", "decomposition", "layers", "communities"])
def test_report_pages_query_count_does_not_depend_on_the_size_of_the_data(
    manager_client, operator, shop, name, django_assert_max_num_queries
):
    url = reverse(f"analytics:{name}")
    params = {**MARCH, "group_by": "channel"} if name == "funnel" else MARCH
    manager_client.get(url, params)
    with django_assert_max_num_queries(40) as small:
        manager_client.get(url, params)
    _grow(operator, 12, start=100)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert manager_client.get(url, params).context["ready"]


def test_drilled_list_query_count_does_not_depend_on_the_size_of_the_data(
    manager_client, operator, shop, django_assert_max_num_queries
):
    params = {
        "drill-metric": "funnel",
        "drill-step": "engaged",
        "drill-date_from": "2025-01-01",
        "drill-date_to": "2025-03-31",
    }
    manager_client.get(LIST_URL, params)
    with django_assert_max_num_queries(30) as small:
        manager_client.get(LIST_URL, params)
    _grow(operator, 20, start=200)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert manager_client.get(LIST_URL, params).context["drill_count"] > 20


# --- Scores on the contact page and in the contact filters ---------------------------------------


def _score(contact, **values) -> ContactScore:
    defaults = {"layer": Layer.CORE, "as_of": dt.date(2025, 4, 1), "computed_at": timezone.now()}
    return ContactScore.objects.create(contact=contact, **{**defaults, **values})


def test_contact_page_shows_the_stored_scores(operator_client, shop):
    _score(
        shop["repeat"],
        r_score=5,
        f_score=4,
        m_score=3,
        frequency=2,
        monetary=Decimal("300.00"),
        predicted_purchases=1.2345,
        predicted_spend=Decimal("120.00"),
        predicted_clv=Decimal("148.14"),
        p_alive=0.875,
    )
    ClvFit.objects.create(
        status=ClvFit.Status.DONE,
        as_of=dt.date(2025, 4, 1),
        horizon_days=365,
        dormant_days=180,
        started_at=timezone.now(),
    )
    page = operator_client.get(reverse("contacts:detail", args=[shop["repeat"].pk])).content.decode()
    assert re.search(r'data-testid="score-rfm">5 / 4 / 3<', page)
    assert re.search(r'data-testid="score-predicted-clv">¥148.14<', page)
    assert re.search(r'data-testid="score-predicted-purchases">1.23<', page)
    assert re.search(r'data-testid="score-p-alive">87.5%<', page)
    assert re.search(r'data-testid="score-as-of">2025-04-01<', page)
    assert "365" in page
    assert 'data-testid="score-layer"' in page


def test_contact_page_says_when_a_contact_is_not_scored_yet(operator_client, shop):
    page = operator_client.get(reverse("contacts:detail", args=[shop["lead"].pk])).content.decode()
    assert 'data-testid="not-scored"' in page


def test_a_score_without_predictions_shows_dashes(operator_client, shop):
    _score(shop["lead"], layer=Layer.INTENT_ONLY)
    page = operator_client.get(reverse("contacts:detail", args=[shop["lead"].pk])).content.decode()
    assert re.search(r'data-testid="score-predicted-clv">—<', page)
    assert re.search(r'data-testid="score-rfm">— / — / —<', page)


def test_contact_list_and_api_segment_by_layer_and_predicted_clv(manager, manager_client, shop):
    _score(shop["repeat"], layer=Layer.CORE, predicted_clv=Decimal("500.00"))
    _score(shop["theirs"], layer=Layer.FIRST_TIME, predicted_clv=Decimal("80.00"))
    _score(shop["lead"], layer=Layer.INTENT_ONLY)
    assert listed_ids(manager_client.get(LIST_URL, {"layer": "core"})) == {shop["repeat"].pk}
    both = manager_client.get(LIST_URL, {"layer": ["core", "first_time"]})
    assert listed_ids(both) == {shop["repeat"].pk, shop["theirs"].pk}
    assert listed_ids(manager_client.get(LIST_URL, {"predicted_clv_min": "100"})) == {shop["repeat"].pk}
    assert listed_ids(manager_client.get(LIST_URL, {"predicted_clv_max": "100"})) == {shop["theirs"].pk}
    assert 'name="predicted_clv_min"' in manager_client.get(LIST_URL).content.decode()

    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(manager)
    body = api.get("/api/v1/contacts/", {"layer": "first_time", "predicted_clv_min": "50"}).json()
    assert [row["id"] for row in body["results"]] == [shop["theirs"].pk]
    assert api.get("/api/v1/contacts/", {"layer": "vip"}).status_code == 400
