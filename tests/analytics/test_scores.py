"""The nightly scores refresh: RFM layers by rule, predictive CLV against analytics.clv on simulated
customers, idempotency and the run claim. (RFM scores on the randomised data set against the
reference computation: test_reference.py.)"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from analytics import clv
from analytics.models import ClvFit, ContactScore, Layer
from analytics.scores import scores_refresh
from analytics.tasks import scores_refresh_nightly
from contacts.models import Contact, Purchase, Touchpoint
from contacts.services import (
    contact_create,
    contact_facts_refresh,
    contact_merge,
    purchase_record,
    purchase_refund,
    touchpoint_record,
)
from tests.analytics import reference as ref

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
AS_OF = dt.date(2025, 6, 30)
_orders = iter(range(1, 10**6))


def at(y: int, m: int, d: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(y, m, d, hour, tzinfo=TZ)


def person(name: str, *amounts_and_times, **values) -> Contact:
    contact = contact_create(name=name, acquired_at=at(2024, 6, 1), **values)
    for when, amount in amounts_and_times:
        purchase_record(
            contact=contact, external_order_id=f"S{next(_orders)}", purchased_at=when, amount=Decimal(amount)
        )
    return contact


def layers() -> dict[str, str]:
    return dict(ContactScore.objects.values_list("contact__name", "layer"))


def test_layers_follow_the_rules_in_order(db):
    person("dormant", (at(2024, 11, 1), "5"), (at(2024, 12, 1), "5"), (at(2024, 12, 20), "5"))  # 192 days ago
    person("core", (at(2025, 5, 1), "1000"), (at(2025, 6, 1), "1000"))
    person("repeat", (at(2025, 5, 2), "10"), (at(2025, 6, 2), "10"))
    person("first-time small", (at(2025, 6, 3), "50"))
    person("first-time big", (at(2025, 1, 3), "500"))
    replied = person("replied")
    touchpoint_record(contact=replied, medium="chat", kind=Touchpoint.Kind.MESSAGE_IN, occurred_at=at(2025, 2, 1))
    person("keen", intent_level=Contact.IntentLevel.HIGH)
    messaged = person("only messaged by us")
    touchpoint_record(contact=messaged, medium="chat", kind=Touchpoint.Kind.MESSAGE_OUT, occurred_at=at(2025, 2, 1))
    refunded = person("refunded", (at(2025, 3, 1), "80"))
    purchase_refund(purchase=refunded.purchases.get())
    person("buys later", (at(2025, 7, 1), "30"))
    late_reply = person("replies later")
    touchpoint_record(contact=late_reply, medium="chat", kind=Touchpoint.Kind.COMMENT, occurred_at=at(2025, 7, 2))

    run = scores_refresh(as_of=AS_OF)

    assert run.status == ClvFit.Status.DONE and run.contacts_scored == 11
    assert layers() == {
        "dormant": Layer.DORMANT,
        "core": Layer.CORE,
        "repeat": Layer.REPEAT,
        "first-time small": Layer.FIRST_TIME,
        "first-time big": Layer.FIRST_TIME,
        "replied": Layer.INTENT_ONLY,
        "keen": Layer.INTENT_ONLY,
        "only messaged by us": Layer.NONE,
        "refunded": Layer.NONE,
        "buys later": Layer.NONE,
        "replies later": Layer.NONE,
    }
    scores = {s.contact.name: s for s in ContactScore.objects.select_related("contact")}
    dormant, core = scores["dormant"], scores["core"]
    assert (dormant.r_score, dormant.f_score, dormant.m_score, dormant.recency_days) == (1, 5, 1, 192)
    assert (core.m_score, core.frequency, core.monetary, core.recency_days) == (5, 2, Decimal("1000") * 2, 29)
    assert scores["first-time small"].r_score == 5
    assert scores["replied"].r_score is None and scores["replied"].predicted_clv is None
    assert not run.converged and "too few customers" in run.message


def test_the_dormant_threshold_is_a_parameter(db):
    person("quiet", (at(2025, 3, 1), "5"))
    scores_refresh(as_of=AS_OF, dormant_days=90)
    assert layers() == {"quiet": Layer.DORMANT}
    scores_refresh(as_of=AS_OF, dormant_days=180)
    assert layers() == {"quiet": Layer.FIRST_TIME}


def test_running_the_refresh_twice_gives_the_same_scores(db):
    for i in range(12):
        person(f"c{i}", *((at(2025, 1 + (i + k) % 6, 1 + i), f"{10 * (i + 1)}") for k in range(i % 4)))
    fields = [f.name for f in ContactScore._meta.fields if f.name != "computed_at"]
    first = scores_refresh(as_of=AS_OF)
    before = list(ContactScore.objects.order_by("pk").values(*fields))
    second = scores_refresh(as_of=AS_OF)
    assert list(ContactScore.objects.order_by("pk").values(*fields)) == before
    assert first.pk != second.pk and ClvFit.objects.filter(status=ClvFit.Status.DONE).count() == 2


def test_a_refresh_while_another_one_runs_does_nothing(db):
    person("c", (at(2025, 6, 1), "10"))
    ClvFit.objects.create(as_of=AS_OF, horizon_days=365, dormant_days=180, started_at=timezone.now())
    assert scores_refresh(as_of=AS_OF) is None
    assert scores_refresh_nightly() == {"skipped": True}
    assert not ContactScore.objects.exists()


def test_a_claim_left_by_a_dead_run_is_released(db):
    person("c", (at(2025, 6, 1), "10"))
    dead = ClvFit.objects.create(
        as_of=AS_OF, horizon_days=365, dormant_days=180, started_at=timezone.now() - dt.timedelta(hours=3)
    )
    run = scores_refresh(as_of=AS_OF)
    dead.refresh_from_db()
    assert dead.status == ClvFit.Status.FAILED and "Abandoned" in dead.message
    assert run.status == ClvFit.Status.DONE and ContactScore.objects.count() == 1


def test_merged_contacts_lose_their_score(db):
    primary = person("primary", (at(2025, 6, 1), "10"))
    duplicate = person("duplicate", (at(2025, 6, 2), "10"))
    scores_refresh(as_of=AS_OF)
    contact_merge(primary=primary, duplicate=duplicate)
    scores_refresh(as_of=AS_OF)
    assert layers() == {"primary": Layer.REPEAT}


def test_the_nightly_task_runs_the_refresh_for_today(db):
    person("c", (timezone.now() - dt.timedelta(days=1), "10"))
    result = scores_refresh_nightly()
    assert result["status"] == ClvFit.Status.DONE and result["contacts"] == 1 and not result["skipped"]
    assert ClvFit.objects.get().as_of == timezone.localdate()


def test_an_empty_database_is_scored_without_error(db):
    run = scores_refresh(as_of=AS_OF)
    assert run.status == ClvFit.Status.DONE and run.customers == 0 and run.contacts_scored == 0
    assert not run.converged and "BG/NBD not fitted" in run.message


# --- predictive CLV ------------------------------------------------------------------------------------

# CDNOW's published BG/NBD parameters with alpha in days, and its Gamma-Gamma parameters.
R, ALPHA, A, B = 0.243, 4.414 * 7, 0.793, 2.426
P, Q, GAMMA = 6.25, 3.74, 15.44


def _simulate_customers(n: int, seed: int) -> None:
    """Customers drawn from BG/NBD + Gamma-Gamma, first purchases over the 700 days before AS_OF, stored
    as contacts and paid purchases (a few bought again on the same day, a few purchases come after
    AS_OF, a few are refunded); the facts are then refreshed through the service."""
    rng = np.random.default_rng(seed)
    contacts = Contact.objects.bulk_create(
        [Contact(name=f"sim{i}", acquired_at=at(2023, 6, 1)) for i in range(n)], batch_size=500
    )
    purchases = []
    for contact in contacts:
        rate, dropout, nu = rng.gamma(R, 1 / ALPHA), rng.beta(A, B), rng.gamma(Q, 1 / GAMMA)
        age = int(rng.integers(1, 700))
        first = at(2025, 6, 30) - dt.timedelta(days=age)
        offsets, t = [0.0], 0.0
        while True:
            t += rng.exponential(1 / rate)
            if t > age + 60:
                break
            offsets.append(t)
            if rng.random() < dropout:
                break
        for offset in offsets:
            amount = Decimal(f"{max(rng.gamma(P, 1 / nu), 0.01):.2f}")
            status = Purchase.Status.REFUNDED if rng.random() < 0.03 and offset else Purchase.Status.PAID
            purchases.append(
                Purchase(
                    contact=contact,
                    external_order_id=f"SIM{len(purchases)}",
                    purchased_at=first + dt.timedelta(days=offset),
                    amount=amount,
                    status=status,
                )
            )
    Purchase.objects.bulk_create(purchases, batch_size=1000)
    contact_facts_refresh(contact_ids=[c.pk for c in contacts])


def test_predictive_clv_is_the_models_on_the_customers_summaries(db):
    _simulate_customers(600, seed=11)
    run = scores_refresh(as_of=AS_OF, horizon_days=365)
    assert run.converged, run.message
    assert run.bgnbd_converged and run.gamma_gamma_converged

    inputs = ref.clv_inputs(ref.Rows.load(), as_of=AS_OF)
    ids = sorted(inputs)
    x, t_x, T, m_x = (np.array([inputs[pk][i] for pk in ids]) for i in range(4))
    assert run.customers == len(ids) and run.repeat_customers == int((x > 0).sum())
    bgnbd = clv.bgnbd_fit(x, t_x, T)
    spend_fit = clv.gamma_gamma_fit(x, m_x)
    for stored, fitted in (
        ((run.r, run.alpha, run.a, run.b), (bgnbd.params.r, bgnbd.params.alpha, bgnbd.params.a, bgnbd.params.b)),
        ((run.p, run.q, run.gamma), (spend_fit.params.p, spend_fit.params.q, spend_fit.params.gamma)),
    ):
        assert stored == pytest.approx(fitted, rel=1e-6)
    # The fit finds the generating parameters again, roughly (600 customers).
    assert run.r == pytest.approx(R, rel=0.5) and run.alpha == pytest.approx(ALPHA, rel=0.6)

    params = clv.BGNBDParams(run.r, run.alpha, run.a, run.b)
    spend_params = clv.GammaGammaParams(run.p, run.q, run.gamma)
    purchases = clv.bgnbd_conditional_expected_purchases(params, 365, x, t_x, T)
    alive = clv.bgnbd_probability_alive(params, x, t_x, T)
    spend = clv.gamma_gamma_conditional_expected_spend(spend_params, x, m_x)
    value = clv.predicted_clv(params, spend_params, x, t_x, T, m_x, months=12, time_unit="days")
    stored = {s.contact_id: s for s in ContactScore.objects.filter(contact_id__in=ids)}
    for index, pk in enumerate(ids):
        score = stored[pk]
        assert score.predicted_purchases == pytest.approx(purchases[index], rel=1e-6, abs=1e-9)
        assert score.p_alive == pytest.approx(alive[index], rel=1e-6, abs=1e-9)
        assert score.predicted_spend == pytest.approx(Decimal(f"{spend[index]:.2f}"), abs=Decimal("0.01"))
        assert float(score.predicted_clv) == pytest.approx(purchases[index] * spend[index], abs=0.011)
        # Horizon 365 days vs 12 average months (365.24 days): the same forecast within 0.1 %.
        assert float(score.predicted_clv) == pytest.approx(value[index], rel=2e-3, abs=0.011)
    assert ContactScore.objects.filter(predicted_clv__isnull=True).count() == 0
    best = ContactScore.objects.order_by("-predicted_clv").first()
    assert best.predicted_clv == max(s.predicted_clv for s in stored.values())
