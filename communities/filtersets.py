from __future__ import annotations

import django_filters as filters

from .models import Community, Membership


class CommunityFilterSet(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")
    kind = filters.MultipleChoiceFilter(choices=Community.Kind.choices)
    status = filters.ChoiceFilter(choices=Community.Status.choices)

    class Meta:
        model = Community
        fields = ["name", "kind", "platform", "status", "owner"]


class MembershipFilterSet(filters.FilterSet):
    community = filters.NumberFilter(field_name="community_id")
    contact = filters.NumberFilter(field_name="contact_id")
    active = filters.BooleanFilter(field_name="left_at", lookup_expr="isnull")

    class Meta:
        model = Membership
        fields = ["community", "contact", "role", "active"]
