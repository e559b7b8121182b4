"""Formatting and links for the report pages: money, counts, shares and ratios with "—" for empty values,
heatmap shading, the charts the pages draw from the metric services' results (the sales waterfall, the
trend and the retention curves with their incomplete month marked), the contact list's drill-down links
and the analytics API's CSV export links.

Numbers are written the same way in both languages: a comma every three digits and a point for decimals
(``12,345.60``), which is how Chinese business documents and ``Intl.NumberFormat("zh-CN")`` write them.
Django's own zh-Hans format has no separator at all (``THOUSAND_SEPARATOR = ""``), so ``intcomma`` and
``floatformat:"g"`` would print ``12345.60`` on Chinese pages; the filters here do not depend on it.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics import metrics
from analytics.forms import DECOMPOSITION_FACTOR_LABELS, DRILL_PREFIX, FUNNEL_STEP_LABELS, layer_label

register = template.Library()

EMPTY = "—"
API_ROOT = "/api/v1/analytics/"
#: From this ratio on (1,000 %), a percentage is written as a multiple: ROI 12,345 % → "123×".
MULTIPLE_FROM = 10

#: The joint contribution of retained users and fission (see ``metrics.REACH``).
REACH_LABEL = gettext_lazy("Contacts reached (retained × fission)")

#: What the change of each factor did, for the sentence under the sales waterfall: (rose, fell).
FACTOR_EFFECTS = {
    "retained_users": (
        gettext_lazy("more retained users added %(amount)s"),
        gettext_lazy("fewer retained users took away %(amount)s"),
    ),
    "fission": (
        gettext_lazy("a higher fission rate added %(amount)s"),
        gettext_lazy("a lower fission rate took away %(amount)s"),
    ),
    "conversion": (
        gettext_lazy("a higher conversion added %(amount)s"),
        gettext_lazy("a lower conversion took away %(amount)s"),
    ),
    "aov": (
        gettext_lazy("a higher average order value added %(amount)s"),
        gettext_lazy("a lower average order value took away %(amount)s"),
    ),
    "repurchase": (
        gettext_lazy("more orders per buyer added %(amount)s"),
        gettext_lazy("fewer orders per buyer took away %(amount)s"),
    ),
    metrics.REACH: (
        gettext_lazy("more contacts reached added %(amount)s"),
        gettext_lazy("fewer contacts reached took away %(amount)s"),
    ),
}


def _param(name: str, value: Any) -> str:
    if isinstance(value, dt.date):
        # Cohort months travel as YYYY-MM, days as YYYY-MM-DD.
        return value.strftime("%Y-%m") if name in ("month", "cohort") else value.isoformat()
    return str(value)


# --- Numbers -----------------------------------------------------------------------------------------


def grouped(value: Decimal | float | int, places: int = 0) -> str:
    """``value`` rounded half up to ``places`` decimals, with a comma every three digits: 12,345.60."""
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    number = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if number == 0:
        number = abs(number)  # no "-0.00"
    return f"{number:,.{places}f}"


def money_text(value: Decimal | float | int | None, currency: str = "", *, whole: bool = False) -> str:
    """¥1,234.50 (−¥700.00 for a negative amount), or — for an empty value; ``whole``: to the yuan."""
    if value is None:
        return EMPTY
    sign = "-" if value < 0 else ""
    return f"{sign}{currency}{grouped(abs(value), 0 if whole else 2)}"


def multiple_text(value: float) -> str:
    """A large ratio as a multiple: 12.3×, 123×, 1,235×."""
    text = grouped(value, 1 if abs(value) < 100 else 0)
    if text.endswith(".0"):
        text = text[:-2]
    return f"{text}×"


@register.simple_tag(takes_context=True)
def money(context, value) -> str:
    """¥1,234.50, or — for an empty value (a division by zero, spend that cannot be attributed)."""
    return money_text(value, context.get("currency_symbol", ""))


@register.simple_tag(takes_context=True)
def signed_money(context, value) -> str:
    """+¥1,234.50 / -¥700.00 / ¥0.00: a contribution to a change."""
    if value is None:
        return EMPTY
    return ("+" if value > 0 else "") + money_text(value, context.get("currency_symbol", ""))


@register.filter
def num(value) -> str:
    """A count with thousands separators (12,345), or —."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, int | Decimal) and value == int(value):
        return grouped(value, 0)
    return grouped(value, 2)


