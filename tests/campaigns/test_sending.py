"""The sending engine in one process: planning, the re-checks at send time, caps, quiet hours, retries of
the tick and the senders, cancellation, results. The worker-process guarantees are in test_worker.py."""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.db.models import Count
from django.utils import timezone

from campaigns import policy, selectors, sending, services
from campaigns.models import Broadcast, Delivery, FrequencyCap, FrequencyPolicy, MessageTemplate, OutboxMessage, Segment
from contacts.models import Purchase
from tests.factories import CommunityFactory, ContactFactory, MembershipFactory, TagFactory, UserFactory

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
EVERYONE = {"op": "and", "rules": []}
# Noon in Shanghai: outside the default quiet hours (22:00–08:00).
NOON = dt.datetime(2026, 11, 23, 12, 0, tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def _no_quiet_hours_by_default(db):
    FrequencyPolicy.objects.update_or_create(pk=1, defaults={"quiet_hours_enabled": False})


@pytest.fixture
def template(db):
    return MessageTemplate.objects.create(name="Promo", body="{name}，双十二会员专享券 {coupon}")


def _contacts(n: int, **fields):
    return [ContactFactory(marketing_consent=True, **fields) for _ in range(n)]


def _broadcast(user, template, *, segment=None, communities=(), variables=None, **fields) -> Broadcast:
    if segment is None and not communities:
        segment = Segment.objects.create(name="Everyone", rules=EVERYONE)
    return services.broadcast_create(
        created_by=user,
        name="Double 12",
        template=template,
        medium="wecom",
        segment=segment,
        communities=communities,
        variables={"coupon": "DD12"} if variables is None else variables,
        **fields,
    )


def _send_now(broadcast: Broadcast, user, *, now=None) -> Broadcast:
    services.broadcast_submit(broadcast=broadcast, user=user)
    sending.broadcasts_tick(now=now)
    sending.broadcast_start(broadcast_id=broadcast.pk)
    while sending.deliveries_send(broadcast_id=broadcast.pk)["more"]:
        pass
    broadcast.refresh_from_db()
    return broadcast


def _statuses(broadcast) -> dict[tuple[str, str], int]:
    rows = Delivery.objects.filter(broadcast=broadcast).values_list("status", "reason").annotate(n=Count("id"))
    return {(status, reason): n for status, reason, n in rows}


def test_broadcast_reaches_each_consenting_contact_once_through_the_outbox(manager, template):
    ok = _contacts(5)
    ContactFactory(marketing_consent=False)
    ContactFactory(marketing_consent=True, opted_out_at=timezone.now())
    broadcast = _send_now(_broadcast(manager, template), manager)

    assert broadcast.status == Broadcast.Status.SENT
    assert _statuses(broadcast) == {
        ("sent", ""): 5,
        ("suppressed", "no_consent"): 1,
        ("suppressed", "opted_out"): 1,
    }
    bodies = dict(OutboxMessage.objects.values_list("contact_id", "body"))
    assert set(bodies) == {c.pk for c in ok}
    assert bodies[ok[0].pk] == f"{ok[0].name}，双十二会员专享券 DD12"
    assert broadcast.total_targeted == 7


def test_an_operators_broadcast_reaches_only_their_own_contacts(operator, other_operator, manager, template):
    mine = _contacts(3, owner=operator)
    _contacts(4, owner=other_operator)
    broadcast = _broadcast(operator, template)
    services.broadcast_submit(broadcast=broadcast, user=operator)
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.PENDING_APPROVAL
    services.broadcast_approve(broadcast=broadcast, user=manager)
    sending.broadcasts_tick()
    sending.broadcast_start(broadcast_id=broadcast.pk)
    sending.deliveries_send(broadcast_id=broadcast.pk)
    assert set(OutboxMessage.objects.values_list("contact_id", flat=True)) == {c.pk for c in mine}


def test_community_audience_is_the_current_members(manager, template):
    community = CommunityFactory()
    inside, left = _contacts(2)
    MembershipFactory(community=community, contact=inside)
    MembershipFactory(
        community=community, contact=left, joined_at=timezone.now() - dt.timedelta(days=2), left_at=timezone.now()
    )
    _contacts(2)
    broadcast = _send_now(_broadcast(manager, template, communities=[community]), manager)
    assert list(Delivery.objects.filter(broadcast=broadcast).values_list("contact_id", flat=True)) == [inside.pk]


def test_segment_and_communities_are_a_union(manager, template):
    tag = TagFactory()
    tagged, member, _other = _contacts(3)
    tagged.tags.add(tag)
    community = CommunityFactory()
    MembershipFactory(community=community, contact=member)
    segment = Segment.objects.create(
        name="Tagged", rules={"op": "and", "rules": [{"field": "tags", "operator": "any", "value": [tag.pk]}]}
    )
    broadcast = _send_now(_broadcast(manager, template, segment=segment, communities=[community]), manager)
    assert set(Delivery.objects.filter(broadcast=broadcast).values_list("contact_id", flat=True)) == {
        tagged.pk,
        member.pk,
    }


def test_opting_out_after_planning_is_respected_at_send_time(manager, template):
    first, second = _contacts(2)
    broadcast = _broadcast(manager, template)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    sending.broadcasts_tick()
    broadcast.refresh_from_db()
    sending.broadcast_plan(broadcast=broadcast)
    type(first).objects.filter(pk=first.pk).update(opted_out_at=timezone.now())
    type(second).objects.filter(pk=second.pk).update(marketing_consent=False)
    sending.deliveries_send(broadcast_id=broadcast.pk)
    assert _statuses(broadcast) == {("suppressed", "opted_out"): 1, ("suppressed", "no_consent"): 1}
    assert not OutboxMessage.objects.exists()


def test_the_tick_and_the_senders_twice_send_nothing_twice(manager, template):
    _contacts(30)
    broadcast = _broadcast(manager, template)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    sending.broadcasts_tick()
    sending.broadcasts_tick()
    for _ in range(2):
        sending.broadcast_start(broadcast_id=broadcast.pk)
        sending.broadcast_plan(broadcast=Broadcast.objects.get(pk=broadcast.pk))
    for _ in range(3):
        sending.deliveries_send(broadcast_id=broadcast.pk)
    sending.broadcasts_tick()
    assert Delivery.objects.filter(broadcast=broadcast).count() == 30
    assert OutboxMessage.objects.count() == 30
    assert Broadcast.objects.get(pk=broadcast.pk).status == Broadcast.Status.SENT


def _cap(**fields):
    FrequencyCap.objects.all().delete()
    FrequencyCap.objects.create(**fields)


def test_contacts_at_the_cap_are_suppressed(manager, template):
    _cap(window="rolling", window_days=7, max_messages=1)
    (reached,) = _contacts(1, region="北京")
    (fresh,) = _contacts(1, region="上海")
    beijing = Segment.objects.create(
        name="Beijing", rules={"op": "and", "rules": [{"field": "region", "operator": "eq", "value": "北京"}]}
    )
    first = _send_now(_broadcast(manager, template, segment=beijing), manager)
    assert _statuses(first) == {("sent", ""): 1}
    second = _send_now(_broadcast(manager, template), manager)
    by_contact = dict(Delivery.objects.filter(broadcast=second).values_list("contact_id", "reason"))
    assert by_contact == {reached.pk: "frequency_cap", fresh.pk: ""}


def test_the_cap_counts_only_its_medium_and_marketing_messages(manager, template):
    _cap(medium="sms", window="rolling", window_days=30, max_messages=1)
    _contacts(2)
    _send_now(_broadcast(manager, template), manager)  # WeCom: not counted by an SMS cap
    second = _send_now(_broadcast(manager, template), manager)
    assert _statuses(second) == {("sent", ""): 2}


def test_the_wecom_default_cap_is_the_number_of_days_in_the_month(db):
    FrequencyCap.objects.all().delete()
    FrequencyCap.objects.create(window="month", max_messages=None)
    (feb,) = policy.cap_windows(medium="wecom", now=dt.datetime(2026, 2, 10, 12, tzinfo=SHANGHAI))
    (nov,) = policy.cap_windows(medium="wecom", now=NOON)
    assert feb.limit == 28
    assert feb.since == dt.datetime(2026, 2, 1, tzinfo=SHANGHAI)
    assert nov.limit == 30


def test_service_messages_may_skip_the_caps_but_never_consent(manager):
    _cap(window="rolling", window_days=7, max_messages=0)
    thanks = MessageTemplate.objects.create(name="Thanks", body="谢谢 {name}", is_service=True)
    _contacts(2)
    ContactFactory(marketing_consent=False)
    broadcast = _send_now(_broadcast(manager, thanks, variables={}), manager)
    assert _statuses(broadcast) == {("sent", ""): 2, ("suppressed", "no_consent"): 1}
    FrequencyPolicy.objects.filter(pk=1).update(exempt_service_messages=False)
    again = _send_now(_broadcast(manager, thanks, variables={}), manager)
    assert _statuses(again) == {("suppressed", "frequency_cap"): 2, ("suppressed", "no_consent"): 1}


def test_quiet_hours_defer_to_their_end_or_suppress(manager, template):
    FrequencyPolicy.objects.filter(pk=1).update(quiet_hours_enabled=True, quiet_start=dt.time(22), quiet_end=dt.time(8))
    _contacts(2)
    night = dt.datetime(2026, 11, 23, 23, 30, tzinfo=SHANGHAI)
    deferring = _broadcast(manager, template)
    dropping = _broadcast(manager, template, defer_quiet_hours=False)
    for broadcast in (deferring, dropping):
        services.broadcast_submit(broadcast=broadcast, user=manager)
        Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING, started_at=night)
        sending.broadcast_plan(broadcast=Broadcast.objects.get(pk=broadcast.pk), now=night)
        sending.deliveries_send_chunk(broadcast_id=broadcast.pk, now=night)

    morning = dt.datetime(2026, 11, 24, 8, 0, tzinfo=SHANGHAI)
    assert set(Delivery.objects.filter(broadcast=deferring).values_list("status", "not_before")) == {
        ("pending", morning)
    }
    assert _statuses(dropping) == {("suppressed", "quiet_hours"): 2}
    # Still quiet at 07:59; sent at 08:00.
    assert sending.deliveries_send_chunk(broadcast_id=deferring.pk, now=morning - dt.timedelta(minutes=1)).sent == 0
    assert sending.deliveries_send_chunk(broadcast_id=deferring.pk, now=morning).sent == 2


