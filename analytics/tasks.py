"""Celery entry points for analytics. Each task calls one service."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import rollups, scores


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=60, retry_backoff_max=900, max_retries=3)
def scores_refresh_nightly() -> dict[str, object]:
    """Recompute every contact's RFM layer and predictive CLV (run nightly from beat). Safe to run twice,
    even at once: a second run finds the claim taken and does nothing, a later one rewrites the same
    scores."""
    run = scores.scores_refresh()
    if run is None:
        return {"skipped": True}
    return {
        "skipped": False,
        "fit": run.pk,
        "status": run.status,
        "contacts": run.contacts_scored,
        "customers": run.customers,
        "converged": run.converged,
        "seconds": round(run.seconds or 0, 1),
    }


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=60, retry_backoff_max=900, max_retries=3)
def cohort_rollup_refresh_nightly() -> dict[str, object]:
    """Rebuild the materialised retention matrices (run nightly from beat, after midnight so that the
    month that just ended is in them). Running it twice, even at once, leaves the same cells."""
    return {"cells": rollups.cohort_rollup_refresh()}
