"""Every metric of analytics.metrics and the RFM scores of analytics.scores, on a randomised (seeded)
data set, against the independent computations of tests/analytics/reference.py.

The data set (tests/analytics/conftest.py) has several channels with spend ranges crossing month
boundaries, purchases at 23:30 and 00:10 around month ends, same-day and free orders, refunds,
purchases made before the contact was acquired, inbound and outbound touchpoints, referrals,
memberships that end, merged and erased contacts, and contacts of two operators.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from fractions import Fraction

import pytest

from analytics import metrics
from analytics.models import ContactScore
from analytics.rollups import cohort_rollup_refresh
from analytics.scores import scores_refresh
from communities.models import Community
from tests.analytics import reference as ref

D = dt.date
CASES = {
    "year": {"date_from": D(2025, 1, 1), "date_to": D(2025, 12, 31), "user": "manager"},
    "one-month": {"date_from": D(2025, 3, 1), "date_to": D(2025, 3, 31), "user": "manager"},
    "operator-odd-dates": {"date_from": D(2025, 1, 15), "date_to": D(2025, 6, 10), "user": "op1"},
    "channel": {"date_from": D(2025, 2, 1), "date_to": D(2025, 8, 31), "user": "manager", "channel": 0},
    "owner": {"date_from": D(2025, 1, 1), "date_to": D(2025, 12, 31), "user": "manager", "owner": "op2"},
    "community": {"date_from": D(2025, 1, 1), "date_to": D(2025, 12, 31), "user": "manager", "community": 0},
    "cohort": {"date_from": D(2025, 1, 1), "date_to": D(2025, 6, 30), "user": "manager", "cohort": "2025-02"},
    "operator-channel": {
        "date_from": D(2024, 10, 1),
        "date_to": D(2026, 1, 31),
        "user": "op2",
        "channel": 1,
    },
    "system-user": {"date_from": D(2024, 11, 1), "date_to": D(2025, 11, 30), "user": None},
    "operator-community": {"date_from": D(2025, 4, 1), "date_to": D(2025, 9, 30), "user": "op1", "community": 2},
}


def _resolve(dataset, case: str) -> tuple[metrics.Filters, ref.Reference]:
    spec = CASES[case]
    user = dataset.users[spec["user"]] if spec["user"] else None
    kwargs = {
        "date_from": spec["date_from"],
        "date_to": spec["date_to"],
        "user": user,
        "channel_id": dataset.channels[spec["channel"]].pk if "channel" in spec else None,
        "owner_id": dataset.users[spec["owner"]].pk if "owner" in spec else None,
        "community_id": dataset.communities[spec["community"]].pk if "community" in spec else None,
        "cohort": spec.get("cohort"),
    }
    return metrics.Filters(**kwargs), ref.Reference(ref.Rows.load(), **kwargs)


@pytest.fixture
def case_data(request, dataset, db):
    return _resolve(dataset, request.param)


pytestmark = pytest.mark.parametrize("case_data", list(CASES), indirect=True)


def test_the_data_set_has_what_the_comparisons_need(case_data, dataset):
    filters, reference = case_data
    rows = reference.rows
    assert len(dataset.merged) == 14 and len(dataset.erased) == 9
    assert any(p["status"] == "refunded" for p in rows.purchases)
    assert any(t["kind"] == "message_out" for t in rows.touchpoints)
    assert any(m["left_at"] for m in rows.memberships)
    assert any(s["start_date"].month != s["end_date"].month for s in rows.spends)
    assert any(
        ref.local_date(p["purchased_at"]).day == 1 and p["purchased_at"].astimezone(ref.TZ).hour == 0
        for p in rows.purchases
    )
    assert reference.leads(), "every case must count some leads"


def test_kpis_match_the_reference(case_data):
    filters, reference = case_data
    assert dataclasses.asdict(metrics.kpis(filters)) == reference.kpis()


def test_channel_table_matches_the_reference(case_data):
    filters, reference = case_data
    table = {row.channel_id: row for row in metrics.channel_table(filters)}
    expected = reference.channel_table()
    assert set(table) == set(expected)
    for channel_id, row in table.items():
        got = dataclasses.asdict(row)
        got.pop("channel_id"), got.pop("channel")
        assert got == expected[channel_id], channel_id


@pytest.mark.parametrize("group_by", [None, "channel", "cohort"])
def test_funnel_matches_the_reference_and_is_strictly_nested(case_data, group_by):
    filters, reference = case_data
    result = metrics.funnel(filters, group_by=group_by)
    expected = reference.funnel_counts(group_by)

    def counts(steps):
        return {step.key: step.count for step in steps}

    assert counts(result.total) == reference.funnel_counts(None)[None]
    if group_by is None:
        assert result.groups == []
    else:
        assert {group.key: counts(group.steps) for group in result.groups} == expected
    for steps in [result.total, *(group.steps for group in result.groups)]:
        leads = steps[0].count
        for previous, step in zip(steps, steps[1:], strict=False):
            assert step.count <= previous.count
            assert step.step_conversion == ref.ratio(ref.div(step.count, previous.count))
            assert step.overall_conversion == ref.ratio(ref.div(step.count, leads))
            assert step.step_conversion is None or step.step_conversion <= 1


@pytest.mark.parametrize("by", ["acquisition", "first_purchase"])
@pytest.mark.parametrize("view", ["purchase", "engagement"])
@pytest.mark.parametrize("rollup", [False, True], ids=["live", "rollup"])
def test_cohort_retention_matches_the_reference(case_data, by, view, rollup):
    filters, reference = case_data
    if rollup:
        assert cohort_rollup_refresh() > 0
    matrix = metrics.cohort_retention(filters, by=by, view=view)
    expected = reference.cohort_matrix(by=by, view=view)
    assert [(row.month, row.size, row.counts, row.cells) for row in matrix] == [
        (row["month"], row["size"], row["counts"], row["cells"]) for row in expected
    ]
    assert metrics.cohort_retention(filters, by=by, view=view, live=True) == matrix
    for row in expected:
        if row["size"]:
            contacts = metrics.drilldown(filters, metric="cohort", cohort=f"{row['month']:%Y-%m}", by=by)
            assert set(contacts.values_list("pk", flat=True)) == row["members"]


def test_cohort_cells_drill_down_to_the_counted_contacts(case_data):
    filters, reference = case_data
    for row in metrics.cohort_retention(filters, view="engagement")[-4:]:
        for offset, count in enumerate(row.counts):
            if count is None:
                break
            contacts = metrics.drilldown(
                filters, metric="cohort", cohort=f"{row.month:%Y-%m}", offset=offset, view="engagement"
            )
            assert contacts.count() == count


@pytest.mark.parametrize("grain", ["month", "week", "day"])
def test_trend_matches_the_reference(case_data, grain):
    filters, reference = case_data
    for metric in metrics.TREND_METRICS:
        points = metrics.trend(filters, metric=metric, grain=grain)
        expected = reference.trend(metric, grain)
        assert {p.bucket: p.value for p in points if p.value} == {b: v for b, v in expected.items() if v}, metric
        assert points[0].bucket <= filters.date_from and points[-1].bucket <= filters.date_to
        assert len({p.bucket for p in points}) == len(points)


def test_community_health_matches_the_reference(case_data):
    filters, reference = case_data
    health = {row.community_id: dataclasses.asdict(row) for row in metrics.community_health(filters)}
    expected = reference.community_health()
    assert set(health) == set(expected)
    for community_id, row in health.items():
        want = dict(expected[community_id])
        want.pop("active_30d_members"), want.pop("member_ids")
        row.pop("community_id")
        assert row == want, community_id


def test_koc_ranking_matches_the_reference(case_data, dataset):
    filters, reference = case_data
    scope = ref.Reference(reference.rows, date_from=filters.date_from, date_to=filters.date_to, user=filters.user)
    visible = (
        set(Community.objects.visible_to(filters.user).values_list("pk", flat=True))
        if filters.user
        else set(scope.rows.communities)
    )
    for community in dataset.communities:
        ranking = metrics.koc_ranking(user=filters.user, community_id=community.pk, limit=15)
        if community.pk not in visible:
            assert ranking == []
            continue
        open_members = {
            m["contact_id"]
            for m in scope.rows.memberships
            if m["community_id"] == community.pk and m["left_at"] is None and m["contact_id"] in scope.ids
        }
        expected = sorted(open_members, key=lambda pk: (-scope.referrals.get(pk, 0), -scope.spent(pk), pk))[:15]
        assert [row.contact_id for row in ranking] == expected
        assert [row.referrals for row in ranking] == [scope.referrals.get(pk, 0) for pk in expected]
        assert [row.total_spent for row in ranking] == [ref.money(scope.spent(pk)) for pk in expected]


def test_drilldowns_are_the_contacts_behind_the_numbers(case_data):
    filters, reference = case_data
    expected = {
        "leads": reference.leads(),
        "new_customers": reference.new_customers(),
        "buyers": reference.buyers(),
        "repeat_buyers": reference.repeat_buyers(),
        "referred_leads": reference.referred_leads(),
    }
    for metric, ids in expected.items():
        assert set(metrics.drilldown(filters, metric=metric).values_list("pk", flat=True)) == ids, metric
    for step, ids in reference.funnel_sets().items():
        assert set(metrics.drilldown(filters, metric="funnel", step=step).values_list("pk", flat=True)) == ids, step


def test_sales_decomposition_matches_the_reference_and_is_an_exact_identity(case_data, dataset):
    filters_b, reference_b = case_data
    days = (filters_b.date_to - filters_b.date_from).days + 1
    filters_a = dataclasses.replace(
        filters_b,
        date_from=filters_b.date_from - dt.timedelta(days=days),
        date_to=filters_b.date_from - dt.timedelta(days=1),
    )
    reference_a = ref.Reference(
        reference_b.rows,
        date_from=filters_a.date_from,
        date_to=filters_a.date_to,
        user=filters_a.user,
        channel_id=filters_a.channel_id,
        owner_id=filters_a.owner_id,
        community_id=filters_a.community_id,
        cohort=filters_a.cohort,
    )
    result = metrics.sales_decomposition(period_a=filters_a, period_b=filters_b)
    for exact, want, period in (
        (metrics.decomposition_factors(filters_a), reference_a.decomposition(), result.a),
        (metrics.decomposition_factors(filters_b), reference_b.decomposition(), result.b),
    ):
        assert exact == want
        if exact["retained_users"] and exact["paid_orders"]:
            product = (
                exact["retained_users"] * exact["fission"] * exact["conversion"] * exact["aov"] * exact["repurchase"]
            )
            assert product == exact["sales"]  # exact Fractions: the identity holds to the last digit
        assert period.sales == ref.money(want["sales"])
        assert period.retained_users == want["retained_users"]
        assert period.fission == ref.ratio(want["fission"])
        assert period.aov == ref.money(want["aov"])
    shares = [f.share for f in result.factors]
    if all(s is not None for s in shares):
        exact_a, exact_b = reference_a.decomposition(), reference_b.decomposition()
        total = math.log(exact_b["sales"] / exact_a["sales"])
        for factor in result.factors:
            lmdi = math.log(Fraction(exact_b[factor.key]) / Fraction(exact_a[factor.key])) / total
            assert factor.share == pytest.approx(lmdi, abs=1e-4)
        unrounded = sum(
            math.log(Fraction(exact_b[key]) / Fraction(exact_a[key])) / total for key in metrics.DECOMPOSITION_FACTORS
        )
        assert unrounded == pytest.approx(1.0, abs=1e-12)


def test_overview_is_the_parts_in_a_bounded_number_of_queries(case_data, django_assert_max_num_queries):
    filters, _reference = case_data
    with django_assert_max_num_queries(9):
        result = metrics.overview(filters)
    assert result.kpis == metrics.kpis(filters)
    assert result.cohorts == metrics.cohort_retention(filters)
    assert result.funnel == metrics.funnel(filters)
    assert result.channels == metrics.channel_table(filters)


def test_rfm_scores_and_layers_match_the_reference(case_data):
    filters, reference = case_data
    as_of = filters.date_to
    run = scores_refresh(as_of=as_of)
    assert run is not None and run.status == "done"
    expected = ref.rfm(reference.rows, as_of=as_of)
    stored = {
        row["contact_id"]: row
        for row in ContactScore.objects.values(
            "contact_id", "r_score", "f_score", "m_score", "recency_days", "frequency", "monetary", "layer"
        )
    }
    assert set(stored) == set(expected)
    for pk, want in expected.items():
        got = stored[pk]
        assert (got["layer"], got["r_score"], got["f_score"], got["m_score"], got["recency_days"]) == (
            want["layer"],
            want["r_score"],
            want["f_score"],
            want["m_score"],
            want["recency_days"],
        ), pk
        assert (got["frequency"], Fraction(got["monetary"])) == (want["frequency"], want["monetary"]), pk
    layers = {row.layer: row for row in metrics.rfm_layers(filters)}
    for layer in metrics.LAYER_ORDER:
        ids = {pk for pk in reference.ids if expected[pk]["layer"] == layer}
        revenue = sum((reference.spent(pk) for pk in ids), Fraction(0))
        in_period = sum(
            (
                Fraction(p["amount"])
                for pk in ids
                for p in reference.paid.get(pk, [])
                if reference.in_p(p["purchased_at"])
            ),
            Fraction(0),
        )
        row = layers[layer]
        assert (row.contacts, row.revenue, row.average_spend, row.revenue_in_period) == (
            len(ids),
            ref.money(revenue),
            ref.money(ref.div(revenue, len(ids))),
            ref.money(in_period),
        ), layer
        assert set(metrics.drilldown(filters, metric="rfm", layer=layer).values_list("pk", flat=True)) == ids
    assert None not in layers