def test_quiet_hours_that_do_not_wrap_midnight(db):
    current = FrequencyPolicy(quiet_hours_enabled=True, quiet_start=dt.time(12), quiet_end=dt.time(14))
    assert policy.quiet_hours_end(NOON, policy=current) == dt.datetime(2026, 11, 23, 14, tzinfo=SHANGHAI)
    assert policy.quiet_hours_end(NOON.replace(hour=14), policy=current) is None


def test_cancelling_suppresses_what_was_not_sent(manager, template):
    _contacts(5)
    broadcast = _broadcast(manager, template)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    sending.broadcasts_tick()
    sending.broadcast_plan(broadcast=Broadcast.objects.get(pk=broadcast.pk))
    sending.deliveries_send_chunk(broadcast_id=broadcast.pk, chunk_size=2)
    services.broadcast_cancel(broadcast=broadcast, user=manager)
    services.broadcast_cancel(broadcast=broadcast, user=manager)
    sending.deliveries_send(broadcast_id=broadcast.pk)
    assert _statuses(broadcast) == {("sent", ""): 2, ("suppressed", "cancelled"): 3}
    assert Broadcast.objects.get(pk=broadcast.pk).status == Broadcast.Status.CANCELLED


def test_bad_input_is_refused_with_the_field_named(manager, operator, template):
    with pytest.raises(ValidationError) as missing:
        services.broadcast_create(created_by=manager, name="x", template=template, variables={"coupon": "A"})
    assert "audience" in missing.value.message_dict
    segment = Segment.objects.create(name="Everyone", rules=EVERYONE)
    with pytest.raises(ValidationError) as no_coupon:
        services.broadcast_create(created_by=manager, name="x", template=template, segment=segment)
    assert "variables" in no_coupon.value.message_dict
    unknown = MessageTemplate.objects.create(name="Bad", body="{name} {shoe_size}")
    with pytest.raises(ValidationError) as bad:
        services.broadcast_create(created_by=manager, name="x", template=unknown, segment=segment)
    assert "template" in bad.value.message_dict
    with pytest.raises(ValidationError) as past:
        services.broadcast_create(
            created_by=manager,
            name="x",
            template=template,
            segment=segment,
            variables={"coupon": "A"},
            scheduled_at=timezone.now() - dt.timedelta(hours=1),
        )
    assert "scheduled_at" in past.value.message_dict
    empty = _broadcast(operator, template, segment=segment)  # the operator owns no contacts
    with pytest.raises(ValidationError) as nobody:
        services.broadcast_submit(broadcast=empty, user=operator)
    assert "audience" in nobody.value.message_dict
    assert Broadcast.objects.get(pk=empty.pk).status == Broadcast.Status.DRAFT


