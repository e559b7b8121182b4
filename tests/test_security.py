"""Login lockout (django-axes), API throttling, the Content-Security-Policy and no-store headers."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from scrm.authentication import api_token_create
from scrm.models import ApiToken
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"


@pytest.fixture
def lockout(settings):
    settings.AXES_FAILURE_LIMIT = 3


def _sign_in(client: Client, username: str, password: str, url: str = "/login/"):
    return client.post(url, {"username": username, "password": password})


def _fail(client: Client, username: str, times: int, url: str = "/login/") -> list[int]:
    return [_sign_in(client, username, "wrong-password", url).status_code for _ in range(times)]


# --- Lockout ----------------------------------------------------------------------------------


def test_the_right_password_is_refused_after_too_many_failures(lockout, operator):
    client = Client()
    # The failure that reaches the limit is already answered with the lockout page.
    assert _fail(client, operator.username, 3) == [200, 200, 429]
    response = _sign_in(client, operator.username, PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert response["Retry-After"] == str(15 * 60)


def test_fewer_failures_than_the_limit_do_not_lock(lockout, operator):
    client = Client()
    _fail(client, operator.username, 2)
    response = _sign_in(client, operator.username, PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("home")


def test_the_lockout_page_is_translated(lockout, operator):
    _fail(Client(), operator.username, 3)
    english = _sign_in(Client(HTTP_ACCEPT_LANGUAGE="en"), operator.username, PASSWORD)
    chinese = _sign_in(Client(HTTP_ACCEPT_LANGUAGE="zh-CN"), operator.username, PASSWORD)
    assert english.status_code == chinese.status_code == 429
    assert "Too many failed sign-ins" in english.content.decode()
    assert "3 failed sign-ins" in english.content.decode() and "15 minutes" in english.content.decode()
    assert "登录失败次数过多" in chinese.content.decode()


def test_the_lock_is_per_username_and_ip_address(lockout, operator, other_operator):
    _fail(Client(REMOTE_ADDR="10.0.0.1"), operator.username, 3)
    assert _sign_in(Client(REMOTE_ADDR="10.0.0.2"), operator.username, PASSWORD).status_code == 302
    assert _sign_in(Client(REMOTE_ADDR="10.0.0.1"), other_operator.username, PASSWORD).status_code == 302
    assert _sign_in(Client(REMOTE_ADDR="10.0.0.1"), operator.username, PASSWORD).status_code == 429


def test_the_lock_ends_after_the_cool_off(lockout, operator):
    from datetime import timedelta

    _fail(Client(), operator.username, 3)
    assert _sign_in(Client(), operator.username, PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert _sign_in(Client(), operator.username, PASSWORD).status_code == 302


def test_an_administrator_unlocks_a_username(lockout, operator):
    _fail(Client(), operator.username, 3)
    assert _sign_in(Client(), operator.username, PASSWORD).status_code == 429
    call_command("axes_reset_username", operator.username)
    assert _sign_in(Client(), operator.username, PASSWORD).status_code == 302


def test_the_admin_login_is_locked_too(lockout):
    boss = UserFactory(username="boss", is_staff=True, is_superuser=True)
    assert _fail(Client(), boss.username, 3, url="/admin/login/") == [200, 200, 429]
    response = _sign_in(Client(), boss.username, PASSWORD, url="/admin/login/")
    assert response.status_code == 429
    assert 'href="/admin/login/"' in response.content.decode()


def test_failures_lock_across_the_dashboard_and_the_admin_login(lockout, operator):
    _fail(Client(), operator.username, 2)
    _fail(Client(), operator.username, 1, url="/admin/login/")
    assert _sign_in(Client(), operator.username, PASSWORD).status_code == 429


def test_every_sign_in_and_failure_is_recorded(operator):
    client = Client()
    _fail(client, operator.username, 1)
    _sign_in(client, operator.username, PASSWORD)
    assert AccessFailureLog.objects.filter(username=operator.username).count() == 1
    assert AccessLog.objects.filter(username=operator.username).count() == 1


def test_a_successful_sign_in_resets_the_failure_count(lockout, operator):
    _fail(Client(), operator.username, 2)
    assert _sign_in(Client(), operator.username, PASSWORD).status_code == 302
    _fail(Client(), operator.username, 2)
    assert _sign_in(Client(), operator.username, PASSWORD).status_code == 302


def test_the_test_clients_login_still_works(operator):
    # client.login() authenticates without a request, which the lockout backend lets through.
    assert Client().login(username=operator.username, password=PASSWORD)


# --- Throttling -------------------------------------------------------------------------------


@pytest.fixture
def low_rates(settings):
    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "3/min", "anon": "2/min"}}
    yield
    cache.clear()


def test_anonymous_api_requests_are_throttled(low_rates):
    # The schema is the one API view open to anonymous callers (elsewhere they are refused before the
    # throttles are consulted: DRF checks permissions first).
    client = APIClient()
    statuses = [client.get("/api/schema/").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_a_token_is_throttled_on_its_own_budget(low_rates, integrator):
    _, first = api_token_create(user=integrator, name="one", scopes=["read"])
    _, second = api_token_create(user=integrator, name="two", scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert [client.get("/api/v1/contacts/").status_code for _ in range(4)] == [200, 200, 200, 429]
    client.credentials(HTTP_AUTHORIZATION=f"Token {second}")
    assert client.get("/api/v1/contacts/").status_code == 200


def test_a_signed_in_user_is_throttled(low_rates, manager_api):
    statuses = [manager_api.get("/api/v1/channels/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert manager_api.get("/api/v1/channels/").json()["type"] == "throttled"


# --- Headers ----------------------------------------------------------------------------------


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_pages_carry_a_content_security_policy_without_unsafe_inline_scripts(operator):
    policy = _signed_in(operator).get(reverse("contacts:list"))["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in directives["script-src"]
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "Content-Security-Policy" in Client().get("/login/")


def test_api_docs_start_up_script_carries_the_nonce(operator):
    response = _signed_in(operator).get("/api/docs/")
    nonce = response["Content-Security-Policy"].split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<script nonce="{nonce}">' in response.content.decode()


def test_signed_in_pages_and_api_responses_are_not_stored(operator, integrator):
    assert "no-store" in _signed_in(operator).get(reverse("contacts:list"))["Cache-Control"]
    _, key = api_token_create(user=integrator, name="t", scopes=["read"])
    assert "no-store" in Client().get("/api/v1/channels/", HTTP_AUTHORIZATION=f"Token {key}")["Cache-Control"]


def test_anonymous_pages_and_static_files_are_not_marked_no_store(operator, settings):
    # (The login page itself is never cached: Django's LoginView says so.)
    assert "no-store" not in Client().get(reverse("contacts:list")).get("Cache-Control", "")
    response = _signed_in(operator).get(f"/{settings.STATIC_URL.strip('/')}/css/app.css")
    assert "no-store" not in response.get("Cache-Control", "")


def test_no_page_template_has_inline_scripts_or_event_handlers(settings):
    import re

    offenders = []
    for path in (settings.BASE_DIR / "templates").rglob("*.html"):
        text = path.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)(?![^>]*\bnonce=)[^>]*>", text) or re.search(
            r"\son[a-z]+\s*=\s*[\"']", text
        ):
            offenders.append(str(path.relative_to(settings.BASE_DIR)))
    assert not offenders, f"inline scripts are blocked by the CSP: {offenders}"


def test_apitoken_is_not_a_visibility_leak(integrator, operator):
    api_token_create(user=integrator, name="theirs")
    assert not ApiToken.objects.visible_to(operator).exists()
