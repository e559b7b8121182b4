"""scrm's own tables: the API tokens and the audit trail. (The module also makes Django send scrm post_migrate, which
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


class AuditEventQuerySet(models.QuerySet):
    """The audit trail is append-only: rows are never changed or deleted through the ORM (and, on
    PostgreSQL, a trigger refuses UPDATE and DELETE on the table; migration 0004)."""

    def update(self, **kwargs):
        raise PermissionError("the audit trail is append-only")

    def delete(self):
        raise PermissionError("the audit trail is append-only")


class AuditEvent(models.Model):
    """One thing a person did that the brand must be able to account for (PIPL): sign-ins, views,
    exports, changes, merges, handovers and erasures of contacts. Holds no personal data of customers:
    contacts are named by id only, so an erasure leaves the trail intact and empty of the person."""

    class Action(models.TextChoices):
        LOGIN = "login", _("Signed in")
        LOGIN_FAILED = "login_failed", _("Sign-in failed")
        LOCKED_OUT = "locked_out", _("Locked out")
        LOGOUT = "logout", _("Signed out")
        CONTACT_VIEWED = "contact_viewed", _("Viewed a contact")
        PERSONAL_DATA_EXPORTED = "personal_data_exported", _("Exported a person's data")
        CONTACTS_EXPORTED = "contacts_exported", _("Exported contacts")
        EXPORT_DOWNLOADED = "export_downloaded", _("Downloaded an export")
        CONTACTS_IMPORTED = "contacts_imported", _("Imported a file")
        CONSENT_CHANGED = "consent_changed", _("Changed consent")
        CONTACTS_MERGED = "contacts_merged", _("Merged contacts")
        CONTACTS_REASSIGNED = "contacts_reassigned", _("Reassigned contacts")
        HANDOVER = "handover", _("Handed over contacts")
        CONTACT_ERASED = "contact_erased", _("Erased a contact")
        TOKEN_ISSUED = "token_issued", _("Issued an API token")
        TOKEN_ROTATED = "token_rotated", _("Rotated an API token")
        TOKEN_REVOKED = "token_revoked", _("Revoked an API token")
        AUDIT_EXPORTED = "audit_exported", _("Exported the audit trail")

    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    # No foreign key constraint: the trail outlives users and must never be rewritten by a cascade.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    actor_name = models.CharField(_("actor name"), max_length=150, blank=True)
    action = models.CharField(_("action"), max_length=32, choices=Action.choices, db_index=True)
    target_type = models.CharField(_("target type"), max_length=64, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True, db_index=True)
    count = models.PositiveIntegerField(_("count"), null=True, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    via = models.CharField(_("via"), max_length=16, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit trail")
        indexes = [models.Index(fields=["target_type", "target_id", "at"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.get_action_display()}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise PermissionError("the audit trail is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("the audit trail is append-only")
