"""Back-office views of the WeCom connection, read-only: live codes are written through
``wecom.livecodes`` (they must change in WeCom too), staff mapping on the connection page, and the inbox
and sync runs are records of what happened."""

from __future__ import annotations

from django.contrib import admin

from .models import (
    CallbackEvent,
    CorpTagGroupLink,
    CorpTagLink,
    FollowRelationship,
    LiveCode,
    LiveCodeStaff,
    StaffAccount,
    SyncRun,
)


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StaffAccount)
class StaffAccountAdmin(_ReadOnlyAdmin):
    list_display = ("userid", "name", "user", "is_follow_user", "synced_at")
    list_filter = ("is_follow_user",)
    search_fields = ("userid", "name", "user__username")
    list_select_related = ("user",)


class LiveCodeStaffInline(admin.TabularInline):
    model = LiveCodeStaff
    fields = ("staff", "daily_cap", "position")
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LiveCode)
class LiveCodeAdmin(_ReadOnlyAdmin):
    list_display = ("name", "channel", "assignment", "is_active", "state", "config_id", "created_at")
    list_filter = ("is_active", "assignment", "channel")
    search_fields = ("name", "state", "config_id")
    list_select_related = ("channel",)
    inlines = [LiveCodeStaffInline]


@admin.register(FollowRelationship)
class FollowRelationshipAdmin(_ReadOnlyAdmin):
    list_display = ("contact", "staff", "external_userid", "live_code", "added_at", "deleted_at", "ended_by")
    list_filter = ("ended_by",)
    search_fields = ("external_userid", "contact__name", "staff__userid")
    list_select_related = ("contact", "staff", "live_code")
    raw_id_fields = ("contact",)

    def get_queryset(self, request):
        # Even in the back office, a user sees only the follows of the contacts they may see.
        return FollowRelationship.objects.visible_to(request.user).select_related("contact", "staff", "live_code")


@admin.register(CallbackEvent)
class CallbackEventAdmin(_ReadOnlyAdmin):
    list_display = ("received_at", "event", "change_type", "status", "attempts", "processed_at")
    list_filter = ("status", "event", "change_type")
    search_fields = ("error",)
    exclude = ("message",)  # the decrypted XML carries customer data; the parsed payload is shown


@admin.register(SyncRun)
class SyncRunAdmin(_ReadOnlyAdmin):
    list_display = ("started_at", "status", "started_by", "staff_count", "customers_seen", "follows_written")
    list_filter = ("status",)


@admin.register(CorpTagGroupLink)
class CorpTagGroupLinkAdmin(_ReadOnlyAdmin):
    list_display = ("group", "wecom_id")


@admin.register(CorpTagLink)
class CorpTagLinkAdmin(_ReadOnlyAdmin):
    list_display = ("tag", "wecom_id")
