"""Report pages (数据看板): overview, funnel, cohorts, channels, trend, sales decomposition, RFM layers,
community health and KOC ranking — the team's for managers, one's own figures for operators.

Every number comes from ``analytics.metrics``, always with ``Filters(user=request.user)`` so that the
scoping of the metric services applies; a view only validates the query string with the report's form
(``analytics.forms``, the same the analytics API uses), calls the services and shapes their results for
the templates and the charts. Each page runs a fixed number of queries whatever the size of the data
(the services are set-based). Counts link to the contacts behind them (the contact list's drill-down,
see ``analytics.forms.DrillDownForm``) and each table links to its CSV export in the analytics API.

Operators (``scrm.roles.OWN_REPORTS_PERMISSION``) see the same pages over their own contacts: the owner
filter is pinned to them (the form offers no owner), which is what the metric services already do for a
manager's owner filter — spend, CPL, CAC, ROI and LTV:CAC are left empty, since spend belongs to channels
and days, not to a staff member. docs/reports.md says what each report shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from communities.models import Community, Membership
from contacts.models import Contact
from scrm.roles import REPORTS_PERMISSIONS

from . import metrics
from .forms import (
    DECOMPOSITION_FACTOR_LABELS,
    FILTER_FIELDS,
    FUNNEL_STEP_LABELS,
    TREND_METRIC_LABELS,
    CohortForm,
    DecompositionForm,
    FunnelForm,
    KocForm,
    ReportFilterForm,
    TrendForm,
    attach_errors,
    layer_label,
)

OWN_FIGURES_TEMPLATE = "analytics/workbench/own_figures_report.html"

REPORT_TABS = (
    ("overview", _("Overview")),
    ("funnel", _("Funnel")),
    ("cohorts", _("Cohorts")),
    ("channels", _("Channels")),
    ("trend", _("Trend")),
    ("decomposition", _("Sales decomposition")),
    ("layers", _("RFM layers")),
    ("communities", _("Communities")),
    ("koc", _("KOC ranking")),
)
REPORT_TITLES = dict(REPORT_TABS)
NO_CHANNEL = _("No channel")


def reports_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Logged in, and allowed to read the reports: the team's (managers, admins, integrators) or one's own
    (operators); anyone else gets 403."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not any(request.user.has_perm(permission) for permission in REPORTS_PERMISSIONS):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return login_required(checked)


def own_figures_only(user) -> bool:
    """Whether the reports are pinned to the user's own contacts: everyone who does not see every contact.
    (A permission alone would not do: the metric services scope by what the user sees, but spend is only
    left out when the owner is named.)"""
    return not Contact.objects.sees_all(user)


# --- Shaping results for templates and charts -------------------------------------------------------


def _number(value: Any) -> Any:
    """A JSON-friendly number for a chart: Decimal → float; None stays None (a gap, not a zero)."""
    if isinstance(value, Decimal):
        return float(value)
    return value


def chart(kind: str, labels, datasets, *, value_format: str = "count", **options: Any) -> dict[str, Any]:
    """A chart as plain data for ``json_script``; static/js/reports.js turns it into a Chart.js chart.
    ``datasets`` is a list of (label, values); ``value_format`` is count, money or percent."""
    return {
        "type": kind,
        "labels": [str(label) for label in labels],
        "datasets": [{"label": str(label), "data": [_number(v) for v in values]} for label, values in datasets],
        "format": value_format,
        **options,
    }


def funnel_chart(steps: list[metrics.FunnelStep]) -> dict[str, Any]:
    return chart(
        "bar",
        [FUNNEL_STEP_LABELS[step.key] for step in steps],
        [(_("Contacts"), [step.count for step in steps])],
    )


def heatmap(rows: list[metrics.CohortRow]) -> list[dict[str, Any]]:
    """The retention matrix with each cell's count, share and month offset side by side."""
    return [
        {
            "month": row.month,
            "size": row.size,
            "cells": [
                {"offset": k, "count": count, "share": share}
                for k, (count, share) in enumerate(zip(row.counts, row.cells, strict=True))
            ],
        }
        for row in rows
    ]


def channel_label(channel_id: int | None, name: str) -> str:
    return name if channel_id is not None else str(NO_CHANNEL)


# --- The page frame ---------------------------------------------------------------------------------


def _tabs(request: HttpRequest, current: str) -> list[dict[str, Any]]:
    """The report pages, each link keeping the period and filters of the page being looked at."""
    query = urlencode([(name, value) for name in FILTER_FIELDS for value in request.GET.getlist(name) if value])
    return [
        {
            "name": name,
            "url": reverse(f"analytics:{name}") + (f"?{query}" if query else ""),
            "label": label,
            "active": name == current,
        }
        for name, label in REPORT_TABS
    ]


