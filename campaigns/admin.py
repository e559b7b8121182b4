"""Back-office views of campaigns. Everything that sends or changes state goes through the services
(the dashboard and the API), so the admin shows broadcasts, deliveries, runs and the outbox read-only;
the beat schedules themselves are edited under "Periodic tasks" (django-celery-beat)."""

from __future__ import annotations

from django.contrib import admin

from .models import (
    Automation,
    AutomationRun,
    Broadcast,
    Delivery,
    FollowUpTask,
    FrequencyCap,
    FrequencyPolicy,
    MessageTemplate,
    OutboxMessage,
    Segment,
)


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Segment)
class SegmentAdmin(_ReadOnlyAdmin):
    list_display = ("name", "description", "created_by", "updated_at")
    search_fields = ("name",)


@admin.register(MessageTemplate)
class MessageTemplateAdmin(_ReadOnlyAdmin):
    list_display = ("name", "category", "kind", "is_service", "is_active", "updated_at")
    list_filter = ("kind", "category", "is_service", "is_active")
    search_fields = ("name", "body")


@admin.register(Broadcast)
class BroadcastAdmin(_ReadOnlyAdmin):
    list_display = ("name", "status", "medium", "scheduled_at", "total_targeted", "created_by", "approved_by")
    list_filter = ("status", "medium")
    search_fields = ("name",)
    date_hierarchy = "created_at"


@admin.register(Delivery)
class DeliveryAdmin(_ReadOnlyAdmin):
    list_display = ("id", "broadcast", "automation_run", "contact", "medium", "status", "reason", "attempts", "sent_at")
    list_filter = ("status", "reason", "medium", "gateway")
    raw_id_fields = ("broadcast", "automation_run", "contact", "template")
    show_full_result_count = False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(_ReadOnlyAdmin):
    list_display = ("id", "delivery", "contact", "medium", "created_at")
    raw_id_fields = ("delivery", "contact")
    show_full_result_count = False


@admin.register(FrequencyPolicy)
class FrequencyPolicyAdmin(_ReadOnlyAdmin):
    list_display = ("quiet_hours_enabled", "quiet_start", "quiet_end", "exempt_service_messages", "updated_by")


@admin.register(FrequencyCap)
class FrequencyCapAdmin(_ReadOnlyAdmin):
    list_display = ("medium", "window", "window_days", "max_messages")


@admin.register(Automation)
class AutomationAdmin(_ReadOnlyAdmin):
    list_display = ("name", "trigger", "action", "delay_minutes", "is_active", "active_since", "scanned_until")
    list_filter = ("trigger", "action", "is_active")


@admin.register(AutomationRun)
class AutomationRunAdmin(_ReadOnlyAdmin):
    list_display = ("id", "automation", "contact", "key", "status", "due_at", "finished_at")
    list_filter = ("status", "automation")
    raw_id_fields = ("automation", "contact", "purchase", "product")
    show_full_result_count = False


@admin.register(FollowUpTask)
class FollowUpTaskAdmin(_ReadOnlyAdmin):
    list_display = ("title", "assignee", "contact", "status", "due_at", "done_at")
    list_filter = ("status",)
    raw_id_fields = ("contact", "automation_run")
