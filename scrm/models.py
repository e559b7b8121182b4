"""scrm's own tables: the API tokens. (The module also makes Django send scrm post_migrate, which
rebuilds the role groups.)"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from scrm.querysets import RestrictedQuerySet

#: Characters of a key kept in clear, so a list can tell tokens apart without holding the secret.
KEY_PREFIX_LENGTH = 8


def api_token_hash(key: str) -> str:
    """The SHA-256 of a key, as stored: a key is random and long (256 bits), so a fast hash is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


def api_token_generate_key() -> str:
    return secrets.token_urlsafe(32)


def api_token_default_expiry():
    return timezone.now() + timedelta(days=settings.SCRM_API_TOKEN_DAYS)


class ApiTokenQuerySet(RestrictedQuerySet):
    owner_path = "user"
    see_all_permissions = ("scrm.view_apitoken",)

    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class ApiToken(models.Model):
    """One API key of one user: what it may do (scopes) and until when. Only the SHA-256 of the key is
    stored; the key itself is shown once, when the token is created or rotated."""

    class Scope(models.TextChoices):
        READ = "read", _("Read (GET) everything but the analytics reports")
        WRITE = "write", _("Write (POST, PUT, PATCH, DELETE)")
        ANALYTICS = "analytics", _("Read the analytics reports")

    name = models.CharField(_("name"), max_length=100)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("owner")
    )
    key_prefix = models.CharField(_("key prefix"), max_length=KEY_PREFIX_LENGTH, editable=False)
    key_hash = models.CharField(_("key hash (SHA-256)"), max_length=64, unique=True, editable=False)
    scopes = models.JSONField(_("scopes"), default=list)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(_("expires at"), default=api_token_default_expiry)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "revoked_at"], name="scrm_apitoken_user_revoked")]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    def clean(self) -> None:
        unknown = set(self.scopes or []) - set(self.Scope.values)
        if not isinstance(self.scopes, list) or unknown:
            raise ValidationError(
                {"scopes": _("Unknown scopes: %(scopes)s.") % {"scopes": ", ".join(sorted(map(str, unknown)))}}
            )

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_active(self) -> bool:
        return not self.is_revoked and not self.is_expired
