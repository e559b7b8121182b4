"""CSV of the report tables: analytics.exports (the rows of each report, the CSV text) and the analytics
API's ``?format=csv`` with session authentication, exactly as the dashboard links to it. The numbers of a
small March 2025 are worked out by hand."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
import zoneinfo
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from analytics import exports, metrics
from analytics.metrics import Filters
from communities.services import membership_join
from contacts.services import contact_create, purchase_record, touchpoint_record
from tests.factories import ChannelFactory, ChannelSpendFactory, CommunityFactory

API = "/api/v1/analytics/"
TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
MARCH = {"date_from": "2025-03-01", "date_to": "2025-03-31"}
TABLES = [
    "kpis",
    "cohorts",
    "funnel",
    "channels",
    "decomposition",
    "layers",
    "communities",
    "koc",
    "trend",
    "drilldown",
]
PASSWORD = "pass-word-123"
_orders = iter(range(1, 10**6))


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def at(y: int, m: int, d: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(y, m, d, hour, tzinfo=TZ)


def buy(contact, when, amount):
    purchase_record(contact=contact, external_order_id=f"X{next(_orders)}", purchased_at=when, amount=Decimal(amount))


def march(user) -> Filters:
    return Filters(date_from=dt.date(2025, 3, 1), date_to=dt.date(2025, 3, 31), user=user)


def parse(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


def download(client, report: str, params: dict | None = None, *, filename: str | None = None) -> list[list[str]]:
    response = client.get(f"{API}{report}/", {**(params or {}), "format": "csv"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    if filename is None:
        filename = f"{report}-{(params or MARCH)['date_from']}-{(params or MARCH)['date_to']}.csv"
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body.startswith(b"\xef\xbb\xbf")
    return parse(body.decode("utf-8"))


def as_cells(table: exports.Table) -> list[list[str]]:
    return [[exports.cell(v) for v in table.header], *([exports.cell(v) for v in row] for row in table.rows)]


@pytest.fixture
def manager_client(manager):
    client = Client(headers={"Accept-Language": "en"})
    assert client.login(username=manager.username, password=PASSWORD)
    return client


@pytest.fixture
def shop(operator, other_operator):
    """March 2025: 抖音 (3000 spend) and 公众号; five leads — a repeat buyer who referred one, the referred
    lead (engaged), a buyer, a lead, a lead without channel — a February customer who bought again in March,
    and a community with the repeat buyer in it."""
    douyin, wechat = ChannelFactory(name="抖音"), ChannelFactory(name="公众号")
    ChannelSpendFactory(channel=douyin, start_date=dt.date(2025, 3, 1), end_date=dt.date(2025, 3, 31), amount=3000)
    repeat = contact_create(name="甲复购", owner=operator, channel=douyin, acquired_at=at(2025, 3, 3))
    buy(repeat, at(2025, 3, 5), "200.00")
    buy(repeat, at(2025, 3, 20), "100.00")
    referred = contact_create(
        name="乙被推荐", owner=operator, channel=wechat, acquired_at=at(2025, 3, 10), referred_by=repeat
    )
    touchpoint_record(contact=referred, medium="chat", kind="message_in", occurred_at=at(2025, 3, 11))
    theirs = contact_create(name="丙", owner=other_operator, channel=douyin, acquired_at=at(2025, 3, 12))
    buy(theirs, at(2025, 3, 14), "50.00")
    february = contact_create(name="丁二月", owner=other_operator, channel=None, acquired_at=at(2025, 2, 10))
    buy(february, at(2025, 2, 11), "80.00")
    buy(february, at(2025, 3, 2), "80.00")
    lead = contact_create(name="=1+2", owner=operator, channel=douyin, acquired_at=at(2025, 3, 25))
    no_channel = contact_create(name="己无渠道", owner=operator, channel=None, acquired_at=at(2025, 3, 15))
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
        "no_channel": no_channel,
        "community": community,
    }


# --- analytics.exports ------------------------------------------------------------------------------


def test_cells_write_money_with_two_decimals_ratios_as_numbers_and_empty_values_as_nothing():
    assert [exports.cell(v) for v in (Decimal("3000"), Decimal("0.5"), 0.3333, -1.0, 7, None)] == [
        "3000.00",
        "0.50",
        "0.3333",
        "-1.0",
        "7",
        "",
    ]
    assert exports.cell(dt.date(2025, 3, 1)) == "2025-03-01"
    assert exports.cell(at(2025, 3, 31, 23).astimezone(dt.UTC)) == "2025-03-31 23:00:00"


def test_free_text_that_looks_like_a_formula_is_defused_and_labels_are_not():
    assert exports.cell(exports.Text("=HYPERLINK(1)")) == "'=HYPERLINK(1)"
    assert exports.cell(exports.Text("@me")) == "'@me"
    assert exports.cell(exports.Text("宝妈群")) == "宝妈群"
    assert exports.cell("-0.5") == "-0.5"


def test_csv_starts_with_a_bom_uses_crlf_and_quotes_what_needs_quoting():
    table = exports.Table(header=["Name", "Spend"], rows=[[exports.Text("张, 三"), Decimal("1.5")], ["李四", None]])
    text = exports.csv_text(table)
    assert text == '\ufeffName,Spend\r\n"张, 三",1.50\r\n李四,\r\n'


def test_several_tables_in_one_file_have_titles_and_an_empty_line_between_them():
    first = exports.Table(header=["A"], rows=[[1]], title="First")
    second = exports.Table(header=["B"], rows=[[2], [3]], title="Second")
    assert parse(exports.csv_text([first, second])) == [["First"], ["A"], ["1"], [], ["Second"], ["B"], ["2"], ["3"]]


def test_long_tables_are_written_in_pieces():
    table = exports.Table(header=["n"], rows=([n] for n in range(1200)))
    pieces = list(exports.csv_chunks(table))
    assert len(pieces) >= 3
    assert parse("".join(pieces))[1:] == [[str(n)] for n in range(1200)]


# --- the CSV of each table, through the API -----------------------------------------------------------


def test_kpis_csv_has_one_row_per_kpi(manager_client, shop):
    rows = download(manager_client, "kpis", MARCH)
    assert rows[0] == ["Metric", "Value"]
    values = dict(rows[1:])
    assert values == {
        "Leads": "5",
        "New customers": "2",
        "Spend": "3000.00",
        "CPL (spend / leads)": "600.00",
        "CAC (spend / new customers)": "1500.00",
        "Revenue": "430.00",
        "Paid orders": "4",
        "Buyers": "3",
        "Average order value": "107.50",
        "Revenue to date of the leads (R)": "350.00",
        "CLV (historical, R / leads)": "70.00",
        "ROI": "-0.8833",
        "LTV:CAC": "0.0467",
        "Repeat buyers": "1",
        "Repurchase rate": "0.3333",
        "Referred leads": "1",
        "Referrers": "1",
        "K-factor": "1.0",
    }


def test_channels_csv_has_a_row_per_channel_and_one_for_no_channel(manager_client, shop):
    rows = download(manager_client, "channels", MARCH)
    assert rows == [
        ["Channel", "Spend", "Leads", "New customers", "CPL", "CAC", "Revenue to date of the leads (R)"]
        + ["CLV (historical)", "ROI", "LTV:CAC"],
        ["公众号", "0.00", "1", "0", "0.00", "", "0.00", "0.00", "", ""],
        ["抖音", "3000.00", "3", "2", "1000.00", "1500.00", "350.00", "116.67", "-0.8833", "0.0778"],
        ["No channel", "0.00", "1", "0", "0.00", "", "0.00", "0.00", "", ""],
    ]


def test_funnel_csv_lists_the_steps_in_total_and_per_group(manager_client, shop):
    rows = download(manager_client, "funnel", MARCH)
    assert rows == [
        ["Group", "Step", "Contacts", "Step conversion", "Overall conversion"],
        ["All leads", "Leads", "5", "", "1.0"],
        ["All leads", "Engaged", "3", "0.6", "0.6"],
        ["All leads", "First purchase", "2", "0.6667", "0.4"],
        ["All leads", "Repeat purchase", "1", "0.5", "0.2"],
        ["All leads", "Referrer", "1", "1.0", "0.2"],
    ]
    grouped = download(manager_client, "funnel", {**MARCH, "group_by": "channel"})
    assert [row[:3] for row in grouped[6:] if row[1] == "Leads"] == [
        ["公众号", "Leads", "1"],
        ["抖音", "Leads", "3"],
        ["No channel", "Leads", "1"],
    ]


def test_cohorts_csv_is_the_matrix_of_shares_then_of_counts(manager_client, shop):
    rows = download(manager_client, "cohorts", {**MARCH, "months": "3"})
    assert rows == [
        ["Cohort", "Size", "M0", "M1", "M2", "M0 contacts", "M1 contacts", "M2 contacts"],
        ["2025-01", "0", "", "", "", "0", "0", "0"],
        ["2025-02", "1", "1.0", "1.0", "", "1", "1", ""],
        ["2025-03", "5", "0.4", "", "", "2", "", ""],
    ]


def test_decomposition_csv_has_each_factor_in_both_periods_and_the_sales(manager, manager_client, shop):
    rows = download(manager_client, "decomposition", MARCH)
    assert rows[0] == [
        "Factor",
        "Period A (2025-01-29 – 2025-02-28)",
        "Period B (2025-03-01 – 2025-03-31)",
        "Change (B / A)",
        "Share of the change in sales",
    ]
    assert [row[0] for row in rows[1:]] == [
        "Retained users",
        "Fission rate",
        "Conversion",
        "Average order value",
        "Repurchase (orders per buyer)",
        "Sales",
    ]
    assert rows[-1] == ["Sales", "80.00", "430.00", "5.375", ""]
    result = metrics.sales_decomposition(
        period_a=Filters(date_from=dt.date(2025, 1, 29), date_to=dt.date(2025, 2, 28), user=manager),
        period_b=march(manager),
    )
    assert [row[1:] for row in rows[1:-1]] == [
        [exports.cell(f.a), exports.cell(f.b), exports.cell(f.change), exports.cell(f.share)] for f in result.factors
    ]
    assert rows[4][1:3] == ["80.00", "107.50"]


def test_layers_csv_names_the_layers(manager_client, shop):
    rows = download(manager_client, "layers", MARCH)
    assert rows[0] == ["Layer", "Contacts", "Revenue to date", "Average spend", "Revenue in the period"]
    assert rows[1] == ["Core (核心)", "0", "0.00", "", "0.00"]
    assert rows[-1] == ["Not scored yet", "6", "510.00", "85.00", "430.00"]


def test_communities_csv_has_the_health_of_each_community(manager, manager_client, shop):
    rows = download(manager_client, "communities", MARCH)
    assert rows[0] == [
        "Community",
        "Members",
        "Joins",
        "Leaves",
        "Active (7 days)",
        "Active (30 days)",
        "Activity rate",
        "Buyers",
        "Conversion",
        "Revenue",
    ]
    [health] = metrics.community_health(march(manager))
    assert rows[1] == ["测试群", "1", "1", "0", str(health.active_7d), str(health.active_30d)] + [
        exports.cell(health.activity_rate),
        "1",
        "1.0",
        "300.00",
    ]


def test_koc_csv_ranks_the_members(manager_client, shop):
    today = timezone.localdate()
    params = {"community": shop["community"].pk}
    name = f"koc-{today - dt.timedelta(days=29):%Y-%m-%d}-{today:%Y-%m-%d}.csv"
    rows = download(manager_client, "koc", params, filename=name)
    assert rows == [
        ["Rank", "Contact ID", "Name", "Referrals", "Total spent", "Role"],
        ["1", str(shop["repeat"].pk), "甲复购", "1", "300.00", "Member"],
    ]


def test_trend_csv_has_a_row_per_bucket(manager_client, shop):
    rows = download(manager_client, "trend", {**MARCH, "metric": "revenue", "grain": "week"})
    assert rows == [
        ["Week starting", "Revenue"],
        ["2025-02-24", "80.00"],
        ["2025-03-03", "200.00"],
        ["2025-03-10", "50.00"],
        ["2025-03-17", "100.00"],
        ["2025-03-24", "0.00"],
        ["2025-03-31", "0.00"],
    ]
    monthly = download(manager_client, "trend", {**MARCH, "metric": "buyers", "grain": "month"})
    assert monthly == [["Month", "Buyers"], ["2025-03", "3"]]


def test_drilldown_csv_lists_every_contact_behind_the_number(manager_client, shop):
    rows = download(manager_client, "drilldown", {**MARCH, "metric": "leads", "page_size": "1"})
    assert rows[0] == [
        "Contact ID",
        "Name",
        "Phone",
        "Channel",
        "Owner",
        "Acquired at",
        "Lifecycle stage",
        "First purchase at",
        "Last purchase at",
        "Paid purchases",
        "Total spent",
        "Last interaction at",
        "Referrals",
    ]
    leads = sorted([shop[key] for key in ("repeat", "referred", "theirs", "lead", "no_channel")], key=lambda c: c.pk)
    assert [int(row[0]) for row in rows[1:]] == [c.pk for c in leads]
    by_id = {int(row[0]): row for row in rows[1:]}
    repeat = by_id[shop["repeat"].pk]
    assert (repeat[1], repeat[3], repeat[4], repeat[5], repeat[7], repeat[9], repeat[10], repeat[12]) == (
        "甲复购",
        "抖音",
        "operator",
        "2025-03-03 12:00:00",
        "2025-03-05 12:00:00",
        "2",
        "300.00",
        "1",
    )
    # A name a spreadsheet would run as a formula is written as text.
    assert by_id[shop["lead"].pk][1] == "'=1+2"
    assert by_id[shop["no_channel"].pk][3] == ""


def test_drilldown_csv_reads_the_contacts_in_chunks(manager, shop, django_assert_max_num_queries):
    table = exports.drilldown_table(metrics.drilldown(march(manager), metric="leads"), chunk_size=2)
    with django_assert_max_num_queries(4):  # three chunks of two and the empty one after them
        rows = list(table.rows)
    assert len(rows) == 5


def test_overview_csv_has_the_four_tables_of_the_page(manager_client, shop):
    rows = download(manager_client, "overview", MARCH)
    titles = [rows[0][0]] + [rows[i + 1][0] for i, row in enumerate(rows) if row == []]
    assert titles == ["KPIs", "Funnel", "Channels", "Cohort retention"]
    assert rows[1] == ["Metric", "Value"]


@pytest.mark.parametrize("report", TABLES)
def test_every_csv_is_the_exports_table_of_the_metric_service(manager, manager_client, shop, report):
    """The API's CSV is exactly analytics.exports applied to the metric service's result."""
    filters = march(manager)
    params = dict(MARCH)
    tables = {
        "kpis": lambda: exports.kpis_table(metrics.kpis(filters)),
        "cohorts": lambda: exports.cohorts_table(metrics.cohort_retention(filters)),
        "funnel": lambda: exports.funnel_table(metrics.funnel(filters)),
        "channels": lambda: exports.channels_table(metrics.channel_table(filters)),
        "decomposition": lambda: exports.decomposition_table(
            metrics.sales_decomposition(
                period_a=Filters(date_from=dt.date(2025, 1, 29), date_to=dt.date(2025, 2, 28), user=manager),
                period_b=filters,
            ),
            period_a=(dt.date(2025, 1, 29), dt.date(2025, 2, 28)),
            period_b=(dt.date(2025, 3, 1), dt.date(2025, 3, 31)),
        ),
        "layers": lambda: exports.layers_table(metrics.rfm_layers(filters)),
        "communities": lambda: exports.communities_table(metrics.community_health(filters)),
        "koc": lambda: exports.koc_table(metrics.koc_ranking(user=manager, community_id=shop["community"].pk)),
        "trend": lambda: exports.trend_table(
            metrics.trend(filters, metric="revenue", grain="day"), metric="revenue", grain="day"
        ),
        "drilldown": lambda: exports.drilldown_table(metrics.drilldown(filters, metric="buyers")),
    }
    extra = {"koc": {"community": shop["community"].pk}, "drilldown": {"metric": "buyers"}}.get(report, {})
    rows = download(manager_client, report, {**params, **extra})
    assert rows == as_cells(tables[report]())
    assert len(rows) > 1


# --- session authentication, errors, permissions --------------------------------------------------------


def test_every_export_link_of_the_dashboard_downloads_its_csv(manager_client, shop):
    pages = ["overview", "funnel", "cohorts", "channels", "trend", "decomposition", "layers", "communities", "koc"]
    seen = set()
    for page in pages:
        content = manager_client.get(reverse(f"analytics:{page}"), MARCH).content.decode()
        for href in re.findall(r'href="(/api/v1/analytics/[a-z]+/\?[^"]*format=csv[^"]*)"', content):
            url = html.unescape(href)
            response = manager_client.get(url)
            assert response.status_code == 200, (url, response.content)
            assert response["Content-Type"] == "text/csv; charset=utf-8", url
            assert response["Content-Disposition"].startswith("attachment; filename="), url
            seen.add(url.split("/")[4])
    assert seen == set(TABLES) - {"drilldown"} | {"overview"}


def test_a_bad_parameter_in_a_csv_request_is_a_json_400_naming_the_field(manager_client, shop):
    response = manager_client.get(f"{API}funnel/", {**MARCH, "date_to": "2025-02-01", "format": "csv"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "Content-Disposition" not in response
    assert [error["field"] for error in response.json()["errors"]] == ["date_to"]


def test_operators_cannot_download_the_csv(operator):
    client = Client()
    assert client.login(username=operator.username, password=PASSWORD)
    response = client.get(f"{API}kpis/", {**MARCH, "format": "csv"})
    assert response.status_code == 403
    assert response.json()["type"] == "permission_denied"


def test_the_drilldown_csv_also_needs_the_contact_export_permission(shop):
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    reader = UserFactory(username="report-reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_reports", content_type__app_label="analytics"))
    client = Client()
    assert client.login(username="report-reader", password=PASSWORD)
    params = {**MARCH, "metric": "leads"}
    assert client.get(f"{API}drilldown/", params).status_code == 200
    response = client.get(f"{API}drilldown/", {**params, "format": "csv"})
    assert response.status_code == 403
    assert response.json()["type"] == "permission_denied"


def test_anonymous_csv_requests_are_refused(db):
    response = Client().get(f"{API}kpis/", {**MARCH, "format": "csv"})
    assert response.status_code == 401
    assert response.json()["type"] == "not_authenticated"


def test_an_unknown_format_is_a_404(manager_client):
    assert manager_client.get(f"{API}kpis/", {"format": "xlsx"}).status_code == 404


def test_accept_text_csv_also_gives_the_csv(manager_client, shop):
    response = manager_client.get(f"{API}kpis/", MARCH, headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="kpis-2025-03-01-2025-03-31.csv"'


def test_the_csv_follows_the_language_of_the_request(manager, shop):
    client = Client(headers={"Accept-Language": "zh-hans"})
    assert client.login(username=manager.username, password=PASSWORD)
    with translation.override("zh-hans"):
        expected = [[exports.cell(v) for v in exports.kpis_table(metrics.kpis(march(manager))).header]]
    rows = download(client, "kpis", MARCH)
    assert rows[:1] == expected
    assert "甲复购" in download(client, "koc", {**MARCH, "community": shop["community"].pk})[1]
