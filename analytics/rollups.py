"""Materialised rollups that make the reports fast at a million contacts.

``CohortActivity`` holds the retention matrices (docs/metrics.md, "Cohort retention") per cohort month,
acquisition channel and owner: the distinct live contacts of each slice active in each calendar month,
and the slice's size. ``metrics.cohort_retention`` reads it for the months that were over when it was
built and queries the rest live, so a report is never staler than the last build for past months and
exact for the current one.
"""

from __future__ import annotations

import logging
import time

from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from contacts.models import Contact

from .metrics import activity_rows, month_trunc, months_between
from .models import CohortActivity

logger = logging.getLogger(__name__)

_COHORT_FIELDS = {
    CohortActivity.By.ACQUISITION: "acquired_at",
    CohortActivity.By.FIRST_PURCHASE: "first_purchase_at",
}


def cohort_rollup_rows(*, refreshed_at) -> list[CohortActivity]:
    """Every cell of every slice, computed from the rows: per cohort kind, one query for the sizes and
    one per view for the activity (grouped by cohort month, month, channel and owner)."""
    rows: list[CohortActivity] = []
    for by, field_name in _COHORT_FIELDS.items():
        sizes = (
            Contact.objects.live()
            .filter(**{f"{field_name}__isnull": False})
            .annotate(cohort=month_trunc(field_name))
            .values("cohort", "channel_id", "owner_id")
            .annotate(n=Count("pk"))
            .order_by()
        )
        rows.extend(
            CohortActivity(
                by=by,
                kind=CohortActivity.Kind.SIZE,
                cohort_month=row["cohort"],
                month=row["cohort"],
                channel_id=row["channel_id"],
                owner_id=row["owner_id"],
                contacts=row["n"],
                refreshed_at=refreshed_at,
            )
            for row in sizes
        )
        live = Q(contact__merged_into__isnull=True) & Q(**{f"contact__{field_name}__isnull": False})
        for kind in (CohortActivity.Kind.PURCHASE, CohortActivity.Kind.ENGAGEMENT):
            cells = (
                activity_rows(kind, contact_q=live)
                .annotate(cohort=month_trunc(f"contact__{field_name}"))
                .values("cohort", "month", "contact__channel_id", "contact__owner_id")
                .annotate(n=Count("contact_id", distinct=True))
                .order_by()
            )
            rows.extend(
                CohortActivity(
                    by=by,
                    kind=kind,
                    cohort_month=row["cohort"],
                    month=row["month"],
                    channel_id=row["contact__channel_id"],
                    owner_id=row["contact__owner_id"],
                    contacts=row["n"],
                    refreshed_at=refreshed_at,
                )
                for row in cells
                if months_between(row["cohort"], row["month"]) >= 0
            )
    return rows


def cohort_rollup_refresh() -> int:
    """Rebuild ``CohortActivity`` from the rows; return the number of cells. The cells are computed
    first, then swapped in one short transaction; on PostgreSQL the table is locked against a second
    refresh for the swap (readers are not blocked), so two refreshes at once leave one consistent set."""
    started = time.perf_counter()
    refreshed_at = timezone.now()
    rows = cohort_rollup_rows(refreshed_at=refreshed_at)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {CohortActivity._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        CohortActivity.objects.all().delete()
        CohortActivity.objects.bulk_create(rows, batch_size=5000)
    logger.info("cohort_rollup_refresh: %d cells in %.1f s", len(rows), time.perf_counter() - started)
    return len(rows)
