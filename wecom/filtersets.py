"""FilterSets shared by the WeCom API and the dashboard lists. Ids are plain number filters: filtering by
someone else's id finds nothing in the scoped queryset, without telling whether that row exists."""

from __future__ import annotations

import django_filters as filters
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .models import CallbackEvent, FollowRelationship, LiveCode, StaffAccount, SyncRun


class LiveCodeFilterSet(filters.FilterSet):
    search = filters.CharFilter(field_name="name", lookup_expr="icontains", label=_("Search name"))
    channel = filters.NumberFilter(field_name="channel_id", label=_("Channel"))
    is_active = filters.BooleanFilter(label=_("Active"))

    class Meta:
        model = LiveCode
        fields = ["search", "channel", "is_active"]


class FollowRelationshipFilterSet(filters.FilterSet):
    contact = filters.NumberFilter(field_name="contact_id", label=_("Contact"))
    staff = filters.NumberFilter(field_name="staff_id", label=_("Staff account"))
    live_code = filters.NumberFilter(field_name="live_code_id", label=_("Live code"))
    active = filters.BooleanFilter(
        field_name="deleted_at", lookup_expr="isnull", label=_("Active (neither side deleted the other)")
    )

    class Meta:
        model = FollowRelationship
        fields = ["contact", "staff", "live_code", "active"]


class CallbackEventFilterSet(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=CallbackEvent.Status.choices, distinct=False, label=_("Status"))
    event = filters.CharFilter(label=_("Event"))
    change_type = filters.CharFilter(label=_("Change type"))

    class Meta:
        model = CallbackEvent
        fields = ["status", "event", "change_type"]


class SyncRunFilterSet(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=SyncRun.Status.choices, distinct=False, label=_("Status"))

    class Meta:
        model = SyncRun
        fields = ["status"]


class StaffAccountFilterSet(filters.FilterSet):
    search = filters.CharFilter(method="filter_search", label=_("Search userid or name"))
    is_follow_user = filters.BooleanFilter(label=_("Has customer contact"))
    mapped = filters.BooleanFilter(field_name="user", lookup_expr="isnull", exclude=True, label=_("Mapped to a user"))

    class Meta:
        model = StaffAccount
        fields = ["search", "is_follow_user", "mapped"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(userid__icontains=value) | Q(name__icontains=value))
