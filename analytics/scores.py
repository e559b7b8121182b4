"""The nightly scores refresh: RFM scores and layers (用户分层) and the predictive CLV of every live
contact, written into ``ContactScore``, with the model fit recorded in ``ClvFit``.

Definitions: docs/metrics.md ("RFM layers", "Predictive CLV") and docs/predictive-clv.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Iterator
from decimal import Decimal
from itertools import islice
from typing import Any

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, Exists, F, FloatField, Max, OuterRef, Q, Sum, Value, When, Window
from django.db.models.functions import Cast, Ntile, TruncDate
from django.utils import timezone

from contacts.models import Contact, Purchase, Touchpoint

from . import clv
from .metrics import business_timezone, day_start
from .models import ClvFit, ContactScore, Layer

logger = logging.getLogger(__name__)

PAID = Purchase.Status.PAID
WRITE_BATCH = 2000
STREAM_CHUNK = 50_000
#: A run still marked running after this long died without saying so (the task time limit is 1 h).
RUN_LEASE = dt.timedelta(hours=2)
_SCORE_FIELDS = (
    "r_score",
    "f_score",
    "m_score",
    "recency_days",
    "frequency",
    "monetary",
    "layer",
    "predicted_purchases",
    "predicted_spend",
    "predicted_clv",
    "p_alive",
    "as_of",
    "computed_at",
)


def _run_claim(*, as_of: dt.date, dormant_days: int, horizon_days: int) -> ClvFit | None:
    """Create the run's row as RUNNING, or return None when another run holds the claim (the partial
    unique constraint admits one running row). A claim older than the lease is released first."""
    now = timezone.now()
    ClvFit.objects.filter(status=ClvFit.Status.RUNNING, started_at__lt=now - RUN_LEASE).update(
        status=ClvFit.Status.FAILED, message="Abandoned: the run did not finish within its lease.", computed_at=now
    )
    try:
        with transaction.atomic():
            return ClvFit.objects.create(
                status=ClvFit.Status.RUNNING,
                as_of=as_of,
                dormant_days=dormant_days,
                horizon_days=horizon_days,
                started_at=now,
            )
    except IntegrityError:
        return None


class _WindowOverAggregates(Window):
    """A window function over the groups of an aggregate query. Django counts a plain ``Window`` as a
    non-aggregate select expression and adds it to GROUP BY, which no database accepts; flagged as
    aggregate it stays out of GROUP BY and is evaluated after the grouping, as SQL defines."""

    contains_aggregate = True


def rfm_rows(*, as_of: dt.date, dormant_days: int = 180) -> list[dict[str, Any]]:
    """Per customer (live contact with ≥ 1 paid purchase up to the end of ``as_of``): last purchase day
    (business time zone), F = paid purchases, M = paid spend, the three NTILE(5) scores (R reversed so
    recent = 5; ties broken by contact id so the result is deterministic) and the layer. One query."""
    end = day_start(as_of + dt.timedelta(days=1))
    tz = business_timezone()
    dormant_before = as_of - dt.timedelta(days=dormant_days)

    def ntile(expression) -> Window:
        return _WindowOverAggregates(expression=Ntile(5), order_by=[expression.asc(), F("contact_id").asc()])

    last_day = TruncDate(Max("purchased_at"), tzinfo=tz)
    return list(
        Purchase.objects.filter(status=PAID, purchased_at__lt=end, contact__merged_into__isnull=True)
        .values("contact_id")
        .annotate(
            frequency=Count("pk"),
            monetary=Sum("amount"),
            last_day=last_day,
            r_score=ntile(last_day),
            f_score=ntile(Count("pk")),
            m_score=ntile(Sum("amount")),
        )
        .annotate(
            layer=Case(
                When(last_day__lt=dormant_before, then=Value(Layer.DORMANT)),
                When(frequency__gte=2, m_score=5, then=Value(Layer.CORE)),
                When(frequency__gte=2, then=Value(Layer.REPEAT)),
                default=Value(Layer.FIRST_TIME),
            )
        )
        .values("contact_id", "frequency", "monetary", "last_day", "r_score", "f_score", "m_score", "layer")
        .order_by("contact_id")
    )


def non_customer_rows(*, as_of: dt.date) -> list[tuple[int, str]]:
    """(contact id, layer) of the live contacts without a paid purchase up to the end of ``as_of``:
    intent-only when engaged (an inbound touchpoint by then) or of medium/high intent, else none."""
    end = day_start(as_of + dt.timedelta(days=1))
    paid = Purchase.objects.filter(contact_id=OuterRef("pk"), status=PAID, purchased_at__lt=end)
    inbound = Touchpoint.objects.filter(contact_id=OuterRef("pk"), occurred_at__lt=end).exclude(
        kind__in=Touchpoint.OUTBOUND_KINDS
    )
    # last_interaction_at is the latest inbound touchpoint: when it is before the end there is one; when
    # it is later, the index on (contact, occurred_at) answers whether there was an earlier one.
    engaged = Q(last_interaction_at__lt=end) | (Q(last_interaction_at__gte=end) & Exists(inbound))
    intent = Q(intent_level__in=[Contact.IntentLevel.MEDIUM, Contact.IntentLevel.HIGH])
    return list(
        Contact.objects.live()
        .filter(~Exists(paid))
        .annotate(layer=Case(When(engaged | intent, then=Value(Layer.INTENT_ONLY)), default=Value(Layer.NONE)))
        .order_by("pk")
        .values_list("pk", "layer")
    )


def clv_summary(*, as_of: dt.date) -> clv.RFMSummary:
    """(x, t_x, T, m_x) in days for every customer, by ``clv.rfm_summary``'s exact definitions: the paid
    purchases of live contacts up to the end of ``as_of`` are streamed (contact, local day, amount) and
    summarised in NumPy."""
    end = day_start(as_of + dt.timedelta(days=1))
    rows = (
        Purchase.objects.filter(status=PAID, purchased_at__lt=end, contact__merged_into__isnull=True)
        .annotate(day=TruncDate("purchased_at", tzinfo=business_timezone()), value=Cast("amount", FloatField()))
        .order_by()
        .values_list("contact_id", "day", "value")
    )
    ids: list[np.ndarray] = []
    days: list[np.ndarray] = []
    amounts: list[np.ndarray] = []
    chunk: list[tuple[int, dt.date, float]] = []

    def flush() -> None:
        if chunk:
            contact_ids, dates, values = zip(*chunk, strict=True)
            ids.append(np.array(contact_ids, dtype=np.int64))
            days.append(np.array(dates, dtype="datetime64[D]"))
            amounts.append(np.array(values, dtype=np.float64))
            chunk.clear()

    # Packed into arrays chunk by chunk: three million purchases as Python objects would take gigabytes.
    for row in rows.iterator(chunk_size=STREAM_CHUNK):
        chunk.append(row)
        if len(chunk) == STREAM_CHUNK:
            flush()
    flush()
    return clv.rfm_summary(
        np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64),
        np.concatenate(days) if days else np.zeros(0, dtype="datetime64[D]"),
        np.concatenate(amounts) if amounts else np.zeros(0),
        observation_end=as_of,
        time_unit="days",
    )


def _fit_and_predict(summary: clv.RFMSummary, *, run: ClvFit, horizon_days: int) -> dict[str, np.ndarray | None]:
    """Fit BG/NBD and Gamma-Gamma, record the fits on ``run`` and return the per-customer predictions
    (aligned with ``summary.customer_ids``); a part whose fit is unusable is None."""
    x, t_x, T, m_x = summary.x, summary.t_x, summary.T, summary.m_x
    run.customers = len(x)
    run.repeat_customers = int(np.sum(x > 0))
    messages = []
    predictions: dict[str, np.ndarray | None] = {"purchases": None, "p_alive": None, "spend": None}
    try:
        bgnbd = clv.bgnbd_fit(x, t_x, T)
    except ValueError as exc:
        messages.append(f"BG/NBD not fitted: {exc}")
    else:
        params = bgnbd.params
        run.r, run.alpha, run.a, run.b = params.r, params.alpha, params.a, params.b
        run.bgnbd_log_likelihood, run.bgnbd_converged = bgnbd.log_likelihood, bgnbd.converged
        if bgnbd.converged:
            try:
                predictions["purchases"] = clv.bgnbd_conditional_expected_purchases(params, horizon_days, x, t_x, T)
                predictions["p_alive"] = clv.bgnbd_probability_alive(params, x, t_x, T)
            except ArithmeticError as exc:
                # A degenerate optimum (e.g. a -> 0, b -> infinity on data where nobody seems to drop out)
                # can be "converged" and still not forecast; the fit is then not used.
                predictions["purchases"] = predictions["p_alive"] = None
                messages.append(f"BG/NBD forecast failed: {exc}")
        else:
            messages.append(f"BG/NBD did not converge: {bgnbd.message}")
    try:
        # Repeat buyers whose repeat orders were all free carry no spend information (docs/predictive-clv.md).
        spend_fit = clv.gamma_gamma_fit(np.where(m_x > 0, x, 0), m_x)
    except ValueError as exc:
        messages.append(f"Gamma-Gamma not fitted: {exc}")
    else:
        params = spend_fit.params
        run.p, run.q, run.gamma = params.p, params.q, params.gamma
        run.gamma_gamma_log_likelihood, run.gamma_gamma_converged = spend_fit.log_likelihood, spend_fit.converged
        if not spend_fit.converged:
            messages.append(f"Gamma-Gamma did not converge: {spend_fit.message}")
        elif params.q <= 1:
            messages.append(f"Gamma-Gamma q = {params.q:.4g} <= 1: the mean spend is infinite.")
        else:
            predictions["spend"] = clv.gamma_gamma_conditional_expected_spend(params, x, m_x)
    run.converged = predictions["purchases"] is not None and predictions["spend"] is not None
    run.message = " ".join(messages)
    return predictions


def _money(value: float) -> Decimal | None:
    return Decimal(f"{value:.2f}") if np.isfinite(value) else None


def _float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _write(scores: Iterable[ContactScore]) -> None:
    """Upsert the rows in batches, one short transaction each, never holding them all in memory."""
    scores = iter(scores)
    while batch := list(islice(scores, WRITE_BATCH)):
        with transaction.atomic():
            ContactScore.objects.bulk_create(
                batch, update_conflicts=True, unique_fields=["contact"], update_fields=list(_SCORE_FIELDS)
            )


def _customer_scores(
    customers: list[dict[str, Any]],
    summary: clv.RFMSummary,
    predictions: dict[str, np.ndarray | None],
    *,
    as_of: dt.date,
    computed_at: dt.datetime,
) -> Iterator[ContactScore]:
    """The customers' rows: RFM from SQL, predictions looked up by contact id in the summary."""
    ids = np.fromiter((row["contact_id"] for row in customers), dtype=np.int64, count=len(customers))
    known = summary.customer_ids
    index = np.searchsorted(known, ids)
    if len(known):
        found = (index < len(known)) & (known[np.minimum(index, len(known) - 1)] == ids)
    else:
        found = np.zeros(len(ids), dtype=bool)

    def pick(key: str, position: int) -> float | None:
        values = predictions[key]
        return None if values is None or not found[position] else float(values[index[position]])

    for position, row in enumerate(customers):
        purchases, spend, alive = pick("purchases", position), pick("spend", position), pick("p_alive", position)
        yield ContactScore(
            contact_id=row["contact_id"],
            r_score=row["r_score"],
            f_score=row["f_score"],
            m_score=row["m_score"],
            recency_days=(as_of - row["last_day"]).days,
            frequency=row["frequency"],
            monetary=row["monetary"],
            layer=row["layer"],
            predicted_purchases=_float(purchases) if purchases is not None else None,
            predicted_spend=_money(spend) if spend is not None else None,
            predicted_clv=_money(purchases * spend) if purchases is not None and spend is not None else None,
            p_alive=_float(alive) if alive is not None else None,
            as_of=as_of,
            computed_at=computed_at,
        )


