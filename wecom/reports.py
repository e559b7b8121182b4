"""Intake figures from the follow relationships: adds, losses (流失: the customer deleted the staff
member), removals (the staff member deleted the customer) and net adds, per day and per channel, live
code or staff member. Two grouped queries whatever the range; the contacts counted are those the user
may see."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db.models import Count, F
from django.db.models.functions import TruncDate

from analytics.metrics.scope import business_timezone

from .models import FollowRelationship

GROUPINGS = {
    "channel": ("contact__channel_id", "contact__channel__name"),
    "live_code": ("live_code_id", "live_code__name"),
    "staff": ("staff_id", "staff__userid"),
}


def _bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    tz = business_timezone()
    return (
        dt.datetime.combine(start, dt.time.min, tzinfo=tz),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz),
    )


def follow_flows(*, user, start: dt.date, end: dt.date, by: str = "channel") -> list[dict]:
    """Rows ``{"day", "key", "label", "adds", "lost", "removed", "net"}`` for the days from ``start`` to
    ``end`` (business time zone) that had any movement, ordered by day and label. ``net`` = adds − lost −
    removed."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {sorted(GROUPINGS)}")
    key, label = GROUPINGS[by]
    since, until = _bounds(start, end)
    tz = business_timezone()
    rows = FollowRelationship.objects.visible_to(user)
    out: dict[tuple, dict] = defaultdict(lambda: {"adds": 0, "lost": 0, "removed": 0})
    labels: dict = {}
    for r in (
        rows.filter(added_at__gte=since, added_at__lt=until)
        .annotate(day=TruncDate("added_at", tzinfo=tz), k=F(key), label=F(label))
        .values("day", "k", "label")
        .annotate(n=Count("id"))
    ):
        out[(r["day"], r["k"])]["adds"] += r["n"]
        labels[r["k"]] = r["label"]
    for r in (
        rows.filter(deleted_at__gte=since, deleted_at__lt=until)
        .annotate(day=TruncDate("deleted_at", tzinfo=tz), k=F(key), label=F(label))
        .values("day", "k", "label", "ended_by")
        .annotate(n=Count("id"))
    ):
        field = "lost" if r["ended_by"] == FollowRelationship.EndedBy.CUSTOMER else "removed"
        out[(r["day"], r["k"])][field] += r["n"]
        labels[r["k"]] = r["label"]
    result = [
        {
            "day": day,
            "key": k,
            "label": labels.get(k) or "",
            **counts,
            "net": counts["adds"] - counts["lost"] - counts["removed"],
        }
        for (day, k), counts in out.items()
    ]
    result.sort(key=lambda r: (r["day"], r["label"], r["key"] or 0))
    return result


def intake_totals(rows: list[dict]) -> list[dict]:
    """The rows summed per key over the range, largest intake first."""
    totals: dict = {}
    for row in rows:
        total = totals.setdefault(
            row["key"], {"key": row["key"], "label": row["label"], "adds": 0, "lost": 0, "removed": 0, "net": 0}
        )
        for field in ("adds", "lost", "removed", "net"):
            total[field] += row[field]
    return sorted(totals.values(), key=lambda t: (-t["adds"], t["label"]))