@register.filter
def percent(value) -> str:
    """A ratio (0.1234) as a percentage (12.3%); from 10 (1,000%) on as a multiple (123×); or —."""
    if value is None:
        return EMPTY
    value = float(value)
    if abs(value) >= MULTIPLE_FROM:
        return multiple_text(value)
    return f"{grouped(value * 100, 1)}%"


@register.filter
def ratio(value) -> str:
    """A plain ratio with two decimals (LTV:CAC 3.25, K-factor 1.40, 1,234.50), or —."""
    if value is None:
        return EMPTY
    return grouped(value, 2)


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
    if key == metrics.REACH:
        return str(REACH_LABEL)
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
        return num(value)
    return ratio(value)


# --- The sales waterfall -----------------------------------------------------------------------------


@register.simple_tag
def contribution_of(result: metrics.Decomposition, key: str) -> Decimal | None:
    """What the change of one factor added to the sales (``{% contribution_of result key as amount %}``)."""
    return result.contribution(key)


def _period_label(name: str, period: tuple[dt.date, dt.date] | None) -> list[str] | str:
    if not period:
        return name
    return [name, f"{period[0]:%m-%d} – {period[1]:%m-%d}"]


@register.simple_tag
def waterfall_chart(result: metrics.Decomposition, period_a=None, period_b=None) -> dict[str, Any]:
    """The change in sales from period A to period B as a waterfall (static/js/reports.js draws it):
    the sales of A, each factor's contribution in money floating from where the previous one ended
    (rises and falls in their own colours), the sales of B. The contributions add up exactly to the
    change, so the last step ends where B's bar does."""
    sales_a, sales_b = result.a.sales or Decimal(0), result.b.sales or Decimal(0)
    labels: list[Any] = [_period_label(_("Period A"), period_a)]
    steps: list[dict[str, Any]] = [{"kind": "total", "base": 0.0, "value": float(sales_a)}]
    running = sales_a
    for item in result.contributions or ():
        labels.append(factor_label(item.key))
        kind = "rise" if item.amount > 0 else "fall" if item.amount < 0 else "flat"
        steps.append({"kind": kind, "base": float(running), "value": float(item.amount)})
        running += item.amount
    labels.append(_period_label(_("Period B"), period_b))
    steps.append({"kind": "total", "base": 0.0, "value": float(sales_b)})
    return {
        "type": "waterfall",
        "format": "money",
        "labels": labels,
        "steps": steps,
        "datasets": [{"label": str(_("Sales")), "data": [step["value"] for step in steps]}],
    }


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return _(", ").join(parts[:-1]) + _(" and ") + parts[-1]


@register.simple_tag(takes_context=True)
def decomposition_sentence(context, result: metrics.Decomposition) -> str:
    """The waterfall in one sentence: "Sales rose ¥12,300: more retained users added ¥9,000, a higher
    conversion added ¥4,000 and a lower average order value took away ¥700." Biggest effects first;
    amounts to the yuan from ¥1,000 on."""
    currency = context.get("currency_symbol", "")
    change = result.sales_difference

    def amount(value: Decimal) -> str:
        return money_text(abs(value), currency, whole=abs(value) >= 1000)

    effects = sorted(
        (item for item in result.contributions or () if item.amount != 0),
        key=lambda item: (-abs(item.amount), item.key),
    )
    reasons = _join(
        [str(FACTOR_EFFECTS[item.key][item.amount < 0] % {"amount": amount(item.amount)}) for item in effects]
    )
    if change > 0:
        lead = _("Sales rose %(amount)s") % {"amount": amount(change)}
    elif change < 0:
        lead = _("Sales fell %(amount)s") % {"amount": amount(change)}
    else:
        lead = _("Sales did not change")
    if result.contributions is None:
        return _(
            "%(lead)s; it cannot be split between the factors: a period has sales but no retained or referred contacts."
        ) % {"lead": lead}
    if not reasons:
        return _("%(lead)s.") % {"lead": lead}
    return _("%(lead)s: %(reasons)s.") % {"lead": lead, "reasons": reasons}


