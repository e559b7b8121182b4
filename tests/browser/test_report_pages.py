"""The report pages in a real browser, on demo data: the charts are drawn (Chart.js served as a static
file), the cohort heatmap is there, and a count leads to the contacts behind it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from demo.seed import demo_data_seed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT_DIR = "/tmp"
DEMO_PASSWORD = "demo-manager"

# True once the chart on the canvas exists and has painted its data: pixels in colour (the axes, grid
# lines and labels are grey), not just a blank or an empty frame.
CHART_DRAWN = """(id) => {
  const canvas = document.querySelector(`canvas[data-chart="${id}"]`);
  if (!canvas || !window.Chart || !window.Chart.getChart(canvas)) return false;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let coloured = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const [r, g, b, a] = [pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3]];
    if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 40) coloured++;
  }
  return coloured > 200;
}"""


@pytest.fixture
def demo(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    result = demo_data_seed(contacts=400, seed=5, log=lambda line: None)
    from django.contrib.auth import get_user_model

    return {"manager": get_user_model().objects.get(username="manager"), "result": result}


def expect_chart(page, chart_id: str) -> None:
    page.wait_for_function(CHART_DRAWN, arg=chart_id, timeout=10_000)


def test_overview_trend_and_cohorts_draw_their_charts_and_a_count_leads_to_its_contacts(login, demo):
    page = login(demo["manager"], DEMO_PASSWORD)
    page.click('.mainnav a[href="/reports/"]')
    page.wait_for_url("**/reports/")

    expect_chart(page, "chart-funnel")
    heatmap = page.get_by_test_id("cohort-heatmap")
    expect(heatmap).to_be_visible()
    expect(heatmap.locator('[data-testid="cohort-row"]')).to_have_count(12)
    expect(page.get_by_test_id("kpis")).to_be_visible()
    expect(page.locator('[data-testid="channel-row"]').first).to_be_visible()
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-report-overview.png", full_page=True)

    page.get_by_test_id("report-tabs").locator('a[href^="/reports/trend/"]').click()
    page.wait_for_url("**/reports/trend/**")
    expect_chart(page, "chart-trend")
    page.select_option('select[name="metric"]', "orders")
    page.select_option('select[name="grain"]', "week")
    page.click('[data-testid="report-filters"] button[type="submit"]')
    page.wait_for_url(re.compile(r".*metric=orders.*"))
    expect_chart(page, "chart-trend")
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-report-trend.png", full_page=True)

    page.get_by_test_id("report-tabs").locator('a[href^="/reports/cohorts/"]').click()
    page.wait_for_url("**/reports/cohorts/**")
    expect(page.get_by_test_id("cohort-heatmap")).to_be_visible()
    expect_chart(page, "chart-retention")
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-report-cohorts.png", full_page=True)

    page.get_by_test_id("report-tabs").locator('a[href^="/reports/"]').first.click()
    step = page.locator('[data-testid="funnel-step"][data-step="engaged"] [data-testid="funnel-count"]')
    count = int(step.inner_text())
    assert count > 0
    step.click()
    page.wait_for_url(re.compile(r".*/contacts/\?.*drill-metric=funnel.*"))
    banner = page.get_by_test_id("drill-banner")
    expect(banner).to_contain_text(str(count))
    expect(page.locator('[data-testid="contact-row"]')).to_have_count(min(count, 50))
    expect(page.get_by_test_id("result-count")).to_contain_text(str(count))
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-report-drilldown.png", full_page=True)

    page.get_by_test_id("drill-clear").click()
    expect(page.get_by_test_id("drill-banner")).to_have_count(0)


def test_community_health_loads_a_koc_ranking_in_place(login, demo):
    from django.db.models import Count, Q

    from communities.models import Community

    biggest = (
        Community.objects.annotate(n=Count("memberships", filter=Q(memberships__left_at__isnull=True)))
        .order_by("-n")
        .first()
    )
    page = login(demo["manager"], DEMO_PASSWORD)
    page.goto("/reports/communities/")
    expect(page.locator('[data-testid="community-row"]').first).to_be_visible()
    page.evaluate("window.__same_page = true")
    page.locator(f'[data-testid="koc-toggle"][href$="community={biggest.pk}"]').click()
    expect(page.locator('[data-testid="koc-table"]')).to_have_count(1)
    expect(page.locator('[data-testid="koc-row"]').first).to_be_visible()
    assert page.evaluate("window.__same_page === true"), "htmx should have loaded the ranking in place"
    assert page.url.endswith("/reports/communities/")


def test_layers_and_decomposition_draw_their_charts(login, demo):
    from analytics.scores import scores_refresh

    scores_refresh()
    page = login(demo["manager"], DEMO_PASSWORD)
    page.goto("/reports/layers/")
    expect_chart(page, "chart-layer-contacts")
    expect_chart(page, "chart-layer-revenue")
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-report-layers.png", full_page=True)
    page.goto("/reports/decomposition/")
    expect(page.locator('[data-testid="factor-row"]')).to_have_count(5)
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-report-decomposition.png", full_page=True)
