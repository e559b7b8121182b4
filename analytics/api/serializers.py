"""Shapes of the analytics API: the query parameters of the reports (input) and the reports (output).

The input serializers only check and convert the query string — the period with its defaults, the
filters' ids, each report's options — and build ``metrics.Filters``; every number comes from
``analytics.metrics``. The output serializers write money as strings with two decimals, ratios as
numbers and empty values (a division by zero) as ``null``.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analytics import metrics
from analytics.forms import (
    DEFAULT_PERIOD_DAYS,
    FIRST_YEAR,
    KOC_LIMIT_DEFAULT,
    KOC_LIMIT_MAX,
    LAST_YEAR,
    MAX_PERIOD_DAYS,
)
from analytics.models import Layer
from communities.models import Community
from contacts.models import Channel

User = get_user_model()

DATE_FORMAT = "%Y-%m-%d"
#: The ``layer`` of the drill-down for the contacts not scored yet (the ``null`` layer of the layers report).
UNSCORED = "unscored"
_MONTH = re.compile(r"^\d{4}-\d{2}$")


# --- Input: the query string ------------------------------------------------------------------------


def _check_year(value: dt.date, field_name: str) -> dt.date:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise serializers.ValidationError(
            {field_name: _("Enter a date between %(first)s and %(last)s.") % {"first": FIRST_YEAR, "last": LAST_YEAR}}
        )
    return value


@extend_schema_field({"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2025-03"})
class MonthField(serializers.CharField):
    """A calendar month as ``YYYY-MM``."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value == "":
            return value
        if not _MONTH.match(value):
            raise serializers.ValidationError(_("Enter a month as YYYY-MM."), code="invalid")
        try:
            month = metrics.parse_month(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(_("Enter a month as YYYY-MM."), code="invalid") from exc
        if not FIRST_YEAR <= month.year <= LAST_YEAR:
            raise serializers.ValidationError(
                _("Enter a month between %(first)s and %(last)s.") % {"first": FIRST_YEAR, "last": LAST_YEAR},
                code="invalid",
            )
        return value


@extend_schema_field(OpenApiTypes.INT)
class VisibleCommunityField(serializers.PrimaryKeyRelatedField):
    """A community id the requesting user may see; any other id reads as "does not exist"."""

    def get_queryset(self):
        return Community.objects.visible_to(self.context["request"].user)


def _date_field(help_text: str) -> serializers.DateField:
    return serializers.DateField(required=False, input_formats=[DATE_FORMAT], help_text=help_text)


class ReportQuerySerializer(serializers.Serializer):
    """The period and the filters every report shares. The period is whole days in the business time zone;
    without dates it is the 30 days ending today. The filters restrict the *contacts* counted."""

    date_from = _date_field(_("First day of the period (YYYY-MM-DD); default: 29 days before date_to."))
    date_to = _date_field(_("Last day of the period (YYYY-MM-DD); default: today in the business time zone."))
    channel = serializers.PrimaryKeyRelatedField(
        queryset=Channel.objects.all(),
        required=False,
        allow_null=True,
        help_text=_("Only contacts acquired through this channel (id)."),
    )
    owner = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.all(), required=False, allow_null=True, help_text=_("Only contacts of this owner (id).")
    )
    community = VisibleCommunityField(
        required=False, allow_null=True, help_text=_("Only contacts who were ever members of this community (id).")
    )
    cohort = MonthField(
        required=False, allow_blank=True, help_text=_("Only contacts acquired in this month (YYYY-MM).")
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("date_to") is None:
            attrs["date_to"] = timezone.localdate()
        if attrs.get("date_from") is None:
            attrs["date_from"] = attrs["date_to"] - dt.timedelta(days=DEFAULT_PERIOD_DAYS - 1)
        self._check_period(attrs, "date_from", "date_to")
        return attrs

    @staticmethod
    def _check_period(attrs: dict[str, Any], first: str, last: str) -> None:
        _check_year(attrs[first], first)
        _check_year(attrs[last], last)
        if attrs[last] < attrs[first]:
            raise serializers.ValidationError({last: _("The end of the period is before its start.")})
        if (attrs[last] - attrs[first]).days + 1 > MAX_PERIOD_DAYS:
            raise serializers.ValidationError(
                {first: _("Choose a period of at most %(days)s days.") % {"days": MAX_PERIOD_DAYS}}
            )

    def filters(self, **overrides: Any) -> metrics.Filters:
        """The report's ``metrics.Filters``, for the user making the request."""
        data = self.validated_data
        values = {
            "date_from": data["date_from"],
            "date_to": data["date_to"],
            "user": self.context["request"].user,
            "channel_id": data["channel"].pk if data.get("channel") else None,
            "owner_id": data["owner"].pk if data.get("owner") else None,
            "community_id": data["community"].pk if data.get("community") else None,
            "cohort": data.get("cohort") or None,
        }
        values.update(overrides)
        return metrics.Filters(**values)


class CohortQuerySerializer(ReportQuerySerializer):
    by = serializers.ChoiceField(
        choices=["acquisition", "first_purchase"],
        default="acquisition",
        help_text=_("Cohorts by acquisition month or by month of the first paid purchase."),
    )
    view = serializers.ChoiceField(
        choices=["purchase", "engagement"],
        default="purchase",
        help_text=_("Active means a paid purchase (purchase) or an inbound interaction (engagement)."),
    )
    months = serializers.IntegerField(
        min_value=1,
        max_value=metrics.MAX_COHORT_MONTHS,
        default=12,
        help_text=_("Number of cohorts (and of months per cohort), ending with the month of date_to."),
    )


class FunnelQuerySerializer(ReportQuerySerializer):
    group_by = serializers.ChoiceField(
        choices=["channel", "cohort"],
        required=False,
        allow_blank=True,
        help_text=_("Also give the funnel per acquisition channel or per acquisition month."),
    )


class DecompositionQuerySerializer(ReportQuerySerializer):
    """Period B is date_from … date_to; period A is compare_from … compare_to, by default the days just
    before period B, as many as B has."""

    compare_from = _date_field(_("First day of period A; default: the period of the same length before B."))
    compare_to = _date_field(_("Last day of period A; default: the day before date_from."))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        compare_from, compare_to = attrs.get("compare_from"), attrs.get("compare_to")
        if compare_from is None and compare_to is None:
            compare_to = attrs["date_from"] - dt.timedelta(days=1)
            attrs["compare_to"] = compare_to
            attrs["compare_from"] = compare_to - (attrs["date_to"] - attrs["date_from"])
        elif compare_from is None or compare_to is None:
            missing = "compare_from" if compare_from is None else "compare_to"
            raise serializers.ValidationError({missing: _("Give both the start and the end of period A.")})
        self._check_period(attrs, "compare_from", "compare_to")
        return attrs


class KocQuerySerializer(ReportQuerySerializer):
    """The ranking is of the community's current members, whatever the period and the other filters."""

    community = VisibleCommunityField(help_text=_("The community (id) whose members are ranked."))
    limit = serializers.IntegerField(
        min_value=1, max_value=KOC_LIMIT_MAX, default=KOC_LIMIT_DEFAULT, help_text=_("How many members to list.")
    )


class TrendQuerySerializer(ReportQuerySerializer):
    metric = serializers.ChoiceField(choices=list(metrics.TREND_METRICS), default="revenue")
    grain = serializers.ChoiceField(
        choices=["month", "week", "day"],
        required=False,
        help_text=_("Bucket size; default: day for up to 62 days, week for up to 366 days, else month."),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if not attrs.get("grain"):
            days = (attrs["date_to"] - attrs["date_from"]).days + 1
            attrs["grain"] = "day" if days <= 62 else "week" if days <= 366 else "month"
        return attrs


class DrilldownQuerySerializer(ReportQuerySerializer):
    """Which contacts: ``metric`` and, for a funnel step, a cohort cell or an RFM layer, the parameter
    that names it. The cohort of a cell is ``month``; ``cohort`` stays the shared acquisition-month filter."""

    metric = serializers.ChoiceField(choices=list(metrics.DRILLDOWN_METRICS))
    step = serializers.ChoiceField(
        choices=list(metrics.FUNNEL_STEPS), required=False, help_text=_("Funnel step (metric=funnel).")
    )
    month = MonthField(
        required=False, allow_blank=True, help_text=_("The cohort (YYYY-MM) of a retention cell (metric=cohort).")
    )
    offset = serializers.IntegerField(
        min_value=0,
        max_value=metrics.MAX_COHORT_MONTHS - 1,
        required=False,
        allow_null=True,
        help_text=_("Month of the cohort (0 = the cohort's own month); without it, the whole cohort."),
    )
    by = serializers.ChoiceField(choices=["acquisition", "first_purchase"], default="acquisition")
    view = serializers.ChoiceField(choices=["purchase", "engagement"], default="purchase")
    layer = serializers.ChoiceField(
        choices=[*Layer.values, UNSCORED],
        required=False,
        help_text=_("RFM layer (metric=rfm); unscored = the contacts not scored yet."),
    )

    _REQUIRED = {"funnel": "step", "cohort": "month", "rfm": "layer"}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        needed = self._REQUIRED.get(attrs["metric"])
        if needed and not attrs.get(needed):
            raise serializers.ValidationError({needed: _("This drill-down needs this parameter.")})
        return attrs

    def drilldown_kwargs(self) -> dict[str, Any]:
        data = self.validated_data
        layer = data.get("layer") or None
        return {
            "metric": data["metric"],
            "step": data.get("step") or None,
            "cohort": data.get("month") or None,
            "offset": data.get("offset"),
            "by": data["by"],
            "view": data["view"],
            "layer": None if layer == UNSCORED else layer,
        }


# --- Output: the reports ----------------------------------------------------------------------------


def money_field(**kwargs: Any) -> serializers.DecimalField:
    """An amount of money: a string with two decimals ("1234.50"); null when empty."""
    return serializers.DecimalField(max_digits=None, decimal_places=2, coerce_to_string=True, allow_null=True, **kwargs)


def ratio_field(**kwargs: Any) -> serializers.FloatField:
    """A ratio as a number rounded to 4 places (0.1234 = 12.34 %); null for a division by zero."""
    return serializers.FloatField(allow_null=True, **kwargs)


@extend_schema_field(
    {
        "oneOf": [{"type": "number"}, {"type": "string", "format": "decimal", "pattern": r"^-?\d+\.\d{2}$"}],
        "nullable": True,
        "description": "Money as a string with two decimals; counts and ratios as numbers.",
    }
)
class NumberOrMoneyField(serializers.Field):
    """A value whose kind depends on the row: money (a Decimal) as a two-decimal string, else a number."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> Any:
        if isinstance(value, Decimal):
            return f"{value:.2f}"
        return value


class ApiErrorItemSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text=_("The parameter at fault; null when it is not one."))
    code = serializers.CharField()
    message = serializers.CharField()


class ApiErrorSerializer(serializers.Serializer):
    """The project's one error body (``scrm.api``): every 4xx names the field and the problem."""

    type = serializers.CharField()
    detail = serializers.CharField()
    errors = ApiErrorItemSerializer(many=True)


class PeriodSerializer(serializers.Serializer):
    date_from = serializers.DateField()
    date_to = serializers.DateField()


class KpisSerializer(serializers.Serializer):
    leads = serializers.IntegerField()
    new_customers = serializers.IntegerField()
    spend = money_field(help_text=_("Null with an owner or community filter: spend cannot be attributed to them."))
    cpl = money_field()
    cac = money_field()
    revenue = money_field()
    paid_orders = serializers.IntegerField()
    buyers = serializers.IntegerField()
    aov = money_field()
    leads_revenue = money_field(help_text=_("R: revenue to date of the leads of the period."))
    clv = money_field(help_text=_("Historical CLV = R / leads."))
    roi = ratio_field()
    ltv_cac = ratio_field()
    repeat_buyers = serializers.IntegerField()
    repurchase_rate = ratio_field()
    referred_leads = serializers.IntegerField()
    referrers = serializers.IntegerField()
    k_factor = ratio_field()


class KpisReportSerializer(PeriodSerializer):
    kpis = KpisSerializer()


class CohortRowSerializer(serializers.Serializer):
    month = MonthField(help_text=_("The cohort (YYYY-MM)."))
    size = serializers.IntegerField()
    counts = serializers.ListField(
        child=serializers.IntegerField(allow_null=True),
        help_text=_("Active contacts in months 0, 1, … of the cohort; null after the end of the period."),
    )
    cells = serializers.ListField(
        child=serializers.FloatField(allow_null=True), help_text=_("counts / size; null after the end of the period.")
    )

    def to_representation(self, instance: metrics.CohortRow) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["month"] = f"{instance.month:%Y-%m}"
        return data


class CohortReportSerializer(PeriodSerializer):
    by = serializers.CharField()
    view = serializers.CharField()
    months = serializers.IntegerField()
    rows = CohortRowSerializer(many=True)


class FunnelStepSerializer(serializers.Serializer):
    key = serializers.ChoiceField(choices=list(metrics.FUNNEL_STEPS))
    count = serializers.IntegerField()
    step_conversion = ratio_field(help_text=_("This step / the previous step; null for the first step."))
    overall_conversion = ratio_field(help_text=_("This step / leads."))


class FunnelGroupSerializer(serializers.Serializer):
    channel = serializers.IntegerField(
        allow_null=True, help_text=_("Channel id with group_by=channel (null = no channel).")
    )
    cohort = serializers.CharField(allow_null=True, help_text=_("Acquisition month (YYYY-MM) with group_by=cohort."))
    label = serializers.CharField()
    steps = FunnelStepSerializer(many=True)


class FunnelReportSerializer(PeriodSerializer):
    group_by = serializers.CharField(allow_null=True)
    total = FunnelStepSerializer(many=True)
    groups = FunnelGroupSerializer(many=True)


class ChannelRowSerializer(serializers.Serializer):
    channel_id = serializers.IntegerField(allow_null=True, help_text=_("Null: the contacts without a channel."))
    channel = serializers.CharField()
    spend = money_field()
    leads = serializers.IntegerField()
    new_customers = serializers.IntegerField()
    cpl = money_field()
    cac = money_field()
    revenue = money_field(help_text=_("R: revenue to date of the channel's leads of the period."))
    clv = money_field()
    roi = ratio_field()
    ltv_cac = ratio_field()


class ChannelReportSerializer(PeriodSerializer):
    rows = ChannelRowSerializer(many=True)


class DecompositionPeriodSerializer(PeriodSerializer):
    retained_users = serializers.IntegerField()
    fission = ratio_field()
    conversion = ratio_field()
    aov = money_field()
    repurchase = ratio_field()
    sales = money_field()
    referred_leads = serializers.IntegerField()
    buyers = serializers.IntegerField()
    paid_orders = serializers.IntegerField()


class DecompositionFactorSerializer(serializers.Serializer):
    key = serializers.ChoiceField(choices=list(metrics.DECOMPOSITION_FACTORS))
    a = NumberOrMoneyField(help_text=_("The factor in period A (aov: money; retained_users: a count)."))
    b = NumberOrMoneyField(help_text=_("The factor in period B."))
    change = ratio_field(help_text=_("B / A."))
    share = ratio_field(help_text=_("LMDI share of the change in sales; null when it cannot be split."))


class DecompositionReportSerializer(serializers.Serializer):
    period_a = DecompositionPeriodSerializer()
    period_b = DecompositionPeriodSerializer()
    sales_change = ratio_field(help_text=_("Sales B / sales A."))
    factors = DecompositionFactorSerializer(many=True)


class LayerRowSerializer(serializers.Serializer):
    layer = serializers.CharField(allow_null=True, help_text=_("Stored RFM layer; null = not scored yet."))
    contacts = serializers.IntegerField()
    revenue = money_field(help_text=_("Paid spend to date."))
    average_spend = money_field()
    revenue_in_period = money_field()


class LayerReportSerializer(PeriodSerializer):
    rows = LayerRowSerializer(many=True)


class CommunityHealthSerializer(serializers.Serializer):
    community_id = serializers.IntegerField()
    community = serializers.CharField()
    members = serializers.IntegerField()
    joins = serializers.IntegerField()
    leaves = serializers.IntegerField()
    active_7d = serializers.IntegerField()
    active_30d = serializers.IntegerField()
    activity_rate = ratio_field()
    buyers = serializers.IntegerField()
    conversion = ratio_field()
    revenue = money_field()


class CommunityReportSerializer(PeriodSerializer):
    rows = CommunityHealthSerializer(many=True)


class KocRowSerializer(serializers.Serializer):
    contact_id = serializers.IntegerField()
    name = serializers.CharField()
    referrals = serializers.IntegerField()
    total_spent = money_field()
    role = serializers.CharField()


class KocReportSerializer(serializers.Serializer):
    community = serializers.IntegerField()
    limit = serializers.IntegerField()
    rows = KocRowSerializer(many=True)


class TrendPointSerializer(serializers.Serializer):
    bucket = serializers.DateField(help_text=_("First day of the bucket (a Monday for weeks)."))
    value = NumberOrMoneyField(help_text=_("Revenue as money, the other metrics as counts."))


class TrendReportSerializer(PeriodSerializer):
    metric = serializers.CharField()
    grain = serializers.CharField()
    points = TrendPointSerializer(many=True)


class OverviewSerializer(PeriodSerializer):
    kpis = KpisSerializer()
    funnel = FunnelStepSerializer(many=True)
    channels = ChannelRowSerializer(many=True)
    cohorts = CohortRowSerializer(many=True, help_text=_("Acquisition cohorts, paid-purchase retention, 12 months."))
