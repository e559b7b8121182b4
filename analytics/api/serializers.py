"""Shapes of the analytics API's reports (the output). Their query parameters are the report forms of
``analytics.forms``, shared with the report pages (``analytics.api.parameters``).

The serializers write money as strings with two decimals, ratios as numbers and empty values (a
division by zero) as ``null``; every number comes from ``analytics.metrics``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analytics import metrics
from analytics.forms import MONTH_PATTERN

# --- The reports ------------------------------------------------------------------------------------


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


@extend_schema_field({"type": "string", "pattern": MONTH_PATTERN, "example": "2025-03"})
class MonthField(serializers.Field):
    """A calendar month (a date) written as ``YYYY-MM``."""

    def to_representation(self, value: Any) -> str:
        return f"{value:%Y-%m}"


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
