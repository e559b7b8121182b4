"""The numbers managers steer by, exactly as defined in docs/metrics.md.

Every metric is a handful of set-based queries through the ORM (aggregate, annotate, Subquery, window
and date-truncation functions in the business time zone); nothing loops over contacts in Python.
Where the definitions allow it the queries read the denormalised facts on ``Contact``
(``first_purchase_at``, ``purchase_count``, ``total_spent``, ``last_interaction_at``,
``referral_count``) instead of joining purchases and touchpoints. The retention matrices read the
months that are over from a nightly rollup (``CohortActivity``, ``analytics.rollups``) and query only
the open months live.

Conventions of the results:

* Money is ``Decimal`` rounded to cents (half up); ratios are ``float`` rounded to 4 places (half up).
  Both are rounded once, here, from exact intermediate values (``Fraction``), so a ratio of two
  rounded numbers is never what is shown.
* A division by zero, or a metric built on spend when spend cannot be attributed (``owner`` or
  ``community`` filter), is ``None``.
* ``Filters.user`` is the person asking: operators get numbers over their own contacts only
  (``Contact.objects.visible_to``). ``user=None`` means an unscoped system read (tasks, benchmarks) and must
  never be passed on behalf of a request.

The modules, each one part of docs/metrics.md: ``scope`` (``Filters``, the business calendar, which contacts
a report counts), ``numbers`` (rounding), ``queries`` (the building blocks shared within one report), then
one module per report — ``headline`` (KPIs), ``channels``, ``funnels``, ``cohorts``, ``decomposition``,
``layers``, ``communities`` (health and KOC), ``trends``, ``drilldowns`` and ``overviews``. Callers use
this package (``from analytics import metrics``; ``metrics.funnel(filters)``), not the modules.
"""

from __future__ import annotations

from .channels import ChannelRow, channel_table
from .cohorts import (
    MAX_COHORT_MONTHS,
    CohortBy,
    CohortRow,
    CohortView,
    PartialMonth,
    activity_rows,
    cohort_retention,
    partial_month,
)
from .communities import CommunityHealth, KocRow, community_health, koc_ranking
from .decomposition import (
    DECOMPOSITION_FACTORS,
    REACH,
    Contribution,
    Decomposition,
    DecompositionFactor,
    DecompositionPeriod,
    cents_adding_up_to,
    decomposition_factors,
    lmdi_contributions,
    sales_change_contributions,
    sales_decomposition,
)
from .drilldowns import DRILLDOWN_METRICS, drilldown
from .funnels import Funnel, FunnelGroup, FunnelGroupBy, FunnelStep, funnel
from .headline import Kpis, kpis
from .layers import LAYER_ORDER, LayerRow, rfm_layers
from .numbers import divide, money, ratio
from .overviews import Overview, overview
from .queries import FUNNEL_STEPS
from .scope import (
    PAID,
    Filters,
    add_months,
    business_timezone,
    contact_scope_q,
    day_start,
    month_start,
    month_trunc,
    months_between,
    parse_month,
    scoped_contacts,
    user_scope_q,
)
from .trends import (
    CUT,
    FUTURE,
    TO_DATE,
    TREND_METRICS,
    BucketSpan,
    Grain,
    TrendPoint,
    bucket_last_day,
    bucket_spans,
    trend,
)

__all__ = [
    "CUT",
    "FUTURE",
    "TO_DATE",
    "BucketSpan",
    "PartialMonth",
    "bucket_last_day",
    "bucket_spans",
    "partial_month",
    "DECOMPOSITION_FACTORS",
    "DRILLDOWN_METRICS",
    "FUNNEL_STEPS",
    "LAYER_ORDER",
    "MAX_COHORT_MONTHS",
    "PAID",
    "REACH",
    "TREND_METRICS",
    "ChannelRow",
    "CohortBy",
    "CohortRow",
    "CohortView",
    "CommunityHealth",
    "Contribution",
    "Decomposition",
    "DecompositionFactor",
    "DecompositionPeriod",
    "Filters",
    "Funnel",
    "FunnelGroup",
    "FunnelGroupBy",
    "FunnelStep",
    "Grain",
    "KocRow",
    "Kpis",
    "LayerRow",
    "Overview",
    "TrendPoint",
    "activity_rows",
    "add_months",
    "business_timezone",
    "cents_adding_up_to",
    "channel_table",
    "cohort_retention",
    "community_health",
    "contact_scope_q",
    "day_start",
    "decomposition_factors",
    "divide",
    "drilldown",
    "funnel",
    "koc_ranking",
    "kpis",
    "lmdi_contributions",
    "money",
    "month_start",
    "month_trunc",
    "months_between",
    "overview",
    "parse_month",
    "ratio",
    "rfm_layers",
    "sales_change_contributions",
    "sales_decomposition",
    "scoped_contacts",
    "trend",
    "user_scope_q",
]
