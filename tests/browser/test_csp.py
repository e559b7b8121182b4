"""The Content-Security-Policy in a real browser: the main pages (charts, htmx, Swagger UI) load and work
with no CSP violation. Chromium reports a violation both as a console error ("Refused to ... because it
violates the following Content Security Policy directive") and as a ``securitypolicyviolation`` event;
both are collected."""

from __future__ import annotations

import pytest

from contacts.models import Contact
from demo.seed import demo_data_seed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEMO_PASSWORD = "demo-manager"
COLLECT_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
});
"""


@pytest.fixture
def demo(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    demo_data_seed(contacts=200, seed=7, log=lambda line: None)
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="manager")


@pytest.fixture
def violations(page):
    console: list[str] = []
    page.on(
        "console",
        lambda message: console.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.add_init_script(COLLECT_VIOLATIONS)

    def collected() -> list[str]:
        return console + page.evaluate("window.__cspViolations || []")

    return collected


def test_the_main_pages_load_without_csp_violations(login, demo, violations):
    page = login(demo, DEMO_PASSWORD)
    found: dict[str, list[str]] = {}
    contact = Contact.objects.live().order_by("pk").first()
    checks = {
        "/contacts/": "table",
        f"/contacts/{contact.pk}/": "main",
        "/reports/": 'canvas[data-chart="chart-funnel"]',
        "/campaigns/": "main",
        "/wecom/": "main",
        "/wecom/connection/": '[data-testid="callback-url-value"]',
        "/api/docs/": ".swagger-ui .info",
    }
    for url, selector in checks.items():
        response = page.goto(url)
        assert response.status == 200, url
        assert "Content-Security-Policy" in {name.title() for name in response.headers}, url
        page.wait_for_selector(selector)
        page.wait_for_load_state("networkidle")
        if url == "/reports/":
            # Chart.js has drawn: it is a static file, allowed by script-src 'self'.
            page.wait_for_function("() => window.Chart && Chart.getChart(document.querySelector('canvas'))")
        if found_here := violations():
            found[url] = found_here
    assert not found, f"CSP violations: {found}"


def test_swagger_ui_renders_the_operations_under_the_policy(login, demo, violations):
    page = login(demo, DEMO_PASSWORD)
    page.goto("/api/docs/")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() > 10
    assert not violations()


def test_the_callback_url_is_selected_on_click_without_an_inline_handler(login, demo, violations):
    page = login(demo, DEMO_PASSWORD)
    page.goto("/wecom/connection/")
    field = page.get_by_test_id("callback-url-value")
    field.click()
    assert page.evaluate("() => document.activeElement.selectionEnd - document.activeElement.selectionStart") > 0
    assert not violations()


def test_an_injected_inline_script_is_blocked_and_reported(login, demo, violations):
    # The detector used above works: an inline script without the nonce does not run, and is reported.
    page = login(demo, DEMO_PASSWORD)
    page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.__ran = true";
                   document.body.append(s); }"""
    )
    page.wait_for_function("() => window.__cspViolations.length > 0")
    assert page.evaluate("() => window.__ran") is None
    assert any("script-src" in violation for violation in violations())
