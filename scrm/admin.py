"""Admin of the API tokens: issue (the key is shown once), revoke, rotate."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from scrm.authentication import api_token_create, api_token_revoke, api_token_rotate
from scrm.models import ApiToken

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