def scores_refresh(*, as_of: dt.date | None = None, dormant_days: int = 180, horizon_days: int = 365) -> ClvFit | None:
    """Recompute every live contact's RFM scores, layer and predictive CLV as of ``as_of`` (default: today
    in the business time zone) and store them; return the run's ``ClvFit`` row, or None when another run
    is in progress (beat fired twice). Running it again gives the same scores.

    RFM scores and layers come from one SQL query with NTILE window functions; the CLV models are fitted
    on all customers' paid purchases (time in days) and predict, per customer, the expected paid purchase
    days in the next ``horizon_days`` days, the expected spend per purchase, their product (predicted
    CLV, undiscounted) and P(alive). Rows are upserted in batches; rows of contacts that are no longer
    live (merged) are removed.
    """
    as_of = as_of or timezone.localdate()
    run = _run_claim(as_of=as_of, dormant_days=dormant_days, horizon_days=horizon_days)
    if run is None:
        logger.info("scores_refresh: another run is in progress; nothing to do")
        return None
    started = time.perf_counter()
    try:
        computed_at = timezone.now()
        customers = rfm_rows(as_of=as_of, dormant_days=dormant_days)
        summary = clv_summary(as_of=as_of)
        predictions = _fit_and_predict(summary, run=run, horizon_days=horizon_days)
        _write(_customer_scores(customers, summary, predictions, as_of=as_of, computed_at=computed_at))
        others = non_customer_rows(as_of=as_of)
        _write(
            ContactScore(contact_id=pk, layer=layer, frequency=0, monetary=0, as_of=as_of, computed_at=computed_at)
            for pk, layer in others
        )
        # Every live contact's row was just written: older rows belong to merged contacts.
        ContactScore.objects.filter(computed_at__lt=computed_at).delete()
        run.contacts_scored = len(customers) + len(others)
        run.status = ClvFit.Status.DONE
    except Exception as exc:
        run.status = ClvFit.Status.FAILED
        run.message = f"{run.message} Failed: {exc!r}".strip()
        raise
    finally:
        run.computed_at = timezone.now()
        run.seconds = time.perf_counter() - started
        run.save()
    return run