# --- Incomplete months, weeks and days ---------------------------------------------------------------

PARTIAL_TEXT = {
    ("to_date", "month"): gettext_lazy("month to date"),
    ("to_date", "week"): gettext_lazy("week to date"),
    ("to_date", "day"): gettext_lazy("today so far"),
}


def _bucket_name(bucket: dt.date, grain: str) -> str:
    return f"{bucket:%Y-%m}" if grain == "month" else f"{bucket:%Y-%m-%d}"


def _partial_text(span: metrics.BucketSpan, grain: str) -> str:
    if span.partial == metrics.TO_DATE:
        return str(PARTIAL_TEXT[("to_date", grain)])
    if span.partial == metrics.FUTURE:
        return _("not begun yet")
    return _("only %(first)s – %(last)s") % {"first": f"{span.first:%m-%d}", "last": f"{span.last:%m-%d}"}


@register.simple_tag
def trend_view(spec: dict[str, Any], points: list, grain: str, date_from: dt.date, date_to: dt.date) -> dict:
    """The trend as bars, the incomplete buckets marked: ``rows`` (point, span, note) for the table,
    ``chart`` (the view's chart as bars, with ``partial`` and a note per bucket) and ``notes``."""
    spans = metrics.bucket_spans(
        [point.bucket for point in points], grain, date_from=date_from, date_to=date_to, today=timezone.localdate()
    )
    rows, partial, notes = [], [], []
    future = [span.bucket for span in spans if span.partial == metrics.FUTURE]
    for point, span in zip(points, spans, strict=True):
        note = _partial_text(span, grain) if span.partial else ""
        rows.append({"point": point, "span": span, "note": note})
        partial.append(note)
        if note and span.partial != metrics.FUTURE:
            notes.append(f"{_bucket_name(point.bucket, grain)}: {note}")
    if future:
        first, last = _bucket_name(future[0], grain), _bucket_name(future[-1], grain)
        notes.append(f"{first if first == last else f'{first} … {last}'}: {_partial_text(spans[-1], grain)}")
    chart = {**spec, "type": "bar", "partial": partial}
    return {"rows": rows, "chart": chart, "notes": notes, "to_date": any(s.partial == metrics.TO_DATE for s in spans)}


@register.simple_tag
def cohort_view(heatmap: list[dict[str, Any]], date_to: dt.date, spec: dict[str, Any] | None = None) -> dict:
    """The retention matrix with the cells of the month counted only in part marked (``partial``), the
    note that says so, and the retention curves' chart with each cohort's incomplete point."""
    month = metrics.partial_month(date_to, timezone.localdate())
    rows = []
    partial_at: dict[str, int] = {}
    for row in heatmap:
        offset = metrics.months_between(row["month"], month.month) if month else -1
        cells = [{**cell, "partial": cell["offset"] == offset} for cell in row["cells"]]
        rows.append({**row, "cells": cells, "partial_size": offset == 0})
        if 0 <= offset < len(cells):
            partial_at[f"{row['month']:%Y-%m}"] = offset
    note = ""
    if month is not None:
        if month.to_date:
            note = _("%(month)s: month to date, up to %(day)s.")
        else:
            note = _("%(month)s: counted only up to %(day)s, the end of the period.")
        note = note % {"month": f"{month.month:%Y-%m}", "day": f"{month.through:%Y-%m-%d}"}
    chart = None
    if spec is not None:
        label = str(PARTIAL_TEXT[("to_date", "month")]) if month and month.to_date else _("incomplete")
        chart = {
            **spec,
            "datasets": [
                {**dataset, "partialIndex": partial_at.get(dataset["label"])} for dataset in spec.get("datasets", [])
            ],
            "partialLabel": label,
        }
    return {"rows": rows, "month": month, "note": note, "chart": chart}


# --- Links ---------------------------------------------------------------------------------------------


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
