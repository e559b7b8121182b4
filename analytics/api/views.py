"""The analytics API: one GET view per report under /api/v1/analytics/.

Each view validates the query string with its report's form (``analytics.forms``, the same the report
page uses: the shared period and filters plus the report's options), calls one ``analytics.metrics``
service with ``Filters(user=request.user)`` and returns the result through an output serializer — or, with ``?format=csv``, the report's table from
``analytics.exports`` as a CSV download. Only users with ``analytics.view_reports`` may call them
(managers, admins, integrators; operators get 403, anonymous callers 401). Errors, CSV requests
included, have the project's one JSON error shape (``scrm.api``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from django.db.models import Prefetch
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.exceptions import PermissionDenied
from rest_framework.filters import OrderingFilter
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from analytics import exports, forms, metrics
from contacts.api.serializers import ContactSerializer
from contacts.models import Tag

from . import serializers as s
from .parameters import query_parameters, validated
from .renderers import CSVRenderer

REPORTS_PERMISSION = "analytics.view_reports"
EXPORT_CONTACTS_PERMISSION = "contacts.export_contacts"
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


class CanViewReports(BasePermission):
    """Signed in and holding ``analytics.view_reports``."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(REPORTS_PERMISSION))


FORMAT_PARAMETER = OpenApiParameter(
    "format",
    str,
    enum=["json", "csv"],
    description="csv: the report's table as a CSV download (UTF-8 with BOM), "
    'Content-Disposition: attachment; filename="<report>-<date_from>-<date_to>.csv". Errors stay JSON.',
)
# Errors are JSON whatever format was asked for (ReportView.finalize_response).
ERRORS = {
    (400, "application/json"): OpenApiResponse(
        s.ApiErrorSerializer, description="A query parameter is not valid; the error names it."
    ),
    (401, "application/json"): OpenApiResponse(s.ApiErrorSerializer, description="Not signed in."),
    (403, "application/json"): OpenApiResponse(
        s.ApiErrorSerializer, description="Signed in without the analytics.view_reports permission."
    ),
}


def report_schema(*, summary: str, query: type[forms.ReportFilterForm], response: Any, description: str = ""):
    """``extend_schema`` of a report: its query parameters (the fields of its form), its JSON body, its
    CSV and the errors."""
    return extend_schema(
        summary=summary,
        description=description,
        parameters=[*query_parameters(query), FORMAT_PARAMETER],
        responses={
            (200, "application/json"): response,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The report's table as CSV."),
            **ERRORS,
        },
        tags=["analytics"],
    )


def _period(data: dict[str, Any]) -> dict[str, Any]:
    return {"date_from": data["date_from"], "date_to": data["date_to"]}


class ReportView(APIView):
    """A report: its form (``parameters``) checks the query string; ``get`` builds the report and answers
    it as JSON or, when CSV was asked for, as a download named ``<report>-<date_from>-<date_to>.csv``."""

    report: ClassVar[str]
    parameters: ClassVar[type[forms.ReportFilterForm]] = forms.ReportFilterForm
    permission_classes = [CanViewReports]
    renderer_classes = [*api_settings.DEFAULT_RENDERER_CLASSES, CSVRenderer]

    def get_authenticate_header(self, request) -> str | None:
        # A request without credentials gets 401 with a challenge (``WWW-Authenticate: Token``) whatever the
        # order of the authentication classes (session authentication, first in the settings, has none).
        for authenticator in request.authenticators:
            header = authenticator.authenticate_header(request)
            if header:
                return header
        return None

    def query(self, request) -> forms.ReportFilterForm:
        return validated(self.parameters, request)

    def wants_csv(self, request) -> bool:
        return isinstance(getattr(request, "accepted_renderer", None), CSVRenderer)

    def filename(self, query: forms.ReportFilterForm) -> str:
        data = query.cleaned_data
        return f"{self.report}-{data['date_from']:%Y-%m-%d}-{data['date_to']:%Y-%m-%d}.csv"

    def respond(self, request, query: forms.ReportFilterForm, build_json, build_csv) -> Response:
        if self.wants_csv(request):
            response = Response(build_csv())
            response["Content-Disposition"] = f'attachment; filename="{self.filename(query)}"'
            return response
        return Response(build_json())

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors are JSON in the one error shape, also when the request asked for CSV; so is the
        # description OPTIONS answers (only a report is a table).
        if self.wants_csv(request) and (response.status_code >= 400 or request.method == "OPTIONS"):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class OverviewView(ReportView):
    report = "overview"

    @report_schema(
        summary="Overview",
        query=forms.ReportFilterForm,
        response=s.OverviewSerializer,
        description="KPIs, the funnel, the channel table and the 12 acquisition cohorts' paid-purchase "
        "retention, sharing queries. The CSV has the four tables one after the other.",
    )
    def get(self, request):
        query = self.query(request)
        result = metrics.overview(query.filters())
        return self.respond(
            request,
            query,
            lambda: (
                s.OverviewSerializer(
                    {
                        **_period(query.cleaned_data),
                        "kpis": result.kpis,
                        "funnel": result.funnel.total,
                        "channels": result.channels,
                        "cohorts": result.cohorts,
                    }
                ).data
            ),
            lambda: exports.overview_tables(result),
        )


