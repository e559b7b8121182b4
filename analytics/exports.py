"""The report tables as rows for CSV: one function per report, each turning the result of an
``analytics.metrics`` service into a ``Table`` (a header of readable column names and the rows), and
``csv_chunks`` writing tables — one, or several in one file — through the project's one CSV writer
(``scrm.csv_writer``: UTF-8 with a BOM, CRLF line ends, free text defused against spreadsheet formulas).

Nothing here computes a number: the cells are the metric services' values, written as they are —
money with two decimals, ratios as plain numbers (0.1234, not 12.3 %), empty values (a division by
zero, spend that cannot be attributed) as empty cells. The analytics API (``analytics.api``) serves
these as ``?format=csv``; anything else that needs a report as rows can call the same functions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from communities.models import Membership
from contacts.models import Contact
from scrm import csv_writer
from scrm.csv_writer import Text, cell

from . import metrics
from .forms import DECOMPOSITION_FACTOR_LABELS, FUNNEL_STEP_LABELS, TREND_METRIC_LABELS, layer_label

__all__ = [
    "Table",
    "Text",
    "cell",
    "csv_chunks",
    "csv_text",
    "channels_table",
    "cohorts_table",
    "communities_table",
    "decomposition_table",
    "drilldown_table",
    "funnel_table",
    "koc_table",
    "kpi_rows",
    "kpis_table",
    "layers_table",
    "overview_tables",
    "trend_table",
]

DRILLDOWN_CHUNK = 2000


@dataclass(frozen=True)
class Table:
    """One CSV table: the column names and the rows (lists of cells). ``title`` names the table when
    several are written into one file (the overview)."""

    header: list[str]
    rows: Iterable[list[Any]]
    title: str = ""


def _lines(tables: list[Table]) -> Iterator[list[Any]]:
    """The rows of the file: each table's header and rows; several tables are each preceded by their
    title and separated by an empty line."""
    for index, table in enumerate(tables):
        if index:
            yield []
        if len(tables) > 1 and table.title:
            yield [table.title]
        yield table.header
        yield from table.rows


def csv_chunks(tables: Table | Iterable[Table]) -> Iterator[str]:
    """The tables as CSV text (``scrm.csv_writer.csv_chunks``: the BOM first, then a piece per 500
    lines, so that a long table can be streamed)."""
    tables = [tables] if isinstance(tables, Table) else list(tables)
    return csv_writer.csv_chunks(_lines(tables))


def csv_text(tables: Table | Iterable[Table]) -> str:
    return "".join(csv_chunks(tables))


def _no_channel(channel_id: int | None, name: str) -> str:
    return Text(name) if channel_id is not None else _("No channel")


# --- The reports ----------------------------------------------------------------------------------


def kpi_rows(kpis: metrics.Kpis) -> list[tuple[str, str, Any]]:
    """(key, label, value) of every KPI, in the order the overview shows them."""
    labels = [
        ("leads", _("Leads")),
        ("new_customers", _("New customers")),
        ("spend", _("Spend")),
        ("cpl", _("CPL (spend / leads)")),
        ("cac", _("CAC (spend / new customers)")),
        ("revenue", _("Revenue")),
        ("paid_orders", _("Paid orders")),
        ("buyers", _("Buyers")),
        ("aov", _("Average order value")),
        ("leads_revenue", _("Revenue to date of the leads (R)")),
        ("clv", _("CLV (historical, R / leads)")),
        ("roi", _("ROI")),
        ("ltv_cac", _("LTV:CAC")),
        ("repeat_buyers", _("Repeat buyers")),
        ("repurchase_rate", _("Repurchase rate")),
        ("referred_leads", _("Referred leads")),
        ("referrers", _("Referrers")),
        ("k_factor", _("K-factor")),
    ]
    return [(key, label, getattr(kpis, key)) for key, label in labels]


def kpis_table(kpis: metrics.Kpis) -> Table:
    """One row per KPI: metric, value."""
    return Table(
        header=[_("Metric"), _("Value")],
        rows=[[label, value] for _key, label, value in kpi_rows(kpis)],
        title=_("KPIs"),
    )


def cohorts_table(rows: list[metrics.CohortRow]) -> Table:
    """One row per cohort: its month and size, the share active in each month M0 … Mn, then the number
    of active contacts behind each share. Months after the end of the period are empty."""
    months = max((len(row.cells) for row in rows), default=0)
    header = [_("Cohort"), _("Size")]
    header += [f"M{k}" for k in range(months)]
    header += [_("M%(offset)s contacts") % {"offset": k} for k in range(months)]
    return Table(
        header=header,
        rows=[[f"{row.month:%Y-%m}", row.size, *row.cells, *row.counts] for row in rows],
        title=_("Cohort retention"),
    )


def funnel_table(funnel: metrics.Funnel, *, group_by: str | None = None) -> Table:
    """One row per step: the total first (group "All leads"), then each group's steps when grouped."""
    header = [_("Group"), _("Step"), _("Contacts"), _("Step conversion"), _("Overall conversion")]

    def lines(label: Any, steps: list[metrics.FunnelStep]) -> list[list[Any]]:
        return [
            [label, FUNNEL_STEP_LABELS.get(s.key, s.key), s.count, s.step_conversion, s.overall_conversion]
            for s in steps
        ]

    rows = lines(_("All leads"), funnel.total)
    for group in funnel.groups:
        label = _no_channel(group.key, group.label) if group_by == "channel" else group.label
        rows += lines(label, group.steps)
    return Table(header=header, rows=rows, title=_("Funnel"))


