"""Formatting and links for the report pages: money, shares and ratios with "—" for empty values, heatmap
shading, the contact list's drill-down links and the analytics API's CSV export links."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from django import template
from django.template.defaultfilters import floatformat
from django.urls import reverse
from django.utils.http import urlencode

from analytics.forms import DECOMPOSITION_FACTOR_LABELS, DRILL_PREFIX, FUNNEL_STEP_LABELS, layer_label

register = template.Library()

EMPTY = "—"
API_ROOT = "/api/v1/analytics/"


def _param(name: str, value: Any) -> str:
    if isinstance(value, dt.date):
        # Cohort months travel as YYYY-MM, days as YYYY-MM-DD.
        return value.strftime("%Y-%m") if name in ("month", "cohort") else value.isoformat()
    return str(value)


@register.simple_tag(takes_context=True)
def money(context, value) -> str:
    """¥1234.50, or — for an empty value (a division by zero, spend that cannot be attributed)."""
    if value is None:
        return EMPTY
    return f"{context.get('currency_symbol', '')}{floatformat(value, '2g')}"


@register.filter
def percent(value) -> str:
    """A ratio (0.1234) as a percentage (12.3%), or —."""
    if value is None:
        return EMPTY
    return f"{floatformat(value * 100, 1)}%"


@register.filter
def ratio(value) -> str:
    """A plain ratio with two decimals (LTV:CAC 3.25, K-factor 1.40), or —."""
    if value is None:
        return EMPTY
    return floatformat(value, 2)


@register.filter
def dash(value) -> Any:
    return EMPTY if value is None or value == "" else value


@register.filter
def heat(share) -> str:
    """The shade of a heatmap cell, as a CSS percentage. A square-root scale, so that the differences
    between the small shares typical of retention stay visible."""
    if not share:
        return "0%"
    return f"{min(100.0, math.sqrt(max(0.0, float(share))) * 100):.0f}%"


@register.filter
def heat_class(share) -> str:
    return " heat-dark" if share is not None and float(share) >= 0.5 else ""


@register.filter
def step_label(key: str) -> str:
    return str(FUNNEL_STEP_LABELS.get(key, key))


@register.filter
def factor_label(key: str) -> str:
    return str(DECOMPOSITION_FACTOR_LABELS.get(key, key))


@register.filter(name="layer_label")
def layer_label_filter(layer) -> str:
    return layer_label(layer)


@register.simple_tag(takes_context=True)
def factor_value(context, key: str, value) -> str:
    """A factor of the sales decomposition, each in its own unit."""
    if value is None:
        return EMPTY
    if key == "aov":
        return money(context, value)
    if key == "conversion":
        return percent(value)
    if key == "retained_users":
        return str(value)
    return ratio(value)


@register.simple_tag(takes_context=True)
def drill_url(context, metric: str, **overrides) -> str:
    """The contact list narrowed to the contacts behind a number: ``drill-metric`` plus the page's period
    and filters (``drill_base``), with ``overrides`` (step, month, offset, by, view, layer, channel, …)."""
    values = dict(context.get("drill_base", {}))
    # An empty override (a missing template variable) leaves the page's value in place.
    values.update({name: value for name, value in overrides.items() if value is not None and value != ""})
    params = {f"{DRILL_PREFIX}-metric": metric}
    params.update({f"{DRILL_PREFIX}-{name}": _param(name, value) for name, value in values.items()})
    return f"{reverse('contacts:list')}?{urlencode(params)}"


@register.simple_tag(takes_context=True)
def export_url(context, report: str, **overrides) -> str:
    """The analytics API's CSV of a report, with the page's parameters (``report_query``, defaults
    included) and ``overrides`` (None drops a parameter). A plain path: the API is its own app."""
    params = dict(context.get("report_query", {}))
    for name, value in overrides.items():
        if value is None or value == "":
            params.pop(name, None)
        else:
            params[name] = _param(name, value)
    params["format"] = "csv"
    return f"{API_ROOT}{report}/?{urlencode(params)}"
