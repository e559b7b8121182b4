"""API tokens (scrm.ApiToken): hashed keys, expiry, revocation, scopes, last use, the command and admin."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from scrm.authentication import api_token_create, api_token_revoke, api_token_rotate
from scrm.models import ApiToken
from tests.factories import ChannelFactory, UserFactory

pytestmark = pytest.mark.django_db

ALL_SCOPES = ["analytics", "read", "write"]


def _client(key: str, keyword: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {key}")
    return client


def _error(response) -> str:
    return response.json()["detail"]


def test_a_token_authenticates_with_token_and_bearer(integrator):
    _, key = api_token_create(user=integrator, name="crm", scopes=ALL_SCOPES)
    assert _client(key).get("/api/v1/contacts/").status_code == 200
    assert _client(key, "Bearer").get("/api/v1/contacts/").status_code == 200


def test_only_the_sha256_of_the_key_is_stored(integrator):
    token, key = api_token_create(user=integrator, name="crm")
    token.refresh_from_db()
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    stored = [str(value) for value in ApiToken.objects.values_list(*[f.attname for f in ApiToken._meta.fields]).get()]
    assert not any(key in value for value in stored)
    assert key.startswith(token.key_prefix) and len(token.key_prefix) == 8


def test_an_unknown_key_is_refused_with_401():
    response = _client("not-a-key").get("/api/v1/contacts/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 401 and _error(response) == "Invalid token."


def test_an_expired_token_is_refused_with_a_clear_401(integrator):
    _, key = api_token_create(user=integrator, name="old", expires_at=timezone.now() - timedelta(minutes=1))
    response = _client(key).get("/api/v1/contacts/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 401
    assert "expired" in _error(response)
    assert response["WWW-Authenticate"] == "Token"


def test_a_revoked_token_is_refused_with_a_clear_401(integrator):
    token, key = api_token_create(user=integrator, name="gone")
    api_token_revoke(token=token)
    response = _client(key).get("/api/v1/contacts/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 401 and "revoked" in _error(response)


def test_a_token_of_an_inactive_user_is_refused(integrator):
    _, key = api_token_create(user=integrator, name="crm")
    integrator.is_active = False
    integrator.save()
    assert _client(key).get("/api/v1/contacts/").status_code == 401


def test_new_tokens_expire_after_the_configured_days(integrator, settings):
    settings.SCRM_API_TOKEN_DAYS = 30
    token, _ = api_token_create(user=integrator, name="crm")
    assert abs(token.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)


def test_a_read_token_cannot_write(integrator):
    _, key = api_token_create(user=integrator, name="reader", scopes=["read"])
    client = _client(key)
    assert client.get("/api/v1/contacts/").status_code == 200
    response = client.post("/api/v1/contacts/", {"name": "张三"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 403
    assert "“write”" in _error(response)


def test_a_write_token_can_write_but_not_read(integrator):
    _, key = api_token_create(user=integrator, name="writer", scopes=["write"])
    client = _client(key)
    assert client.post("/api/v1/contacts/", {"name": "张三", "phone": "13800138000"}).status_code == 201
    assert client.get("/api/v1/contacts/").status_code == 403


def test_a_token_without_the_analytics_scope_cannot_read_the_reports(integrator):
    _, key = api_token_create(user=integrator, name="crm", scopes=["read", "write"])
    response = _client(key).get("/api/v1/analytics/kpis/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 403 and "“analytics”" in _error(response)


def test_an_analytics_token_reads_the_reports_and_nothing_else(integrator):
    _, key = api_token_create(user=integrator, name="bi", scopes=["analytics"])
    assert _client(key).get("/api/v1/analytics/kpis/").status_code == 200
    assert _client(key).get("/api/v1/contacts/").status_code == 403


def test_scopes_never_widen_the_owners_permissions(operator):
    _, key = api_token_create(user=operator, name="op", scopes=ALL_SCOPES)
    assert _client(key).get("/api/v1/analytics/kpis/").status_code == 403


def test_session_requests_have_no_scopes_to_check(manager):
    client = Client()
    client.force_login(manager)
    assert client.get("/api/v1/analytics/kpis/").status_code == 200
    assert client.get("/api/v1/contacts/").status_code == 200


def test_last_used_at_is_recorded_at_most_once_a_minute(integrator, django_assert_num_queries):
    token, key = api_token_create(user=integrator, name="crm", scopes=["read"])
    assert token.last_used_at is None
    ChannelFactory()
    _client(key).get("/api/v1/channels/")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    _client(key).get("/api/v1/channels/")
    token.refresh_from_db()
    assert token.last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    _client(key).get("/api/v1/channels/")
    token.refresh_from_db()
    assert token.last_used_at > first - timedelta(minutes=2)


def test_rotation_revokes_the_old_key_and_keeps_name_and_scopes(integrator):
    token, old_key = api_token_create(user=integrator, name="crm", scopes=["read"])
    new, new_key = api_token_rotate(token=token)
    assert (new.name, new.scopes, new.user) == ("crm", ["read"], integrator) and new_key != old_key
    assert _client(old_key).get("/api/v1/channels/").status_code == 401
    assert _client(new_key).get("/api/v1/channels/").status_code == 200


def test_unknown_scopes_are_refused(integrator):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        api_token_create(user=integrator, name="x", scopes=["admin"])


# --- manage.py api_token ----------------------------------------------------------------------


def _command(*args) -> str:
    out = StringIO()
    call_command("api_token", *args, stdout=out)
    return out.getvalue()


def test_the_command_creates_lists_rotates_and_revokes(integrator):
    output = _command("create", "integrator", "--name", "erp", "--scope", "read", "--scope", "analytics", "--days", "7")
    key = output.strip().splitlines()[-1]
    token = ApiToken.objects.get()
    assert token.scopes == ["analytics", "read"] and token.name == "erp"
    assert token.expires_at.date() == (timezone.now() + timedelta(days=7)).date()
    assert _client(key).get("/api/v1/channels/").status_code == 200

    listing = _command("list")
    assert token.key_prefix in listing and "erp" in listing and key not in listing

    new_key = _command("rotate", str(token.pk)).strip().splitlines()[-1]
    assert _client(key).get("/api/v1/channels/").status_code == 401
    assert _client(new_key).get("/api/v1/channels/").status_code == 200

    _command("revoke", str(ApiToken.objects.active().get().pk))
    assert _client(new_key).get("/api/v1/channels/").status_code == 401
    assert "erp" not in _command("list") and "revoked" in _command("list", "--all")


# --- Django admin -----------------------------------------------------------------------------


def test_the_admin_issues_a_token_and_shows_its_key_once(integrator):
    boss = UserFactory(username="boss", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(boss)
    expires = (timezone.localtime() + timedelta(days=10)).replace(microsecond=0)
    response = client.post(
        "/admin/scrm/apitoken/add/",
        {
            "name": "from the admin",
            "user": integrator.pk,
            "scopes": ["read", "write"],
            "expires_at_0": expires.strftime("%Y-%m-%d"),
            "expires_at_1": expires.strftime("%H:%M:%S"),
            "revoked_at_0": "",
            "revoked_at_1": "",
        },
        follow=True,
    )
    assert response.status_code == 200
    token = ApiToken.objects.get()
    shown = " ".join(str(m) for m in response.context["messages"])
    keys = [
        k for k in re.findall(r"[A-Za-z0-9_-]{43}", shown) if hashlib.sha256(k.encode()).hexdigest() == token.key_hash
    ]
    assert len(keys) == 1
    key = keys[0]
    assert token.scopes == ["read", "write"]
    assert _client(key).get("/api/v1/channels/").status_code == 200


def test_the_admin_revokes_tokens(integrator):
    boss = UserFactory(username="boss", is_staff=True, is_superuser=True)
    token, key = api_token_create(user=integrator, name="crm")
    client = Client()
    client.force_login(boss)
    client.post("/admin/scrm/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None


# --- The carry-over of DRF's tokens -----------------------------------------------------------


def test_the_migration_carries_drf_tokens_over_hashed(integrator):
    from importlib import import_module

    from django.apps import apps as global_apps
    from rest_framework.authtoken.models import Token

    migration = import_module("scrm.migrations.0002_carry_over_drf_tokens")
    old = Token.objects.create(user=integrator)
    migration.carry_over(global_apps, None)
    assert not Token.objects.exists()
    token = ApiToken.objects.get()
    assert token.key_hash == hashlib.sha256(old.key.encode()).hexdigest() and token.scopes == ALL_SCOPES
    assert _client(old.key).get("/api/v1/channels/").status_code == 200
