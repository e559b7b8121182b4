"""Who is calling: the API tokens (keys, services, the DRF authentication class) and the login lockout
backend.

An API key is sent as ``Authorization: Token <key>`` or ``Authorization: Bearer <key>``. The database
holds only its SHA-256 (``ApiToken.key_hash``); the key is returned once, by ``api_token_create`` and
``api_token_rotate`` (``manage.py api_token``, the Django admin).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from scrm.audit import Action, audit, audit_context_actor
from scrm.models import KEY_PREFIX_LENGTH, ApiToken, api_token_generate_key, api_token_hash
from scrm.permissions import token_scope_check

KEYWORDS = (b"token", b"bearer")
#: ``last_used_at`` is written at most this often per token, so a busy integration does not write a row
#: on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


# --- Services -------------------------------------------------------------------------------


def api_token_create(
    *,
    user: Any,
    name: str,
    scopes: Iterable[str] = (ApiToken.Scope.READ,),
    expires_at: datetime | None = None,
    key: str | None = None,
    rotated: bool = False,
) -> tuple[ApiToken, str]:
    """Issue a token; returns it with its key, which is not stored and cannot be shown again.
    ``key`` is only for carrying over an existing key (the migration of DRF's tokens)."""
    key = key or api_token_generate_key()
    token = ApiToken(
        user=user,
        name=name,
        scopes=sorted(set(scopes)),
        key_prefix=key[:KEY_PREFIX_LENGTH],
        key_hash=api_token_hash(key),
    )
    if expires_at is not None:
        token.expires_at = expires_at
    token.full_clean()
    token.save()
    if not rotated:
        audit(Action.TOKEN_ISSUED, target=token, detail={"owner": user.pk, "scopes": token.scopes})
    return token, key


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke a token now (idempotent: a revoked token keeps its first revocation time)."""
    if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
        audit(Action.TOKEN_REVOKED, target=token, detail={"owner": token.user_id})
    token.refresh_from_db(fields=["revoked_at"])
    return token


@transaction.atomic
def api_token_rotate(*, token: ApiToken, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Replace a token by a new one with the same owner, name and scopes (and a fresh expiry); the old one
    is revoked. Returns the new token and its key."""
    api_token_revoke(token=token)
    new, key = api_token_create(
        user=token.user, name=token.name, scopes=token.scopes, expires_at=expires_at, rotated=True
    )
    audit(Action.TOKEN_ROTATED, target=new, detail={"owner": token.user_id, "replaces": token.pk})
    return new, key


def api_token_touch(*, token: ApiToken) -> None:
    """Record a use, at most once a minute per token (a conditional update: concurrent requests write once)."""
    now = timezone.now()
    if token.last_used_at and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    token.last_used_at = now


# --- DRF authentication -----------------------------------------------------------------------


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Token <key>`` or ``Bearer <key>``; refuses unknown, expired and revoked keys with
    401 and a message saying which. ``request.auth`` is the ``ApiToken`` (the scope permission reads it)."""

    keyword = "Token"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                _("Invalid token header: send “Token <key>” with no spaces in the key.")
            )
        try:
            key = parts[1].decode()
        except UnicodeError as error:
            raise exceptions.AuthenticationFailed(_("Invalid token header: the key has invalid characters.")) from error
        token = ApiToken.objects.select_related("user").filter(key_hash=api_token_hash(key)).first()
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if token.is_revoked:
            raise exceptions.AuthenticationFailed(_("This token was revoked. Ask an administrator for a new one."))
        if token.is_expired:
            raise exceptions.AuthenticationFailed(
                _("This token expired on %(date)s. Ask an administrator to rotate it.")
                % {"date": timezone.localtime(token.expires_at).strftime("%Y-%m-%d %H:%M")}
            )
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("The owner of this token is inactive."))
        api_token_touch(token=token)
        audit_context_actor(token.user)
        # The scope check also runs here, not only in the TokenScopes permission: a view that sets its own
        # permission_classes (the analytics reports) must not skip it.
        token_scope_check(request, token)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


# --- Login lockout ---------------------------------------------------------------------------


class LoginLockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout check, for every sign-in made over HTTP (the dashboard and the admin login
    forms pass the request). A call without a request (``manage.py`` commands, the shell, the test client's
    ``login()``) has no IP address to lock and is not an attack surface, so it is let through to the next
    backend instead of failing with AxesBackendRequestParameterRequired."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_response(request, original_response=None, credentials=None):
    """What a locked-out sign-in gets (``AXES_LOCKOUT_CALLABLE``): a translated page, status 429 (Too Many
    Requests: the attempt may succeed after the cool-off, unlike a 403)."""
    cooloff_minutes = max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))
    context = {
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cooloff_minutes": cooloff_minutes,
        "login_url": "/admin/login/" if request.path.startswith("/admin/") else "/login/",
    }
    response = render(request, "registration/locked_out.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
    response["Retry-After"] = str(cooloff_minutes * 60)
    return response


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the API schema (Swagger UI's "Authorize") describes the token header."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` or `Bearer <key>`; keys are issued with `manage.py api_token create` "
            "or the admin, and carry scopes (read, write, analytics) and an expiry.",
        }