class KpisView(ReportView):
    report = "kpis"

    @report_schema(
        summary="KPIs",
        query=forms.ReportFilterForm,
        response=s.KpisReportSerializer,
        description="Leads, new customers, spend, CPL, CAC, revenue, orders, buyers, AOV, historical CLV, ROI, "
        "LTV:CAC, repurchase rate and K-factor of the period.",
    )
    def get(self, request):
        query = self.query(request)
        result = metrics.kpis(query.filters())
        return self.respond(
            request,
            query,
            lambda: s.KpisReportSerializer({**_period(query.cleaned_data), "kpis": result}).data,
            lambda: exports.kpis_table(result),
        )


class CohortsView(ReportView):
    report = "cohorts"
    parameters = forms.CohortForm

    @report_schema(
        summary="Cohort retention",
        query=forms.CohortForm,
        response=s.CohortReportSerializer,
        description="The retention matrix of the `months` cohorts ending with the month of date_to, as of the "
        "end of the period (date_from only matters through the cohort filter).",
    )
    def get(self, request):
        query = self.query(request)
        data = query.cleaned_data
        rows = metrics.cohort_retention(query.filters(), by=data["by"], view=data["view"], months=data["months"])
        return self.respond(
            request,
            query,
            lambda: (
                s.CohortReportSerializer(
                    {**_period(data), "by": data["by"], "view": data["view"], "months": data["months"], "rows": rows}
                ).data
            ),
            lambda: exports.cohorts_table(rows),
        )


class FunnelView(ReportView):
    report = "funnel"
    parameters = forms.FunnelForm

    @report_schema(
        summary="Funnel",
        query=forms.FunnelForm,
        response=s.FunnelReportSerializer,
        description="The strictly nested funnel of the leads of the period (facts to date), in total and, "
        "with group_by, per acquisition channel or acquisition month.",
    )
    def get(self, request):
        query = self.query(request)
        data = query.cleaned_data
        group_by = data.get("group_by") or None
        result = metrics.funnel(query.filters(), group_by=group_by)
        groups = [
            {
                "channel": group.key if group_by == "channel" else None,
                "cohort": f"{group.key:%Y-%m}" if group_by == "cohort" else None,
                "label": group.label,
                "steps": group.steps,
            }
            for group in result.groups
        ]
        return self.respond(
            request,
            query,
            lambda: (
                s.FunnelReportSerializer(
                    {**_period(data), "group_by": group_by, "total": result.total, "groups": groups}
                ).data
            ),
            lambda: exports.funnel_table(result, group_by=group_by),
        )


class ChannelsView(ReportView):
    report = "channels"

    @report_schema(
        summary="Channel table",
        query=forms.ReportFilterForm,
        response=s.ChannelReportSerializer,
        description="Per acquisition channel, and a row for the contacts without a channel (channel_id null): "
        "spend, leads, new customers, CPL, CAC, R, CLV, ROI, LTV:CAC.",
    )
    def get(self, request):
        query = self.query(request)
        rows = metrics.channel_table(query.filters())
        return self.respond(
            request,
            query,
            lambda: s.ChannelReportSerializer({**_period(query.cleaned_data), "rows": rows}).data,
            lambda: exports.channels_table(rows),
        )


class DecompositionView(ReportView):
    report = "decomposition"
    parameters = forms.DecompositionForm

    @report_schema(
        summary="Sales decomposition",
        query=forms.DecompositionForm,
        response=s.DecompositionReportSerializer,
        description="Sales = retained users × fission × conversion × AOV × repurchase for period A "
        "(compare_from … compare_to) and period B (date_from … date_to), with each factor's change and LMDI "
        "share of the change in sales.",
    )
    def get(self, request):
        query = self.query(request)
        data = query.cleaned_data
        period_a = (data["compare_from"], data["compare_to"])
        period_b = (data["date_from"], data["date_to"])
        result = metrics.sales_decomposition(period_a=query.compare_filters(), period_b=query.filters())

        def period(values: metrics.DecompositionPeriod, dates: tuple) -> dict[str, Any]:
            return {"date_from": dates[0], "date_to": dates[1], **dataclasses.asdict(values)}

        return self.respond(
            request,
            query,
            lambda: (
                s.DecompositionReportSerializer(
                    {
                        "period_a": period(result.a, period_a),
                        "period_b": period(result.b, period_b),
                        "sales_change": result.sales_change,
                        "factors": result.factors,
                    }
                ).data
            ),
            lambda: exports.decomposition_table(result, period_a=period_a, period_b=period_b),
        )


