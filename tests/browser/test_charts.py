"""The report charts in a real browser, on demo data, in Chinese and in English: the sales waterfall with
its sentence, the trend and the cohorts with the month to date marked, numbers with thousands separators,
the favicon and the API docs link. Screenshots go to /tmp/charts-*.png."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from demo.seed import demo_data_seed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEMO_PASSWORD = "demo-manager"
LANGUAGES = {"zh-hans": "zh", "en": "en"}

# True once the chart on the canvas exists and has painted its data in colour (axes and labels are grey).
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

# The floating bars of the waterfall: each step starts where the previous one ended, and the colours tell
# rises from falls.
WATERFALL_BARS = """() => {
  const chart = window.Chart.getChart(document.querySelector('canvas[data-chart="chart-waterfall"]'));
  const dataset = chart.data.datasets[0];
  return dataset.data.map((range, i) => ({range, colour: dataset.backgroundColor[i]}));
}"""


@pytest.fixture
def demo(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    demo_data_seed(contacts=400, seed=5, log=lambda line: None)
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="manager")


def sign_in(page, user, password: str):
    """Through the login form; wherever the dashboard lands afterwards."""
    page.goto("/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", password)
    page.click("form button[type=submit].btn-primary")
    page.wait_for_url(lambda url: "/login/" not in url)
    return page


def in_language(page, language: str) -> None:
    page.context.add_cookies([{"name": "django_language", "value": language, "url": page.url}])


def expect_chart(page, chart_id: str) -> None:
    page.wait_for_function(CHART_DRAWN, arg=chart_id, timeout=10_000)
    page.wait_for_timeout(500)  # the bars finish growing before a screenshot


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_report_charts_read_right_in_both_languages(page, demo, language):
    sign_in(page, demo, DEMO_PASSWORD)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    in_language(page, language)
    suffix = LANGUAGES[language]

    page.goto("/reports/decomposition/")
    expect_chart(page, "chart-waterfall")
    sentence = page.get_by_test_id("decomposition-sentence")
    expect(sentence).to_be_visible()
    if language == "en":
        expect(sentence).to_have_text(re.compile(r"^Sales (rose|fell|did not change)"))
    bars = page.evaluate(WATERFALL_BARS)
    assert len(bars) == 7
    for previous, step in zip(bars[:-2], bars[1:-1], strict=True):
        assert step["range"][0] == pytest.approx(previous["range"][1])
        rose = step["range"][1] > step["range"][0]
        fell = step["range"][1] < step["range"][0]
        assert step["colour"] == ("#067647" if rose else "#b42318" if fell else "#98a2b3")
    assert bars[-1]["range"][1] == pytest.approx(bars[-2]["range"][1])
    page.screenshot(path=f"/tmp/charts-decomposition-{suffix}.png", full_page=True)

    page.goto("/reports/trend/")
    expect_chart(page, "chart-trend")
    expect(page.get_by_test_id("partial-note")).to_be_visible()
    page.screenshot(path=f"/tmp/charts-trend-{suffix}.png", full_page=True)

    page.goto("/reports/cohorts/")
    expect_chart(page, "chart-retention")
    expect(page.get_by_test_id("cohort-partial-month")).to_be_visible()
    expect(page.locator('[data-testid="partial-note"]').first).to_be_visible()
    page.screenshot(path=f"/tmp/charts-cohorts-{suffix}.png", full_page=True)

    page.goto("/reports/")
    revenue = page.get_by_test_id("kpi-revenue").inner_text()
    assert re.fullmatch(r"¥\d{1,3}(,\d{3})*\.\d{2}", revenue), revenue
    assert "," in revenue, "the demo's revenue of 30 days is in the thousands"
    expect(page.get_by_test_id("api-docs-link")).to_have_attribute("href", "/api/docs/")
    favicon = page.evaluate("document.querySelector('link[rel=icon]').href")
    assert page.request.get(favicon).status == 200
    assert not errors, errors
