"""The overview page's report: KPIs, cohort retention, funnel and channel table, sharing queries."""

from __future__ import annotations

from dataclasses import dataclass

from .channels import ChannelRow, channel_rows
from .cohorts import CohortRow, cohort_retention
from .funnels import Funnel, funnel_of
from .headline import Kpis, kpis_of
from .queries import ReportQueries
from .scope import Filters


@dataclass(frozen=True)
class Overview:
    kpis: Kpis
    cohorts: list[CohortRow]
    funnel: Funnel
    channels: list[ChannelRow]


def overview(filters: Filters) -> Overview:
    """Everything the overview page shows, sharing queries: KPIs, the 12 × 12 acquisition-cohort
    purchase-retention matrix, the funnel and the channel table (at most nine queries)."""
    queries = ReportQueries(filters)
    return Overview(
        kpis=kpis_of(queries),
        cohorts=cohort_retention(filters),
        funnel=funnel_of(queries),
        channels=channel_rows(queries),
    )