def channels_table(rows: list[metrics.ChannelRow]) -> Table:
    return Table(
        header=[
            _("Channel"),
            _("Spend"),
            _("Leads"),
            _("New customers"),
            _("CPL"),
            _("CAC"),
            _("Revenue to date of the leads (R)"),
            _("CLV (historical)"),
            _("ROI"),
            _("LTV:CAC"),
        ],
        rows=[
            [
                _no_channel(row.channel_id, row.channel),
                row.spend,
                row.leads,
                row.new_customers,
                row.cpl,
                row.cac,
                row.revenue,
                row.clv,
                row.roi,
                row.ltv_cac,
            ]
            for row in rows
        ],
        title=_("Channels"),
    )


def _period(first: dt.date, last: dt.date) -> str:
    return f"{first:%Y-%m-%d} – {last:%Y-%m-%d}"


def decomposition_table(
    result: metrics.Decomposition, *, period_a: tuple[dt.date, dt.date], period_b: tuple[dt.date, dt.date]
) -> Table:
    """One row per factor (and the sales they multiply to): its value in A and in B, the change B / A
    and its share of the change in sales."""
    rows: list[list[Any]] = [
        [DECOMPOSITION_FACTOR_LABELS.get(f.key, f.key), f.a, f.b, f.change, f.share] for f in result.factors
    ]
    rows.append([_("Sales"), result.a.sales, result.b.sales, result.sales_change, None])
    return Table(
        header=[
            _("Factor"),
            _("Period A (%(period)s)") % {"period": _period(*period_a)},
            _("Period B (%(period)s)") % {"period": _period(*period_b)},
            _("Change (B / A)"),
            _("Share of the change in sales"),
        ],
        rows=rows,
        title=_("Sales decomposition"),
    )


def layers_table(rows: list[metrics.LayerRow]) -> Table:
    return Table(
        header=[_("Layer"), _("Contacts"), _("Revenue to date"), _("Average spend"), _("Revenue in the period")],
        rows=[
            [layer_label(row.layer), row.contacts, row.revenue, row.average_spend, row.revenue_in_period]
            for row in rows
        ],
        title=_("RFM layers"),
    )


