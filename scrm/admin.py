"""Admin of the API tokens (issue, the key shown once; revoke; rotate) and of the audit trail."""

from __future__ import annotations

import itertools
import json

from django import forms
from django.contrib import admin, messages
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from scrm.audit import Action, audit
from scrm.authentication import api_token_create, api_token_revoke, api_token_rotate
from scrm.csv_writer import Text, csv_chunks
from scrm.models import ApiToken, AuditEvent

# DRF's authtoken is kept installed only for its migrations (its tokens were carried over to ApiToken):
# its admin would offer keys that no longer authenticate.
try:
    from rest_framework.authtoken.models import TokenProxy

    admin.site.unregister(TokenProxy)
except (ImportError, admin.sites.NotRegistered):
    pass


class ApiTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"), choices=ApiToken.Scope.choices, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = ApiToken
        fields = ["name", "user", "scopes", "expires_at", "revoked_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = ["name", "user", "key_prefix", "scopes", "created_at", "expires_at", "last_used_at", "status"]
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["name", "user__username", "key_prefix"]
    raw_id_fields = ["user"]
    readonly_fields = ["key_prefix", "created_at", "last_used_at"]
    actions = ["revoke", "rotate"]

    @admin.display(description=_("status"))
    def status(self, token: ApiToken) -> str:
        if token.is_revoked:
            return _("revoked")
        return _("expired") if token.is_expired else _("active")

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token, key = api_token_create(user=obj.user, name=obj.name, scopes=obj.scopes, expires_at=obj.expires_at)
        obj.pk, obj.key_prefix, obj.key_hash, obj.created_at = (
            token.pk,
            token.key_prefix,
            token.key_hash,
            token.created_at,
        )
        messages.warning(
            request, _("The key of “%(name)s”, shown only this once: %(key)s") % {"name": token.name, "key": key}
        )

    @admin.action(description=_("Revoke the selected tokens"), permissions=["change"])
    def revoke(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, _("%(count)d tokens revoked.") % {"count": len(queryset)})

    @admin.action(description=_("Rotate the selected tokens (new keys, the old ones revoked)"), permissions=["change"])
    def rotate(self, request, queryset):
        for token in queryset.filter(revoked_at__isnull=True):
            new, key = api_token_rotate(token=token)
            messages.warning(
                request, _("The new key of “%(name)s”, shown only this once: %(key)s") % {"name": new.name, "key": key}
            )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail: read-only, filterable, exportable as CSV. Field-by-field changes of records are
    under “Log entries” (django-auditlog)."""

    list_display = ["at", "actor_name", "action", "target_type", "target_id", "count", "via", "ip"]
    list_filter = ["action", "via", ("at", admin.DateFieldListFilter), "target_type"]
    search_fields = ["actor_name", "target_id", "ip"]
    date_hierarchy = "at"
    actions = ["export_csv"]
    list_per_page = 100

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description=_("Export the selected events as CSV"), permissions=["view"])
    def export_csv(self, request, queryset):
        rows = (
            [
                timezone.localtime(event.at).isoformat(),
                Text(event.actor_name),
                event.action,
                event.target_type,
                event.target_id,
                "" if event.count is None else event.count,
                event.via,
                event.ip or "",
                Text(json.dumps(event.detail, ensure_ascii=False)),
            ]
            for event in queryset.order_by("at", "id").iterator(chunk_size=2000)
        )
        header = [["at", "actor", "action", "target_type", "target_id", "count", "via", "ip", "detail"]]
        response = StreamingHttpResponse(
            csv_chunks(itertools.chain(header, rows)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="audit-{timezone.localdate():%Y%m%d}.csv"'
        audit(Action.AUDIT_EXPORTED, actor=request.user, count=queryset.count())
        return response
