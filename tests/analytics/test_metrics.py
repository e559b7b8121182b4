"""The metrics of analytics.metrics on small hand-built data, each expectation worked out by hand
(the randomised comparison with the reference computations is in test_reference.py)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from analytics import metrics
from analytics.metrics import Filters
from analytics.models import CohortActivity
from analytics.rollups import cohort_rollup_refresh
from communities.services import membership_join, membership_leave
from contacts.models import Contact, Touchpoint
from contacts.services import (
    contact_create,
    contact_erase,
    contact_merge,
    purchase_record,
    purchase_refund,
    touchpoint_record,
)
from tests.factories import ChannelFactory, ChannelSpendFactory, CommunityFactory

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
D = dt.date
_orders = iter(range(1, 10**6))


def at(y: int, m: int, d: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hour, minute, tzinfo=TZ)


def lead(*, acquired=None, **values):
    return contact_create(acquired_at=acquired or at(2025, 3, 10), **values)


def buy(contact, when, amount="100.00"):
    purchase, _created = purchase_record(
        contact=contact, external_order_id=f"T{next(_orders)}", purchased_at=when, amount=Decimal(amount)
    )
    return purchase


def march(user, **kw) -> Filters:
    return Filters(date_from=D(2025, 3, 1), date_to=D(2025, 3, 31), user=user, **kw)


# --- empty data and divisions by zero ------------------------------------------------------------------


def test_an_empty_period_gives_zeros_and_empty_values_without_error(manager):
    filters = Filters(date_from=D(2023, 1, 1), date_to=D(2023, 1, 31), user=manager)
    k = metrics.kpis(filters)
    assert (k.leads, k.new_customers, k.paid_orders, k.buyers, k.referred_leads, k.referrers) == (0, 0, 0, 0, 0, 0)
    assert (k.spend, k.revenue, k.leads_revenue) == (Decimal("0.00"), Decimal("0.00"), Decimal("0.00"))
    assert [k.cpl, k.cac, k.aov, k.clv, k.roi, k.ltv_cac, k.repurchase_rate, k.k_factor] == [None] * 8
    funnel = metrics.funnel(filters)
    assert [(s.count, s.step_conversion, s.overall_conversion) for s in funnel.total] == [(0, None, None)] * 5
    cohorts = metrics.cohort_retention(filters)
    assert len(cohorts) == 12 and all(row.size == 0 and set(row.cells) == {None} for row in cohorts)
    assert metrics.channel_table(filters) == []
    assert metrics.community_health(filters) == []
    assert [p.value for p in metrics.trend(filters, metric="revenue", grain="week")] == [Decimal("0.00")] * 6
    assert {row.contacts for row in metrics.rfm_layers(filters)} == {0}
    decomposition = metrics.sales_decomposition(period_a=filters, period_b=filters)
    assert decomposition.sales_change is None and {f.share for f in decomposition.factors} == {None}
    assert metrics.overview(filters).kpis == k


def test_divisions_by_zero_are_empty_and_the_rest_is_computed(manager):
    paid_channel, free_channel = ChannelFactory(name="付费"), ChannelFactory(name="自然")
    ChannelSpendFactory(channel=paid_channel, start_date=D(2025, 3, 1), end_date=D(2025, 3, 31), amount=Decimal("300"))
    buyer = lead(channel=free_channel)
    buy(buyer, at(2025, 3, 12), "80.00")
    rows = {row.channel: row for row in metrics.channel_table(march(manager))}
    # Spend and no leads: no CPL, no CAC; R = 0 so ROI = (0 - 300) / 300.
    paid = rows["付费"]
    assert (paid.spend, paid.leads, paid.cpl, paid.cac, paid.clv, paid.roi, paid.ltv_cac) == (
        Decimal("300.00"),
        0,
        None,
        None,
        None,
        -1.0,
        None,
    )
    # Leads and no spend: CPL and CAC are 0, ROI and LTV:CAC divide by zero.
    free = rows["自然"]
    assert (free.spend, free.leads, free.cpl, free.cac, free.clv, free.roi, free.ltv_cac) == (
        Decimal("0.00"),
        1,
        Decimal("0.00"),
        Decimal("0.00"),
        Decimal("80.00"),
        None,
        None,
    )
    k = metrics.kpis(march(manager))
    assert (k.spend, k.cpl, k.cac, k.clv, k.roi, k.ltv_cac) == (
        Decimal("300.00"),
        Decimal("300.00"),
        Decimal("300.00"),
        Decimal("80.00"),
        -0.7333,
        0.2667,
    )


# --- time zone -----------------------------------------------------------------------------------------


def test_a_purchase_at_2330_shanghai_on_the_last_day_of_a_month_counts_in_that_month(manager):
    contact = lead(acquired=at(2025, 3, 5))
    late = buy(contact, at(2025, 3, 31, 23, 30), "10.00")
    early = buy(contact, at(2025, 4, 1, 0, 10), "20.00")
    # In UTC both are on 31 March: only the business time zone tells them apart.
    assert late.purchased_at.astimezone(dt.UTC).date() == early.purchased_at.astimezone(dt.UTC).date() == D(2025, 3, 31)
    april = Filters(date_from=D(2025, 4, 1), date_to=D(2025, 4, 30), user=manager)
    assert (metrics.kpis(march(manager)).revenue, metrics.kpis(april).revenue) == (Decimal("10.00"), Decimal("20.00"))
    spring = Filters(date_from=D(2025, 3, 1), date_to=D(2025, 4, 30), user=manager)
    assert [(p.bucket, p.value) for p in metrics.trend(spring, metric="revenue")] == [
        (D(2025, 3, 1), Decimal("10.00")),
        (D(2025, 4, 1), Decimal("20.00")),
    ]
    days = {p.bucket: p.value for p in metrics.trend(spring, metric="orders", grain="day")}
    assert (days[D(2025, 3, 31)], days[D(2025, 4, 1)]) == (1, 1)
    row = metrics.cohort_retention(april)[-2]
    assert (row.month, row.size, row.counts[:2], row.cells[:3]) == (D(2025, 3, 1), 1, [1, 1], [1.0, 1.0, None])
    assert metrics.kpis(march(manager)).new_customers == 1 and metrics.kpis(april).new_customers == 0


def test_a_lead_acquired_at_0010_on_the_first_counts_in_the_new_month(manager):
    lead(acquired=at(2025, 4, 1, 0, 10))
    lead(acquired=at(2025, 3, 31, 23, 59))
    assert metrics.kpis(march(manager)).leads == 1
    assert metrics.kpis(Filters(date_from=D(2025, 4, 1), date_to=D(2025, 4, 1), user=manager)).leads == 1


# --- what counts ---------------------------------------------------------------------------------------


def test_refunded_purchases_count_as_nothing(manager):
    repeat = lead()
    buy(repeat, at(2025, 3, 11), "100.00")
    purchase_refund(purchase=buy(repeat, at(2025, 3, 12), "50.00"))
    only_refunded = lead()
    purchase_refund(purchase=buy(only_refunded, at(2025, 3, 13), "70.00"))
    k = metrics.kpis(march(manager))
    assert (k.revenue, k.paid_orders, k.buyers, k.repeat_buyers, k.new_customers) == (Decimal("100.00"), 1, 1, 0, 1)
    assert (k.leads_revenue, k.aov) == (Decimal("100.00"), Decimal("100.00"))
    assert [s.count for s in metrics.funnel(march(manager)).total][2:4] == [1, 0]


def test_merged_contacts_are_counted_once_with_all_their_purchases(manager):
    primary, duplicate = lead(name="王芳"), lead(name="王芳 (dup)")
    buy(primary, at(2025, 3, 12), "30.00")
    buy(duplicate, at(2025, 3, 14), "12.50")
    assert metrics.kpis(march(manager)).leads == 2
    contact_merge(primary=primary, duplicate=duplicate)
    k = metrics.kpis(march(manager))
    assert (k.leads, k.buyers, k.paid_orders, k.repeat_buyers, k.revenue, k.leads_revenue) == (
        1,
        1,
        2,
        1,
        Decimal("42.50"),
        Decimal("42.50"),
    )
    assert list(metrics.drilldown(march(manager), metric="leads")) == [primary]


def test_erased_contacts_are_still_counted(manager):
    referrer = lead()
    buy(referrer, at(2025, 3, 20), "99.00")
    lead(referred_by=referrer)
    before = metrics.kpis(march(manager))
    contact_erase(contact=referrer)
    assert metrics.kpis(march(manager)) == before
    assert (before.leads, before.revenue, before.referrers) == (2, Decimal("99.00"), 1)


def test_an_operator_sees_only_their_own_contacts(manager, operator, other_operator):
    mine, theirs = lead(owner=operator), lead(owner=other_operator)
    buy(mine, at(2025, 3, 12), "10.00")
    buy(theirs, at(2025, 3, 12), "1000.00")
    ours = CommunityFactory(owner=operator)
    foreign = CommunityFactory(owner=other_operator)
    for community in (ours, foreign):
        membership_join(community=community, contact=mine, joined_at=at(2025, 3, 1))
        membership_join(community=community, contact=theirs, joined_at=at(2025, 3, 1))
    k = metrics.kpis(march(operator))
    assert (k.leads, k.revenue, k.buyers) == (1, Decimal("10.00"), 1)
    assert metrics.kpis(march(manager)).revenue == Decimal("1010.00")
    assert list(metrics.drilldown(march(operator), metric="buyers")) == [mine]
    assert [(h.community_id, h.members, h.revenue) for h in metrics.community_health(march(operator))] == [
        (ours.pk, 1, Decimal("10.00"))
    ]
    assert [row.contact_id for row in metrics.koc_ranking(user=operator, community_id=ours.pk)] == [mine.pk]
    assert metrics.koc_ranking(user=operator, community_id=foreign.pk) == []
    assert sum(row.size for row in metrics.cohort_retention(march(operator))) == 1


# --- spend ---------------------------------------------------------------------------------------------


def test_spend_is_spread_evenly_over_its_days_across_period_boundaries(manager):
    channel = ChannelFactory()
    # 310.00 over 15 January … 14 February = 31 days: 10.00 a day.
    ChannelSpendFactory(channel=channel, start_date=D(2025, 1, 15), end_date=D(2025, 2, 14), amount=Decimal("310.00"))
    ChannelSpendFactory(channel=channel, start_date=D(2025, 1, 1), end_date=D(2025, 1, 3), amount=Decimal("100.00"))

    def spend(first, last, **kw):
        return metrics.kpis(Filters(date_from=first, date_to=last, user=manager, **kw)).spend

    assert spend(D(2025, 1, 1), D(2025, 1, 31)) == Decimal("270.00")
    assert spend(D(2025, 2, 1), D(2025, 2, 28)) == Decimal("140.00")
    assert spend(D(2025, 1, 20), D(2025, 2, 5)) == Decimal("170.00")
    assert spend(D(2025, 1, 2), D(2025, 1, 2)) == Decimal("33.33")  # 100 / 3, rounded only when shown
    assert spend(D(2025, 1, 2), D(2025, 1, 3)) == Decimal("66.67")
    # With a cohort filter the spend is the one of the days of P inside the cohort month.
    assert spend(D(2025, 1, 1), D(2025, 3, 31), cohort="2025-02") == Decimal("140.00")
    assert spend(D(2025, 1, 1), D(2025, 3, 31), channel_id=ChannelFactory().pk) == Decimal("0.00")


def test_spend_and_what_is_built_on_it_are_empty_with_an_owner_or_community_filter(manager, operator):
    channel = ChannelFactory()
    ChannelSpendFactory(channel=channel, start_date=D(2025, 3, 1), end_date=D(2025, 3, 31), amount=Decimal("500"))
    contact = lead(channel=channel, owner=operator)
    buy(contact, at(2025, 3, 12), "60.00")
    community = CommunityFactory()
    membership_join(community=community, contact=contact, joined_at=at(2025, 3, 11))
    for filters in (march(manager, owner_id=operator.pk), march(manager, community_id=community.pk)):
        k = metrics.kpis(filters)
        assert (k.spend, k.cpl, k.cac, k.roi, k.ltv_cac) == (None, None, None, None, None)
        assert (k.leads, k.revenue, k.clv) == (1, Decimal("60.00"), Decimal("60.00"))
        assert [(row.spend, row.cpl, row.roi) for row in metrics.channel_table(filters)] == [(None, None, None)]


# --- funnel, referral, decomposition -------------------------------------------------------------------


def test_the_funnel_steps_are_nested_and_converted_step_by_step(manager):
    silent = lead()  # only our own messages: not engaged
    touchpoint_record(contact=silent, medium="wecom", kind=Touchpoint.Kind.MESSAGE_OUT, occurred_at=at(2025, 3, 11))
    replied = lead()
    touchpoint_record(contact=replied, medium="wecom", kind=Touchpoint.Kind.MESSAGE_IN, occurred_at=at(2025, 3, 11))
    one_order_referrer = lead()  # engaged through the purchase itself
    buy(one_order_referrer, at(2025, 3, 12))
    advocate = lead()
    buy(advocate, at(2025, 3, 12))
    buy(advocate, at(2025, 3, 20))
    lead(acquired=at(2025, 4, 2), referred_by=advocate)
    lead(acquired=at(2025, 4, 2), referred_by=one_order_referrer)
    steps = metrics.funnel(march(manager)).total
    assert [(s.key, s.count) for s in steps] == [
        ("leads", 4),
        ("engaged", 3),
        ("first_purchase", 2),
        ("repeat_purchase", 1),
        ("referrer", 1),
    ]
    assert [s.step_conversion for s in steps] == [None, 0.75, 0.6667, 0.5, 1.0]
    assert [s.overall_conversion for s in steps] == [1.0, 0.75, 0.5, 0.25, 0.25]
    assert list(metrics.drilldown(march(manager), metric="funnel", step="referrer")) == [advocate]


def test_k_factor_is_referred_leads_per_distinct_referrer(manager):
    a, b = lead(acquired=at(2025, 2, 1)), lead(acquired=at(2025, 2, 1))
    for referrer in (a, a, b):
        lead(referred_by=referrer)
    k = metrics.kpis(march(manager))
    assert (k.referred_leads, k.referrers, k.k_factor) == (3, 2, 1.5)


def test_sales_decomposition_multiplies_back_to_sales_and_splits_the_change(manager):
    def period(month):
        return Filters(date_from=D(2025, month, 1), date_to=D(2025, month, 28), user=manager)

    old = [lead(acquired=at(2025, 1, 5)) for _ in range(4)]
    buy(old[0], at(2025, 2, 3), "100.00")
    buy(old[1], at(2025, 3, 3), "100.00")
    buy(old[1], at(2025, 3, 4), "200.00")
    referred = lead(acquired=at(2025, 3, 9), referred_by=old[0])
    buy(referred, at(2025, 3, 10), "60.00")
    result = metrics.sales_decomposition(period_a=period(2), period_b=period(3))
    a = result.a
    # February: engaged (facts at any time) and acquired by then: old[0] and old[1], who bought in March.
    assert (a.retained_users, a.fission, a.conversion, a.aov, a.repurchase, a.sales) == (
        2,
        1.0,
        0.5,
        Decimal("100.00"),
        1.0,
        Decimal("100.00"),
    )
    b = result.b
    # March: engaged by the end = old[0], old[1], referred; referred was acquired in March through referral.
    assert (b.retained_users, b.fission, b.conversion, b.aov, b.repurchase, b.sales) == (
        2,
        1.5,
        0.6667,
        Decimal("120.00"),
        1.5,
        Decimal("360.00"),
    )
    assert result.sales_change == 3.6
    shares = {f.key: f.share for f in result.factors}
    assert sum(shares.values()) == pytest.approx(1.0, abs=5e-4)
    assert shares["aov"] == pytest.approx(0.1423, abs=1e-4)  # ln(1.2) / ln(3.6)


def test_decomposition_shares_are_empty_when_a_factor_is_zero(manager):
    lead(acquired=at(2025, 1, 5))
    result = metrics.sales_decomposition(period_a=march(manager), period_b=march(manager))
    assert result.a.fission is None and {f.share for f in result.factors} == {None}


# --- cohorts -------------------------------------------------------------------------------------------


def test_cohort_cells_in_the_future_are_empty(manager):
    today = timezone.localdate()
    contact = lead(acquired=at(today.year, today.month, 1, 0, 0))
    buy(contact, at(today.year, today.month, 1, 0, 1))
    ahead = Filters(date_from=today, date_to=today + dt.timedelta(days=62), user=manager)
    matrix = metrics.cohort_retention(ahead)
    current = next(row for row in matrix if row.month == today.replace(day=1))
    assert current.size == 1 and current.counts[0] == 1 and current.counts[1:] == [None] * 11
    assert all(set(row.cells) == {None} for row in matrix if row.month > today.replace(day=1))


def test_cohorts_by_first_purchase_start_at_100_percent(manager):
    contact = lead(acquired=at(2024, 12, 1))
    buy(contact, at(2025, 2, 10))
    buy(contact, at(2025, 3, 10))
    matrix = metrics.cohort_retention(march(manager), by="first_purchase")
    row = next(r for r in matrix if r.month == D(2025, 2, 1))
    assert (row.size, row.cells[:3]) == (1, [1.0, 1.0, None])


def test_the_engagement_view_counts_inbound_touchpoints_only(manager):
    contact = lead(acquired=at(2025, 2, 1))
    touchpoint_record(contact=contact, medium="chat", kind=Touchpoint.Kind.MESSAGE_OUT, occurred_at=at(2025, 2, 5))
    touchpoint_record(contact=contact, medium="chat", kind=Touchpoint.Kind.CLICK, occurred_at=at(2025, 3, 5))
    row = next(r for r in metrics.cohort_retention(march(manager), view="engagement") if r.month == D(2025, 2, 1))
    assert row.counts[:2] == [0, 1]


# --- communities ---------------------------------------------------------------------------------------


def test_community_health_counts_members_at_the_end_of_the_period(manager):
    community = CommunityFactory()
    stays, left, joined_late, quiet = lead(), lead(), lead(), lead()
    for contact in (stays, left, quiet):
        membership_join(community=community, contact=contact, joined_at=at(2025, 2, 1))
    membership_leave(membership=community.memberships.get(contact=left), left_at=at(2025, 3, 20))
    membership_join(community=community, contact=joined_late, joined_at=at(2025, 4, 1))
    touchpoint_record(contact=stays, medium="group", kind=Touchpoint.Kind.CHECK_IN, occurred_at=at(2025, 3, 25))
    touchpoint_record(contact=quiet, medium="group", kind=Touchpoint.Kind.COMMENT, occurred_at=at(2025, 3, 10))
    buy(stays, at(2025, 3, 26), "45.00")
    buy(left, at(2025, 3, 26), "1000.00")
    health = metrics.community_health(march(manager, community_id=community.pk))
    assert [
        (h.members, h.joins, h.leaves, h.active_7d, h.active_30d, h.activity_rate, h.buyers, h.conversion, h.revenue)
        for h in health
    ] == [(2, 0, 1, 1, 2, 1.0, 1, 0.5, Decimal("45.00"))]


# --- validation and query counts -----------------------------------------------------------------------


def test_bad_parameters_are_validation_errors_naming_the_field(manager):
    with pytest.raises(ValidationError) as error:
        Filters(date_from=D(2025, 3, 2), date_to=D(2025, 3, 1), user=manager)
    assert "date_to" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        Filters(date_from=D(2025, 3, 1), date_to=D(2025, 3, 1), user=manager, cohort="March")
    assert "cohort" in error.value.message_dict
    for call, field in (
        (lambda: metrics.trend(march(manager), metric="profit"), "metric"),
        (lambda: metrics.trend(march(manager), metric="revenue", grain="year"), "grain"),
        (lambda: metrics.cohort_retention(march(manager), by="region"), "by"),
        (lambda: metrics.cohort_retention(march(manager), months=0), "months"),
        (lambda: metrics.drilldown(march(manager), metric="funnel", step="fifth"), "step"),
        (lambda: metrics.drilldown(march(manager), metric="everything"), "metric"),
        (lambda: metrics.funnel(march(manager), group_by="owner"), "group_by"),
    ):
        with pytest.raises(ValidationError) as error:
            call()
        assert field in error.value.message_dict


@pytest.mark.parametrize("channels", [1, 6])
def test_the_channel_table_takes_the_same_few_queries_whatever_the_number_of_channels(
    manager, channels, django_assert_num_queries
):
    for index in range(channels):
        channel = ChannelFactory(name=f"渠道-{index}")
        ChannelSpendFactory(channel=channel, start_date=D(2025, 3, 1), end_date=D(2025, 3, 9))
        buy(lead(channel=channel), at(2025, 3, 20))
    manager.has_perm("contacts.view_all_contacts")  # the permission cache is not what is measured
    with django_assert_num_queries(4):
        rows = metrics.channel_table(march(manager))
    assert len(rows) == channels
    with django_assert_num_queries(5):
        metrics.kpis(march(manager))
    with django_assert_num_queries(9):  # 5 KPIs, 3 cohorts (rollup + live sizes and cells), 1 channel names
        metrics.overview(march(manager))


# --- the cohort rollup ---------------------------------------------------------------------------------


def test_closed_months_come_from_the_rollup_and_the_current_month_is_live(manager, django_assert_num_queries):
    today = timezone.localdate()
    this_month = today.replace(day=1)
    last_month = metrics.add_months(this_month, -1)
    old = lead(acquired=at(last_month.year, last_month.month, 1, 9))
    buy(old, at(last_month.year, last_month.month, 2, 9))
    filters = Filters(date_from=this_month, date_to=today, user=manager)
    manager.has_perm("contacts.view_all_contacts")
    assert cohort_rollup_refresh() == 4  # size, purchase cell, by acquisition and by first purchase
    CohortActivity.objects.update(refreshed_at=timezone.now())
    new = lead(acquired=at(this_month.year, this_month.month, 1, 0, 5))
    buy(new, at(this_month.year, this_month.month, 1, 0, 6))
    buy(old, at(this_month.year, this_month.month, 1, 0, 7))
    with django_assert_num_queries(3):  # the rollup, then this month's sizes and activity live
        matrix = metrics.cohort_retention(filters)
    assert [(row.size, row.counts[:2]) for row in matrix[-2:]] == [(1, [1, 1]), (1, [1, None])]
    # A purchase recorded now in a month that was over when the rollup was built shows after the
    # next build (the nightly task), not before.
    buy(lead(acquired=at(last_month.year, last_month.month, 3)), at(last_month.year, last_month.month, 4))
    assert metrics.cohort_retention(filters)[-2].size == 1
    assert metrics.cohort_retention(filters, live=True)[-2].size == 2
    cohort_rollup_refresh()
    assert metrics.cohort_retention(filters) == metrics.cohort_retention(filters, live=True)


def test_a_report_ending_on_a_month_end_is_answered_by_the_rollup_alone(manager, django_assert_num_queries):
    contact = lead(acquired=at(2025, 1, 10))
    buy(contact, at(2025, 2, 10))
    cohort_rollup_refresh()
    manager.has_perm("contacts.view_all_contacts")
    filters = Filters(date_from=D(2025, 2, 1), date_to=D(2025, 2, 28), user=manager)
    with django_assert_num_queries(1):
        matrix = metrics.cohort_retention(filters)
    assert (matrix[-2].month, matrix[-2].size, matrix[-2].counts[:2]) == (D(2025, 1, 1), 1, [0, 1])
    # Ending mid-month, the last month is live: the purchase on the 10th is after the end of P.
    early = Filters(date_from=D(2025, 2, 1), date_to=D(2025, 2, 9), user=manager)
    assert metrics.cohort_retention(early)[-2].counts[:2] == [0, 0]


def test_an_operator_reads_their_own_slice_of_the_rollup(operator, other_operator):
    for owner in (operator, other_operator, operator):
        buy(lead(owner=owner, acquired=at(2025, 1, 10)), at(2025, 1, 11))
    cohort_rollup_refresh()
    filters = Filters(date_from=D(2025, 1, 1), date_to=D(2025, 1, 31), user=operator)
    assert metrics.cohort_retention(filters)[-1].counts[0] == 2
    assert metrics.cohort_retention(filters) == metrics.cohort_retention(filters, live=True)
    mixed = Filters(date_from=D(2025, 1, 1), date_to=D(2025, 1, 31), user=operator, owner_id=other_operator.pk)
    assert metrics.cohort_retention(mixed)[-1].size == 0


def test_the_relation_scope_agrees_with_contacts_visible_to(manager, operator, other_operator):
    from django.contrib.auth.models import AnonymousUser

    from contacts.models import Purchase

    contacts = [lead(owner=owner) for owner in (operator, other_operator, None, operator)]
    for contact in contacts:
        buy(contact, at(2025, 3, 12))
    contact_merge(primary=contacts[0], duplicate=contacts[3])
    for user in (manager, operator, other_operator, AnonymousUser()):
        filters = march(user)
        visible = set(Contact.objects.live().visible_to(user).values_list("pk", flat=True))
        assert set(metrics.scoped_contacts(filters).values_list("pk", flat=True)) == visible
        for narrowed in (filters, march(user, owner_id=operator.pk)):
            bought = set(
                Purchase.objects.filter(metrics.contact_scope_q(narrowed)).values_list("contact_id", flat=True)
            )
            assert bought == visible & set(metrics.scoped_contacts(narrowed).values_list("pk", flat=True))