def communities_table(rows: list[metrics.CommunityHealth]) -> Table:
    return Table(
        header=[
            _("Community"),
            _("Members"),
            _("Joins"),
            _("Leaves"),
            _("Active (7 days)"),
            _("Active (30 days)"),
            _("Activity rate"),
            _("Buyers"),
            _("Conversion"),
            _("Revenue"),
        ],
        rows=[
            [
                Text(row.community),
                row.members,
                row.joins,
                row.leaves,
                row.active_7d,
                row.active_30d,
                row.activity_rate,
                row.buyers,
                row.conversion,
                row.revenue,
            ]
            for row in rows
        ],
        title=_("Community health"),
    )


def koc_table(rows: list[metrics.KocRow]) -> Table:
    roles = dict(Membership.Role.choices)
    return Table(
        header=[_("Rank"), _("Contact ID"), _("Name"), _("Referrals"), _("Total spent"), _("Role")],
        rows=[
            [rank, row.contact_id, Text(row.name), row.referrals, row.total_spent, roles.get(row.role, row.role)]
            for rank, row in enumerate(rows, start=1)
        ],
        title=_("KOC ranking"),
    )


def trend_table(points: list[metrics.TrendPoint], *, metric: str, grain: str) -> Table:
    bucket = {"month": _("Month"), "week": _("Week starting"), "day": _("Day")}.get(grain, grain)
    label = TREND_METRIC_LABELS.get(metric, metric)
    return Table(
        header=[bucket, label],
        rows=[[f"{p.bucket:%Y-%m}" if grain == "month" else p.bucket, p.value] for p in points],
        title=_("Trend"),
    )


_DRILLDOWN_FIELDS = (
    "pk",
    "name",
    "phone",
    "channel__name",
    "owner__username",
    "acquired_at",
    "stage",
    "first_purchase_at",
    "last_purchase_at",
    "purchase_count",
    "total_spent",
    "last_interaction_at",
    "referral_count",
)


def _drilldown_rows(contacts: QuerySet[Contact], chunk_size: int) -> Iterator[list[Any]]:
    """Walks the contacts by id (keyset pagination: constant memory, no long-open cursor), one query
    per chunk."""
    stages = dict(Contact.Stage.choices)
    contacts = contacts.order_by("pk")
    last_pk = 0
    while True:
        chunk = list(contacts.filter(pk__gt=last_pk).values_list(*_DRILLDOWN_FIELDS)[:chunk_size])
        if not chunk:
            return
        last_pk = chunk[-1][0]
        for pk, name, phone, channel, owner, acquired, stage, first, last, count, spent, interaction, refs in chunk:
            yield [
                pk,
                Text(name),
                phone,
                Text(channel or ""),
                Text(owner or ""),
                acquired,
                stages.get(stage, stage),
                first,
                last,
                count,
                spent,
                interaction,
                refs,
            ]


def drilldown_table(contacts: QuerySet[Contact], *, chunk_size: int = DRILLDOWN_CHUNK) -> Table:
    """The contacts behind a number (``metrics.drilldown``), in id order; times in the business time
    zone. The rows are read lazily, chunk by chunk, as the CSV is written."""
    return Table(
        header=[
            _("Contact ID"),
            _("Name"),
            _("Phone"),
            _("Channel"),
            _("Owner"),
            _("Acquired at"),
            _("Lifecycle stage"),
            _("First purchase at"),
            _("Last purchase at"),
            _("Paid purchases"),
            _("Total spent"),
            _("Last interaction at"),
            _("Referrals"),
        ],
        rows=_drilldown_rows(contacts, chunk_size),
        title=_("Contacts"),
    )


def overview_tables(result: metrics.Overview, *, group_by: str | None = None) -> list[Table]:
    """The overview page as four tables in one file: KPIs, funnel, channels, cohort retention."""
    return [
        kpis_table(result.kpis),
        funnel_table(result.funnel, group_by=group_by),
        channels_table(result.channels),
        cohorts_table(result.cohorts),
    ]
