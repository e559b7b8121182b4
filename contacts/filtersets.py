"""FilterSets shared by the REST API and the dashboard lists."""

from __future__ import annotations

import datetime as dt
import re

import django_filters as filters
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_filters.constants import EMPTY_VALUES
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from analytics.models import Layer
from communities.models import Community, Membership
from scrm import limits

from .models import Channel, Contact, ContactTag, Purchase, Tag, Touchpoint

User = get_user_model()
_DIGITS = re.compile(r"\D")


@extend_schema_field(OpenApiTypes.INT)
class ModelIdFilter(filters.ModelChoiceFilter):
    """Chooses a row by id (documented as an integer in the OpenAPI schema)."""


@extend_schema_field({"type": "array", "items": {"type": "integer"}})
class ModelIdsFilter(filters.ModelMultipleChoiceFilter):
    """Chooses rows by ids (documented as an integer array in the OpenAPI schema)."""


def _local_midnight(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time()))


class LimitedDateFilter(filters.DateFilter):
    """A day within ``scrm.limits`` (a day near ``date.max`` would overflow the next-day arithmetic)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("validators", [limits.date_check])
        super().__init__(*args, **kwargs)


class DayFromFilter(LimitedDateFilter):
    """``field >= the start of the day`` in the current time zone: what ``field__date__gte`` means, as a
    range on the column that its indexes serve (``__date`` casts every row, so no index can)."""

    def filter(self, qs, value):
        if value in EMPTY_VALUES:
            return qs
        return qs.filter(**{f"{self.field_name}__gte": _local_midnight(value)})


class DayToFilter(LimitedDateFilter):
    """``field < the start of the next day``: what ``field__date__lte`` means, as a range."""

    def filter(self, qs, value):
        if value in EMPTY_VALUES:
            return qs
        return qs.filter(**{f"{self.field_name}__lt": _local_midnight(value + dt.timedelta(days=1))})


# Filters on a contact's own columns never duplicate rows, so they say distinct=False: django-filter's
# multiple-choice filters default to distinct=True, which makes the page query and the paginator's COUNT
# a DISTINCT over every column of every matching row.
class ContactFilterSet(filters.FilterSet):
    search = filters.CharFilter(method="filter_search", label=_("Search name or phone"))
    tag = ModelIdsFilter(queryset=Tag.objects.all(), method="filter_tag_any", label=_("Has any of the tags"))
    tag_all = ModelIdsFilter(queryset=Tag.objects.all(), method="filter_tag_all", label=_("Has all of the tags"))
    stage = filters.MultipleChoiceFilter(choices=Contact.Stage.choices, distinct=False, label=_("Lifecycle stage"))
    channel = filters.ModelMultipleChoiceFilter(queryset=Channel.objects.all(), distinct=False, label=_("Channel"))
    owner = filters.ModelChoiceFilter(queryset=User.objects.all(), label=_("Owner"))
    community = ModelIdFilter(
        queryset=Community.objects.all(), method="filter_community", label=_("Member of community")
    )
    acquired_from = DayFromFilter(field_name="acquired_at", label=_("Acquired from"))
    acquired_to = DayToFilter(field_name="acquired_at", label=_("Acquired until"))
    intent_level = filters.MultipleChoiceFilter(
        choices=Contact.IntentLevel.choices, distinct=False, label=_("Intent level")
    )
    region = filters.CharFilter(label=_("Region"))
    marketing_consent = filters.BooleanFilter(label=_("Marketing consent"))
    external_id = filters.CharFilter(label=_("External ID"))
    # The nightly scores (analytics.ContactScore, one row per contact): segments by user layer and by predicted
    # CLV. A one-to-one join never duplicates rows; contacts not scored yet match none of these filters.
    layer = filters.MultipleChoiceFilter(
        field_name="score__layer", choices=Layer.choices, distinct=False, label=_("RFM layer")
    )
    predicted_clv_min = filters.NumberFilter(
        field_name="score__predicted_clv", lookup_expr="gte", label=_("Predicted CLV at least")
    )
    predicted_clv_max = filters.NumberFilter(
        field_name="score__predicted_clv", lookup_expr="lte", label=_("Predicted CLV at most")
    )

    class Meta:
        model = Contact
        fields = [
            "search",
            "tag",
            "tag_all",
            "stage",
            "channel",
            "owner",
            "community",
            "acquired_from",
            "acquired_to",
            "layer",
            "predicted_clv_min",
            "predicted_clv_max",
        ]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        condition = Q(name__icontains=value)
        digits = _DIGITS.sub("", value)
        if len(digits) >= 3:
            condition |= Q(phone__contains=digits)
        return queryset.filter(condition)

    def filter_tag_any(self, queryset, name, tags):
        # A semi-join (IN (SELECT contact_id ...)) instead of a join, which would need DISTINCT. An absent
        # parameter arrives as an empty QuerySet, which FilterMethod does not treat as empty.
        if not tags:
            return queryset
        return queryset.filter(pk__in=ContactTag.objects.filter(tag__in=tags).values("contact_id"))

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
    purchased_from = DayFromFilter(field_name="purchased_at")
    purchased_to = DayToFilter(field_name="purchased_at")
    external_order_id = filters.CharFilter()

    class Meta:
        model = Purchase
        fields = ["contact", "status", "purchased_from", "purchased_to", "external_order_id"]


class TouchpointFilterSet(filters.FilterSet):
    contact = filters.NumberFilter(field_name="contact_id")
    medium = filters.MultipleChoiceFilter(choices=Touchpoint.Medium.choices, distinct=False)
    kind = filters.MultipleChoiceFilter(choices=Touchpoint.Kind.choices, distinct=False)
    community = filters.NumberFilter(field_name="community_id")
    occurred_from = DayFromFilter(field_name="occurred_at")
    occurred_to = DayToFilter(field_name="occurred_at")

    class Meta:
        model = Touchpoint
        fields = ["contact", "medium", "kind", "community", "occurred_from", "occurred_to"]
