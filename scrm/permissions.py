"""API permissions: Django model permissions for every verb, reads included; the scopes of API tokens;
the rate limits.

Object-level scoping (an operator sees only their own contacts) is done by the querysets from the
selectors, so a guessed id is simply not found (404) rather than forbidden.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import exceptions, throttling
from rest_framework.permissions import SAFE_METHODS, BasePermission, DjangoModelPermissions
from rest_framework.settings import api_settings


class ModelPermissions(DjangoModelPermissions):
    """Like DRF's, but reading needs the ``view`` permission, and an action may name the permissions it
    needs in the view's ``action_permissions`` mapping (action name → permission codenames)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        required = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if required is not None:
            return request.user.has_perms(required)
        return super().has_permission(request, view)


# --- API token scopes -------------------------------------------------------------------------

ANALYTICS_PATH = "/api/v1/analytics/"
# POSTs that change no data (they start a read in the background): a read-scoped token may make them.
READ_ONLY_POSTS = frozenset({"/api/v1/contacts/export/"})


def token_scope_required(request) -> str:
    """The scope a token needs for this request: ``analytics`` for the reports under
    /api/v1/analytics/, else ``read`` for safe methods and ``write`` for the others."""
    from scrm.models import ApiToken

    if request.path.startswith(ANALYTICS_PATH):
        return ApiToken.Scope.ANALYTICS
    if request.method in SAFE_METHODS or request.path in READ_ONLY_POSTS:
        return ApiToken.Scope.READ
    return ApiToken.Scope.WRITE


def token_scope_check(request, token=None) -> None:
    """Raise 403 naming the missing scope when ``request`` is authenticated by an API token that lacks it.
    Requests signed in with a session (the dashboard) have no scopes and are not checked."""
    from scrm.models import ApiToken

    token = token if token is not None else getattr(request, "auth", None)
    if not isinstance(token, ApiToken):
        return
    scope = token_scope_required(request)
    if scope not in token.scopes:
        raise exceptions.PermissionDenied(
            _("This token lacks the “%(scope)s” scope (it has: %(scopes)s).")
            % {"scope": scope, "scopes": ", ".join(token.scopes) or "-"}
        )


class TokenScopes(BasePermission):
    """A token request needs the scope of what it does (``token_scope_required``); see docs/security.md.
    ``ApiTokenAuthentication`` runs the same check, so a view that replaces the default permission classes
    (the analytics reports) cannot skip it."""

    def has_permission(self, request, view) -> bool:
        token_scope_check(request)
        return True


# --- Throttling -------------------------------------------------------------------------------


class _RatesFromSettings:
    """DRF's throttles read their rates once, at import; these read them per request, so the rates follow
    ``REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']`` when it is changed (tests) and a rate of None turns a
    throttle off."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


class UserRateThrottle(_RatesFromSettings, throttling.UserRateThrottle):
    """Per API token (each integration has its own budget), or per user for session requests."""

    def get_cache_key(self, request, view):
        from scrm.models import ApiToken

        if isinstance(getattr(request, "auth", None), ApiToken):
            return self.cache_format % {"scope": self.scope, "ident": f"token-{request.auth.pk}"}
        return super().get_cache_key(request, view)


class AnonRateThrottle(_RatesFromSettings, throttling.AnonRateThrottle):
    """Per IP address, for requests without credentials."""