def test_only_managers_approve(operator, template):
    _contacts(1, owner=operator)
    broadcast = _broadcast(operator, template)
    services.broadcast_submit(broadcast=broadcast, user=operator)
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.broadcast_approve(broadcast=broadcast, user=operator)


def test_results_count_purchases_inside_the_conversion_window(manager, template):
    buyer, late, refunder, _silent = _contacts(4)
    broadcast = _send_now(_broadcast(manager, template, conversion_window_days=7), manager)
    sent_at = Delivery.objects.filter(broadcast=broadcast, contact=buyer).get().sent_at
    for contact, delay, status, amount in (
        (buyer, dt.timedelta(days=2), Purchase.Status.PAID, "100.00"),
        (buyer, dt.timedelta(days=3), Purchase.Status.PAID, "50.50"),
        (late, dt.timedelta(days=8), Purchase.Status.PAID, "70.00"),
        (refunder, dt.timedelta(days=1), Purchase.Status.REFUNDED, "90.00"),
    ):
        Purchase.objects.create(
            contact=contact,
            external_order_id=f"o-{contact.pk}-{delay.days}",
            purchased_at=sent_at + delay,
            amount=Decimal(amount),
            status=status,
        )
    results = selectors.broadcast_results(broadcast)
    assert results["sent"] == 4
    assert results["converted_contacts"] == 1
    assert results["conversion_orders"] == 2
    assert results["conversion_revenue"] == Decimal("150.50")
    assert results["conversion_rate"] == 0.25


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_broadcasts_at_once_never_exceed_the_cap(template):
    """Two broadcasts to overlapping audiences, sent by two threads at the same moment, in small chunks:
    each shared contact gets exactly one message under a cap of one a day."""
    manager = UserFactory(username="mgr", role="manager")
    _cap(window="rolling", window_days=1, max_messages=1)
    shared = _contacts(300, region="上海")
    only_a = _contacts(50, region="北京")
    segment_a = Segment.objects.create(
        name="A", rules={"op": "and", "rules": [{"field": "region", "operator": "in", "value": ["上海", "北京"]}]}
    )
    segment_b = Segment.objects.create(
        name="B", rules={"op": "and", "rules": [{"field": "region", "operator": "in", "value": ["上海"]}]}
    )
    broadcasts = [_broadcast(manager, template, segment=s) for s in (segment_a, segment_b)]
    for broadcast in broadcasts:
        services.broadcast_submit(broadcast=broadcast, user=manager)
    sending.broadcasts_tick()
    for broadcast in broadcasts:
        sending.broadcast_plan(broadcast=Broadcast.objects.get(pk=broadcast.pk))
    barrier = threading.Barrier(2)
    errors = []

    def run(broadcast_id):
        try:
            barrier.wait()
            while sending.deliveries_send_chunk(broadcast_id=broadcast_id, chunk_size=20).claimed:
                pass
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(b.pk,)) for b in broadcasts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    sent = Delivery.objects.filter(status="sent").values("contact_id").annotate(n=Count("id"))
    per_contact = {row["contact_id"]: row["n"] for row in sent}
    assert all(n == 1 for n in per_contact.values())
    assert set(per_contact) == {c.pk for c in shared + only_a}
    assert Delivery.objects.filter(reason="frequency_cap").count() == 300
    assert OutboxMessage.objects.count() == 350


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_senders_on_one_broadcast_share_the_work_without_overlap(template):
    manager = UserFactory(username="mgr", role="manager")
    _contacts(400)
    broadcast = _broadcast(manager, template)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    sending.broadcasts_tick()
    sending.broadcast_plan(broadcast=Broadcast.objects.get(pk=broadcast.pk))
    claimed = []

    def run():
        try:
            while (result := sending.deliveries_send_chunk(broadcast_id=broadcast.pk, chunk_size=25)).claimed:
                claimed.append(result.claimed)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(claimed) == 400
    assert OutboxMessage.objects.count() == 400
    assert connection.vendor == "postgresql"


