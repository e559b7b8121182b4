"""The funnel of the leads of a period, in total and per channel or acquisition month."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db.models import DateField
from django.db.models.functions import Trunc

from contacts.models import Channel

from .numbers import divide, ratio
from .queries import FUNNEL_STEPS, ReportQueries, funnel_aggregates
from .scope import Filters, business_timezone, in_period

FunnelGroupBy = Literal["channel", "cohort"] | None


@dataclass(frozen=True)
class FunnelStep:
    key: str
    count: int
    step_conversion: float | None
    overall_conversion: float | None


@dataclass(frozen=True)
class FunnelGroup:
    """The funnel of one group: ``key`` is the channel id (None = no channel) or the cohort month."""

    key: Any
    label: str
    steps: list[FunnelStep]


@dataclass(frozen=True)
class Funnel:
    total: list[FunnelStep]
    groups: list[FunnelGroup] = field(default_factory=list)


def funnel_of(queries: ReportQueries, group_by: FunnelGroupBy = None) -> Funnel:
    """The funnel from a report's shared queries (one more query with ``group_by="cohort"``)."""
    total = funnel_steps({step: queries.total(step) for step in FUNNEL_STEPS})
    if group_by is None:
        return Funnel(total=total)
    if group_by == "channel":
        names = dict(Channel.objects.values_list("pk", "name"))
        groups = [
            FunnelGroup(
                key=row["channel_id"],
                label=names.get(row["channel_id"], "") if row["channel_id"] is not None else "",
                steps=funnel_steps(row),
            )
            for row in queries.leads_by_channel
        ]
        groups.sort(key=lambda g: (g.key is None, g.label, g.key or 0))
        return Funnel(total=total, groups=groups)
    if group_by == "cohort":
        rows = (
            queries.contacts.filter(in_period("acquired_at", queries.filters))
            .annotate(month=Trunc("acquired_at", "month", output_field=DateField(), tzinfo=business_timezone()))
            .values("month")
            .annotate(**funnel_aggregates())
            .order_by("month")
        )
        groups = [FunnelGroup(key=row["month"], label=f"{row['month']:%Y-%m}", steps=funnel_steps(row)) for row in rows]
        return Funnel(total=total, groups=groups)
    raise ValidationError({"group_by": ["Group the funnel by channel or cohort."]})


def funnel_steps(counts: dict[str, int]) -> list[FunnelStep]:
    """The steps with their conversions, from the count of each step."""
    leads = counts["leads"]
    steps, previous = [], None
    for step in FUNNEL_STEPS:
        count = counts[step]
        steps.append(
            FunnelStep(
                key=step,
                count=count,
                step_conversion=ratio(divide(count, previous)) if previous is not None else None,
                overall_conversion=ratio(divide(count, leads)),
            )
        )
        previous = count
    return steps


def funnel(filters: Filters, *, group_by: FunnelGroupBy = None) -> Funnel:
    """The strictly nested funnel of the leads of P (facts to date), in total and per channel or per
    acquisition month. One query (two with ``group_by="cohort"``)."""
    return funnel_of(ReportQueries(filters), group_by)
