"""Real-browser fixtures: Debian's Chromium driven by Playwright's sync API against pytest-django's
``live_server``. A browser download (``playwright install``) is not needed: the system Chromium is used."""

from __future__ import annotations

import os
import re
import shutil

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PASSWORD = "pass-word-123"


def pytest_collection_modifyitems(config, items):
    if shutil.which(CHROMIUM) or os.path.exists(CHROMIUM):
        return
    skip = pytest.mark.skip(reason=f"needs Chromium at {CHROMIUM}: apt-get install chromium (or `make browser`)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module.

    Playwright's sync API keeps an event loop running in the test thread while it is started; Django then
    refuses ORM calls made by the test itself (factories, assertions) with SynchronousOnlyOperation. They
    are synchronous and safe here, so DJANGO_ALLOW_ASYNC_UNSAFE is set, but only for as long as the
    browser lives: left set, it would leak into other tests (``check --deploy`` rightly fails with it).
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                headless=True,
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server):
    # A Chinese-speaking operator's browser: the dashboard's default language comes from Accept-Language.
    context = browser.new_context(locale="zh-CN", viewport={"width": 1440, "height": 900}, base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    # Nothing may be fetched from the internet (no CDN, no web fonts): block and remember any such request.
    external: list[str] = []

    def block(route):
        external.append(route.request.url)
        route.abort()

    page.route(lambda url: not url.startswith(live_server.url), block)
    yield page
    context.close()
    assert not external, f"the pages requested external URLs: {external}"


@pytest.fixture
def login(page):
    """Log a user in through the login form (which lands on the workbench); returns the page, opened on the
    contact list where most tests start."""

    def _login(user, password: str = PASSWORD):
        page.goto("/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", password)
        page.click("form button[type=submit].btn-primary")
        page.wait_for_url(re.compile(r"^https?://[^/]+/$"))  # the workbench
        page.goto("/contacts/")
        return page

    return _login
