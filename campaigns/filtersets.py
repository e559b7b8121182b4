"""FilterSets shared by the REST API and the dashboard lists of campaigns data (the pages fit a FilterSet's
form to their layout with the ``fit_*_filters`` helpers of ``campaigns.forms``).

Ids are plain number filters (``contact_id``): they never look the row up, so filtering by someone
else's id neither costs a query nor tells whether that row exists — the scoped queryset simply has none.
"""

from __future__ import annotations

import django_filters as filters
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from contacts.filtersets import DayFromFilter, DayToFilter

from .models import (
    Automation,
    AutomationRun,
    Broadcast,
    Delivery,
    FollowUpTask,
    Medium,
    MessageTemplate,
    OutboxMessage,
    Segment,
)


class CharInFilter(filters.BaseInFilter, filters.CharFilter):
    """``?category=售后,活动``: any of the comma-separated values."""


class SegmentFilterSet(filters.FilterSet):
    search = filters.CharFilter(method="filter_search", label=_("Search name or description"))
    created_by = filters.NumberFilter(field_name="created_by_id", label=_("Created by"))

    class Meta:
        model = Segment
        fields = ["search", "created_by"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


class MessageTemplateFilterSet(filters.FilterSet):
    search = filters.CharFilter(method="filter_search", label=_("Search name, subject or text"))
    category = CharInFilter(field_name="category", label=_("Category (any of, comma-separated)"))
    kind = filters.ChoiceFilter(choices=MessageTemplate.Kind.choices, label=_("Kind"))
    is_service = filters.BooleanFilter(label=_("Service message"))
    is_active = filters.BooleanFilter(label=_("Active"))

    class Meta:
        model = MessageTemplate
        fields = ["search", "category", "kind", "is_service", "is_active"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(subject__icontains=value) | Q(body__icontains=value))


class BroadcastFilterSet(filters.FilterSet):
    search = filters.CharFilter(field_name="name", lookup_expr="icontains", label=_("Search name"))
    status = filters.MultipleChoiceFilter(choices=Broadcast.Status.choices, distinct=False, label=_("Status"))
    medium = filters.ChoiceFilter(choices=Medium.choices, label=_("Sent via"))
    segment = filters.NumberFilter(field_name="segment_id", label=_("Segment"))
    template = filters.NumberFilter(field_name="template_id", label=_("Template"))
    created_by = filters.NumberFilter(field_name="created_by_id", label=_("Created by"))
    scheduled_from = DayFromFilter(field_name="scheduled_at", label=_("Scheduled from"))
    scheduled_to = DayToFilter(field_name="scheduled_at", label=_("Scheduled until"))

    class Meta:
        model = Broadcast
        fields = ["search", "status", "medium", "segment", "template", "created_by", "scheduled_from", "scheduled_to"]


class DeliveryFilterSet(filters.FilterSet):
    broadcast = filters.NumberFilter(field_name="broadcast_id", label=_("Broadcast"))
    automation = filters.NumberFilter(field_name="automation_run__automation_id", label=_("Automation"))
    contact = filters.NumberFilter(field_name="contact_id", label=_("Contact"))
    status = filters.MultipleChoiceFilter(choices=Delivery.Status.choices, distinct=False, label=_("Status"))
    reason = filters.MultipleChoiceFilter(choices=Delivery.Reason.choices, distinct=False, label=_("Reason"))
    medium = filters.ChoiceFilter(choices=Medium.choices, label=_("Sent via"))
    hold = filters.ChoiceFilter(choices=Delivery.Hold.choices, label=_("Waiting for"))

    class Meta:
        model = Delivery
        fields = ["broadcast", "automation", "contact", "status", "reason", "medium", "hold"]


class OutboxMessageFilterSet(filters.FilterSet):
    broadcast = filters.NumberFilter(field_name="delivery__broadcast_id", label=_("Broadcast"))
    contact = filters.NumberFilter(field_name="contact_id", label=_("Contact"))
    medium = filters.ChoiceFilter(choices=Medium.choices, label=_("Sent via"))

    class Meta:
        model = OutboxMessage
        fields = ["broadcast", "contact", "medium"]


class AutomationFilterSet(filters.FilterSet):
    search = filters.CharFilter(field_name="name", lookup_expr="icontains", label=_("Search name"))
    trigger = filters.MultipleChoiceFilter(choices=Automation.Trigger.choices, distinct=False, label=_("Trigger"))
    action = filters.MultipleChoiceFilter(choices=Automation.Action.choices, distinct=False, label=_("Action"))
    is_active = filters.BooleanFilter(label=_("Active"))

    class Meta:
        model = Automation
        fields = ["search", "trigger", "action", "is_active"]


class AutomationRunFilterSet(filters.FilterSet):
    automation = filters.NumberFilter(field_name="automation_id", label=_("Automation"))
    contact = filters.NumberFilter(field_name="contact_id", label=_("Contact"))
    status = filters.MultipleChoiceFilter(choices=AutomationRun.Status.choices, distinct=False, label=_("Status"))

    class Meta:
        model = AutomationRun
        fields = ["automation", "contact", "status"]


class FollowUpTaskFilterSet(filters.FilterSet):
    status = filters.ChoiceFilter(choices=FollowUpTask.Status.choices, label=_("Status"))
    assignee = filters.NumberFilter(field_name="assignee_id", label=_("Assignee"))
    contact = filters.NumberFilter(field_name="contact_id", label=_("Contact"))
    due_from = DayFromFilter(field_name="due_at", label=_("Due from"))
    due_to = DayToFilter(field_name="due_at", label=_("Due until"))

    class Meta:
        model = FollowUpTask
        fields = ["status", "assignee", "contact", "due_from", "due_to"]