def test_a_contact_reassigned_after_planning_is_not_messaged_by_the_old_owners_broadcast(
    operator, other_operator, manager, template
):
    mine, moved = _contacts(2, owner=operator)
    broadcast = _broadcast(operator, template)
    services.broadcast_submit(broadcast=broadcast, user=operator)
    services.broadcast_approve(broadcast=broadcast, user=manager)
    sending.broadcasts_tick()
    sending.broadcast_plan(broadcast=Broadcast.objects.get(pk=broadcast.pk))
    type(moved).objects.filter(pk=moved.pk).update(owner=other_operator)
    sending.deliveries_send(broadcast_id=broadcast.pk)
    assert dict(Delivery.objects.filter(broadcast=broadcast).values_list("contact_id", "reason")) == {
        mine.pk: "",
        moved.pk: "not_owned",
    }


def test_rows_pending_again_after_a_cancel_are_never_sent(manager, template):
    _contacts(4)
    broadcast = _broadcast(manager, template)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    sending.broadcasts_tick()
    sending.broadcast_plan(broadcast=Broadcast.objects.get(pk=broadcast.pk))
    services.broadcast_cancel(broadcast=broadcast, user=manager)
    # A send that failed transiently hands its row back to pending after the cancel.
    Delivery.objects.filter(broadcast=broadcast).update(status="pending", reason="")
    assert sending.deliveries_send_chunk(broadcast_id=broadcast.pk).claimed == 0
    sending.broadcasts_tick()
    assert _statuses(broadcast) == {("suppressed", "cancelled"): 4}
    assert not OutboxMessage.objects.exists()


