from __future__ import annotations

from django.contrib import admin

from .models import Community, Membership


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "platform", "owner", "capacity", "status"]
    list_filter = ["kind", "platform", "status"]
    search_fields = ["name"]
    filter_horizontal = ["admins"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["community", "contact", "role", "joined_at", "left_at", "join_source"]
    list_filter = ["role", "join_source"]
    raw_id_fields = ["contact", "invited_by", "community"]
    list_select_related = ["community", "contact"]
