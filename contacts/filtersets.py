"""FilterSets shared by the REST API and the dashboard lists."""

from __future__ import annotations

import re

import django_filters as filters
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from communities.models import Community, Membership

from .models import Channel, Contact, Purchase, Tag, Touchpoint

User = get_user_model()
_DIGITS = re.compile(r"\D")


@extend_schema_field(OpenApiTypes.INT)
class ModelIdFilter(filters.ModelChoiceFilter):
    """Chooses a row by id (documented as an integer in the OpenAPI schema)."""


@extend_schema_field({"type": "array", "items": {"type": "integer"}})
class ModelIdsFilter(filters.ModelMultipleChoiceFilter):
    """Chooses rows by ids (documented as an integer array in the OpenAPI schema)."""


class ContactFilterSet(filters.FilterSet):
    search = filters.CharFilter(method="filter_search", label=_("Search name or phone"))
    tag = filters.ModelMultipleChoiceFilter(
        field_name="tag_links__tag", queryset=Tag.objects.all(), label=_("Has any of the tags"), distinct=True
    )
    tag_all = ModelIdsFilter(
        queryset=Tag.objects.all(), method="filter_tag_all", label=_("Has all of the tags")
    )
    stage = filters.MultipleChoiceFilter(choices=Contact.Stage.choices, label=_("Lifecycle stage"))
    channel = filters.ModelMultipleChoiceFilter(queryset=Channel.objects.all(), label=_("Channel"))
    owner = filters.ModelChoiceFilter(queryset=User.objects.all(), label=_("Owner"))
    community = ModelIdFilter(
        queryset=Community.objects.all(), method="filter_community", label=_("Member of community")
    )
    acquired_from = filters.DateFilter(field_name="acquired_at", lookup_expr="date__gte", label=_("Acquired from"))
    acquired_to = filters.DateFilter(field_name="acquired_at", lookup_expr="date__lte", label=_("Acquired until"))
    intent_level = filters.MultipleChoiceFilter(choices=Contact.IntentLevel.choices, label=_("Intent level"))
    region = filters.CharFilter(label=_("Region"))
    marketing_consent = filters.BooleanFilter(label=_("Marketing consent"))
    external_id = filters.CharFilter(label=_("External ID"))

    class Meta:
        model = Contact
        fields = ["search", "tag", "tag_all", "stage", "channel", "owner", "community", "acquired_from", "acquired_to"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        condition = Q(name__icontains=value)
        digits = _DIGITS.sub("", value)
        if len(digits) >= 3:
            condition |= Q(phone__contains=digits)
        return queryset.filter(condition)

    def filter_tag_all(self, queryset, name, tags):
        for tag in tags:
            queryset = queryset.filter(tag_links__tag=tag)
        return queryset

    def filter_community(self, queryset, name, community):
        members = Membership.objects.filter(community=community, left_at__isnull=True).values("contact")
        return queryset.filter(pk__in=members)


class PurchaseFilterSet(filters.FilterSet):
    contact = filters.NumberFilter(field_name="contact_id")
    status = filters.ChoiceFilter(choices=Purchase.Status.choices)
    purchased_from = filters.DateFilter(field_name="purchased_at", lookup_expr="date__gte")
    purchased_to = filters.DateFilter(field_name="purchased_at", lookup_expr="date__lte")
    external_order_id = filters.CharFilter()

    class Meta:
        model = Purchase
        fields = ["contact", "status", "purchased_from", "purchased_to", "external_order_id"]


class TouchpointFilterSet(filters.FilterSet):
    contact = filters.NumberFilter(field_name="contact_id")
    medium = filters.MultipleChoiceFilter(choices=Touchpoint.Medium.choices)
    kind = filters.MultipleChoiceFilter(choices=Touchpoint.Kind.choices)
    community = filters.NumberFilter(field_name="community_id")
    occurred_from = filters.DateFilter(field_name="occurred_at", lookup_expr="date__gte")
    occurred_to = filters.DateFilter(field_name="occurred_at", lookup_expr="date__lte")

    class Meta:
        model = Touchpoint
        fields = ["contact", "medium", "kind", "community", "occurred_from", "occurred_to"]