def test_a_send_lost_too_many_times_fails_instead_of_looping(manager, template):
    _contacts(2)
    broadcast = _broadcast(manager, template)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    sending.broadcasts_tick()
    sending.broadcast_plan(broadcast=Broadcast.objects.get(pk=broadcast.pk))
    long_ago = timezone.now() - dt.timedelta(hours=1)
    first, second = Delivery.objects.filter(broadcast=broadcast).order_by("id")
    Delivery.objects.filter(pk=first.pk).update(status="sending", claimed_at=long_ago, attempts=1)
    Delivery.objects.filter(pk=second.pk).update(status="sending", claimed_at=long_ago, attempts=sending.MAX_ATTEMPTS)
    assert sending.deliveries_requeue_stuck() == 1
    assert Delivery.objects.get(pk=first.pk).status == "pending"
    assert Delivery.objects.get(pk=second.pk).status == "failed"


def test_the_audience_of_an_approved_broadcast_cannot_be_edited(manager, template):
    from campaigns.services import segment_update

    _contacts(1)
    segment = Segment.objects.create(name="Everyone", rules=EVERYONE)
    broadcast = _broadcast(manager, template, segment=segment)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    narrower = {"op": "and", "rules": [{"field": "region", "operator": "eq", "value": "北京"}]}
    with pytest.raises(ValidationError) as refused:
        segment_update(segment=segment, user=manager, rules=narrower)
    assert "rules" in refused.value.message_dict
    segment_update(segment=segment, user=manager, name="Everyone (renamed)")
    services.broadcast_cancel(broadcast=broadcast, user=manager)
    assert segment_update(segment=segment, user=manager, rules=narrower).rules == narrower
