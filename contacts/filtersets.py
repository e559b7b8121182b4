"""FilterSets shared by the REST API and the dashboard lists."""

from __future__ import annotations

import datetime as dt
import re

import django_filters as filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
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
from .phones import normalize_phone

User = get_user_model()
_DIGITS = re.compile(r"\D")
_PHONE_TAIL = re.compile(r"^\d{4}$")
# Identifiers are single tokens of at most the columns' length: anything else cannot match one exactly.
_KEY_MAX_LENGTH = 64
# At most this many ids in one ``id`` filter (the rows ticked in the list, a page at most).
IDS_MAX = 500


@extend_schema_field(OpenApiTypes.INT)
class ModelIdFilter(filters.ModelChoiceFilter):
    """Chooses a row by id (documented as an integer in the OpenAPI schema)."""


@extend_schema_field({"type": "array", "items": {"type": "integer"}})
class ModelIdsFilter(filters.ModelMultipleChoiceFilter):
    """Chooses rows by ids (documented as an integer array in the OpenAPI schema)."""


class CommaIdListField(forms.CharField):
    """Contact ids as one comma-separated value (``?id=3,5,8``), at most ``IDS_MAX`` of them."""

    default_error_messages = {
        "invalid": _("Enter contact ids separated by commas."),
        "too_many": _("At most %(max)d contact ids."),
    }

    def to_python(self, value) -> list[int]:
        value = super().to_python(value)
        if not value:
            return []
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not all(part.isdigit() and len(part) <= 18 for part in parts):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        if len(parts) > IDS_MAX:
            raise ValidationError(self.error_messages["too_many"], code="too_many", params={"max": IDS_MAX})
        return sorted({int(part) for part in parts})


@extend_schema_field(OpenApiTypes.STR)
class IdListFilter(filters.Filter):
    """``pk IN (…)`` for the contacts chosen by hand (the list's ticked rows, exported or viewed)."""

    field_class = CommaIdListField

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.filter(pk__in=value)


def search_condition(queryset, value: str):
    """What the list's and the API's ``search`` finds, as the queryset narrowed to it.

    First the exact keys, each served by its unique index: the external id, the WeCom external_userid, the
    WeChat unionid and the whole phone number (in any spelling ``normalize_phone`` accepts). When one of
    them matches, that is the answer (one index lookup, no scan). Otherwise the partial matches: a name
    containing the text, a phone ending in the four digits typed (手机尾号), or a phone containing three or
    more digits typed (these scan the owner's contacts; see docs for the trigram index that would serve
    them at scale)."""
    value = value.strip()
    if not value:
        return queryset
    if len(value) <= _KEY_MAX_LENGTH and not any(ch.isspace() for ch in value):
        exact = Q(external_id=value) | Q(wecom_external_userid=value) | Q(wechat_unionid=value)
        try:
            exact |= Q(phone=normalize_phone(value))
        except ValidationError:
            pass
        hits = queryset.filter(exact)
        if hits.exists():
            return hits
    condition = Q(name__icontains=value)
    digits = _DIGITS.sub("", value)
    if _PHONE_TAIL.match(value):
        condition |= Q(phone__endswith=value)
    elif len(digits) >= 3:
        condition |= Q(phone__contains=digits)
    return queryset.filter(condition)


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
    search = filters.CharFilter(
        method="filter_search", label=_("Search name, phone, last 4 digits, external ID or WeCom ID")
    )
    id = IdListFilter(label=_("Chosen contacts"))
    tag = ModelIdsFilter(queryset=Tag.objects.all(), method="filter_tag_any", label=_("Has any of the tags"))
    tag_all = ModelIdsFilter(queryset=Tag.objects.all(), method="filter_tag_all", label=_("Has all of the tags"))
    stage = filters.MultipleChoiceFilter(choices=Contact.Stage.choices, distinct=False, label=_("Lifecycle stage"))
    channel = filters.ModelMultipleChoiceFilter(queryset=Channel.objects.all(), distinct=False, label=_("Channel"))
    owner = ModelIdsFilter(queryset=User.objects.all(), distinct=False, label=_("Owner"))
    community = ModelIdsFilter(
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
            "id",
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
        return search_condition(queryset, value)

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

    def filter_community(self, queryset, name, communities):
        # Members of any of the communities: a semi-join, like the tags.
        if not communities:
            return queryset
        members = Membership.objects.filter(community__in=communities, left_at__isnull=True).values("contact")
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