class LayersView(ReportView):
    report = "layers"

    @report_schema(
        summary="RFM layers",
        query=forms.ReportFilterForm,
        response=s.LayerReportSerializer,
        description="Per stored RFM layer (as of the last scores refresh) of the filtered contacts: contacts, "
        "revenue to date, average spend and revenue in the period. Layer null: not scored yet.",
    )
    def get(self, request):
        query = self.query(request)
        rows = metrics.rfm_layers(query.filters())
        return self.respond(
            request,
            query,
            lambda: s.LayerReportSerializer({**_period(query.cleaned_data), "rows": rows}).data,
            lambda: exports.layers_table(rows),
        )


class CommunitiesView(ReportView):
    report = "communities"

    @report_schema(
        summary="Community health",
        query=forms.ReportFilterForm,
        response=s.CommunityReportSerializer,
        description="Per community: members at the end of the period, joins, leaves, active members in the "
        "7 and 30 days ending date_to, activity rate, members who bought in the period, conversion, revenue.",
    )
    def get(self, request):
        query = self.query(request)
        rows = metrics.community_health(query.filters())
        return self.respond(
            request,
            query,
            lambda: s.CommunityReportSerializer({**_period(query.cleaned_data), "rows": rows}).data,
            lambda: exports.communities_table(rows),
        )


class KocView(ReportView):
    report = "koc"
    parameters = forms.KocForm

    @report_schema(
        summary="KOC ranking",
        query=forms.KocForm,
        response=s.KocReportSerializer,
        description="The current members of one community ranked by live contacts referred, then by paid "
        "spend to date. The period and the other filters do not apply (the period only names the CSV file).",
    )
    def get(self, request):
        query = self.query(request)
        data = query.cleaned_data
        rows = metrics.koc_ranking(user=request.user, community_id=data["community"].pk, limit=data["limit"])
        return self.respond(
            request,
            query,
            lambda: (
                s.KocReportSerializer({"community": data["community"].pk, "limit": data["limit"], "rows": rows}).data
            ),
            lambda: exports.koc_table(rows),
        )


class TrendView(ReportView):
    report = "trend"
    parameters = forms.TrendForm

    @report_schema(
        summary="Trend",
        query=forms.TrendForm,
        response=s.TrendReportSerializer,
        description="One metric per month, week (from Monday) or day of the period, every bucket present.",
    )
    def get(self, request):
        query = self.query(request)
        data = query.cleaned_data
        points = metrics.trend(query.filters(), metric=data["metric"], grain=data["grain"])
        return self.respond(
            request,
            query,
            lambda: (
                s.TrendReportSerializer(
                    {**_period(data), "metric": data["metric"], "grain": data["grain"], "points": points}
                ).data
            ),
            lambda: exports.trend_table(points, metric=data["metric"], grain=data["grain"]),
        )


class DrilldownView(ReportView, generics.GenericAPIView):
    """The contacts behind a number, as a paginated contact list (the contacts API's representation)."""

    report = "drilldown"
    parameters = forms.DrillDownForm
    serializer_class = ContactSerializer
    filter_backends = [OrderingFilter]
    ordering_fields = ["acquired_at", "last_purchase_at", "total_spent", "purchase_count", "name", "id"]
    ordering = ["-acquired_at", "-id"]

    @report_schema(
        summary="Drill-down: the contacts behind a number",
        query=forms.DrillDownForm,
        response=ContactSerializer(many=True),
        description="metric=leads|new_customers|buyers|repeat_buyers|referred_leads as in the KPIs; "
        "metric=funnel with step; metric=cohort with month (and offset, by, view for one cell); metric=rfm "
        "with layer. The CSV lists all the contacts (it also needs contacts.export_contacts).",
    )
    def get(self, request):
        query = self.query(request)
        contacts = metrics.drilldown(query.filters(), **query.drilldown_kwargs())
        if self.wants_csv(request):
            if not request.user.has_perm(EXPORT_CONTACTS_PERMISSION):
                raise PermissionDenied()
            response = StreamingHttpResponse(
                exports.csv_chunks(exports.drilldown_table(contacts)), content_type=CSV_CONTENT_TYPE
            )
            response["Content-Disposition"] = f'attachment; filename="{self.filename(query)}"'
            return response
        contacts = self.filter_queryset(
            contacts.prefetch_related(Prefetch("tags", queryset=Tag.objects.select_related("group")))
        )
        page = self.paginate_queryset(contacts)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