def _report(
    request: HttpRequest,
    *,
    name: str,
    form_class: type[ReportFilterForm],
    build: Callable[[Any], dict[str, Any]],
    template: str | None = None,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    """Validate the query string with the report's form (defaults filled in), build the report, render it.
    Invalid input is shown on the form (status 200, like any form), never a 500."""
    form = form_class.from_query(request.GET, user=request.user, page=True)
    own = own_figures_only(request.user)
    if own:
        form.fields.pop("owner", None)
    tabs = _tabs(request, name)
    context: dict[str, Any] = {
        "form": form,
        "report": name,
        "report_title": REPORT_TITLES[name],
        "report_tabs": tabs,
        "report_urls": {tab["name"]: tab["url"] for tab in tabs},
        # Shared filters the page's form does not have (the KOC page) ride along, for the tabs' links.
        "carry": [
            (field, value)
            for field in FILTER_FIELDS
            if field not in form.fields
            for value in request.GET.getlist(field)
            if value
        ],
        "ready": False,
        **(extra or {}),
    }
    if form.is_valid():
        if own:
            form.cleaned_data["owner"] = request.user
        try:
            context.update(build(form))
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            context["ready"] = True
            context["report_query"] = form.query_params()
            context["drill_base"] = form.query_params(FILTER_FIELDS)
    template = template or f"analytics/{name}.html"
    if own and not template.startswith("analytics/includes/"):
        # The report's own page, saying that the figures are the operator's own contacts'.
        context["report_template"] = template
        template = OWN_FIGURES_TEMPLATE
    return render(request, template, context)


# --- Pages ------------------------------------------------------------------------------------------


@reports_view
def overview(request: HttpRequest) -> HttpResponse:
    def build(form: ReportFilterForm) -> dict[str, Any]:
        result = metrics.overview(form.filters())
        return {
            "kpis": result.kpis,
            "funnel_steps": result.funnel.total,
            "heatmap": heatmap(result.cohorts),
            "cohort_offsets": range(len(result.cohorts)),
            "cohort_by": "acquisition",
            "cohort_view": "purchase",
            "channels": result.channels,
            "spend_attributable": form.spend_attributable,
            "charts": {"funnel": funnel_chart(result.funnel.total)},
        }

    return _report(request, name="overview", form_class=ReportFilterForm, build=build)


@reports_view
def funnel(request: HttpRequest) -> HttpResponse:
    def build(form: FunnelForm) -> dict[str, Any]:
        group_by = form.cleaned_data.get("group_by") or None
        result = metrics.funnel(form.filters(), group_by=group_by)
        groups = []
        for group in result.groups:
            if group_by == "channel":
                label = channel_label(group.key, group.label)
                drill = {"channel": group.key} if group.key is not None else None
            else:
                label, drill = group.label, {"cohort": group.label}
            groups.append({"label": label, "steps": group.steps, "drill": drill})
        charts = {"funnel": funnel_chart(result.total)}
        if groups:
            charts["groups"] = chart(
                "bar",
                [group["label"] for group in groups],
                [
                    (FUNNEL_STEP_LABELS[key], [g["steps"][i].count for g in groups])
                    for i, key in enumerate(metrics.FUNNEL_STEPS)
                ],
            )
        return {
            "funnel_steps": result.total,
            "group_by": group_by,
            "groups": groups,
            "step_keys": metrics.FUNNEL_STEPS,
            "charts": charts,
        }

    return _report(request, name="funnel", form_class=FunnelForm, build=build)


@reports_view
def cohorts(request: HttpRequest) -> HttpResponse:
    def build(form: CohortForm) -> dict[str, Any]:
        data = form.cleaned_data
        rows = metrics.cohort_retention(form.filters(), by=data["by"], view=data["view"], months=data["months"])
        return {
            "heatmap": heatmap(rows),
            "cohort_offsets": range(data["months"]),
            "cohort_by": data["by"],
            "cohort_view": data["view"],
            "charts": {
                "retention": chart(
                    "line",
                    [f"M{k}" for k in range(data["months"])],
                    [(f"{row.month:%Y-%m}", row.cells) for row in rows if row.size],
                    value_format="percent",
                )
            },
        }

    return _report(request, name="cohorts", form_class=CohortForm, build=build)


@reports_view
def channels(request: HttpRequest) -> HttpResponse:
    def build(form: ReportFilterForm) -> dict[str, Any]:
        rows = metrics.channel_table(form.filters())
        labels = [channel_label(row.channel_id, row.channel) for row in rows]
        return {
            "channels": rows,
            "spend_attributable": form.spend_attributable,
            "charts": {
                "economics": chart(
                    "bar",
                    labels,
                    [(_("CAC"), [row.cac for row in rows]), (_("CLV (historical)"), [row.clv for row in rows])],
                    value_format="money",
                ),
                "leads": chart(
                    "bar",
                    labels,
                    [
                        (_("Leads"), [row.leads for row in rows]),
                        (_("New customers"), [row.new_customers for row in rows]),
                    ],
                ),
            },
        }

    return _report(request, name="channels", form_class=ReportFilterForm, build=build)


@reports_view
def trend(request: HttpRequest) -> HttpResponse:
    def build(form: TrendForm) -> dict[str, Any]:
        metric, grain = form.cleaned_data["metric"], form.cleaned_data["grain"]
        points = metrics.trend(form.filters(), metric=metric, grain=grain)
        label_format = "%Y-%m" if grain == "month" else "%Y-%m-%d"
        return {
            "points": points,
            "metric": metric,
            "metric_label": TREND_METRIC_LABELS[metric],
            "grain": grain,
            "is_money": metric == "revenue",
            "charts": {
                "trend": chart(
                    "line",
                    [point.bucket.strftime(label_format) for point in points],
                    [(TREND_METRIC_LABELS[metric], [point.value for point in points])],
                    value_format="money" if metric == "revenue" else "count",
                )
            },
        }

    return _report(request, name="trend", form_class=TrendForm, build=build)


@reports_view
def decomposition(request: HttpRequest) -> HttpResponse:
    def build(form: DecompositionForm) -> dict[str, Any]:
        result = metrics.sales_decomposition(period_a=form.compare_filters(), period_b=form.filters())
        data = form.cleaned_data
        factors = [{"factor": factor, "label": DECOMPOSITION_FACTOR_LABELS[factor.key]} for factor in result.factors]
        return {
            "result": result,
            "factors": factors,
            "period_a": (data["compare_from"], data["compare_to"]),
            "period_b": (data["date_from"], data["date_to"]),
            "charts": {
                "shares": chart(
                    "bar",
                    [row["label"] for row in factors],
                    [(_("Share of the change in sales"), [row["factor"].share for row in factors])],
                    value_format="percent",
                    horizontal=True,
                )
            },
        }

    return _report(request, name="decomposition", form_class=DecompositionForm, build=build)


@reports_view
def layers(request: HttpRequest) -> HttpResponse:
    def build(form: ReportFilterForm) -> dict[str, Any]:
        rows = metrics.rfm_layers(form.filters())
        labels = [layer_label(row.layer) for row in rows]
        return {
            "layers": rows,
            "charts": {
                "contacts": chart("doughnut", labels, [(_("Contacts"), [row.contacts for row in rows])]),
                "revenue": chart(
                    "bar",
                    labels,
                    [
                        (_("Revenue to date"), [row.revenue for row in rows]),
                        (_("Revenue in the period"), [row.revenue_in_period for row in rows]),
                    ],
                    value_format="money",
                ),
            },
        }

    return _report(request, name="layers", form_class=ReportFilterForm, build=build)


@reports_view
def communities(request: HttpRequest) -> HttpResponse:
    def build(form: ReportFilterForm) -> dict[str, Any]:
        return {"communities": metrics.community_health(form.filters())}

    return _report(request, name="communities", form_class=ReportFilterForm, build=build)


@reports_view
def koc(request: HttpRequest) -> HttpResponse:
    """The KOC ranking of one community; an htmx request (the communities table) gets the table alone."""

    def build(form: KocForm) -> dict[str, Any]:
        community = form.cleaned_data["community"]
        rows = metrics.koc_ranking(user=request.user, community_id=community.pk, limit=form.cleaned_data["limit"])
        roles = dict(Membership.Role.choices)
        return {
            "community": community,
            "koc_rows": [{"row": row, "role": roles.get(row.role, row.role)} for row in rows],
        }

    partial = request.headers.get("HX-Request") == "true"
    template = "analytics/includes/koc_table.html" if partial else None
    # With no community to choose from (none yet, or none the user runs) the page says so instead of an error.
    has_communities = bool(request.GET.get("community")) or Community.objects.visible_to(request.user).exists()
    return _report(
        request,
        name="koc",
        form_class=KocForm,
        build=build,
        template=template,
        extra={"has_communities": has_communities},
    )
