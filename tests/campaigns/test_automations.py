"""The SOP engine: each trigger fires once per event across repeated scans, never for history before the
automation was switched on; delays, conditions and actions; repurchase cycles; birthdays in the business
time zone; inactivity spells; and automation messages sent by the delivery engine."""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import OperationalError, connection, connections
from django.utils import timezone

from campaigns import automations, sending, tasks
from campaigns.automations import (
    automation_create,
    automation_runs_process,
    automation_set_active,
    automation_update,
    automations_scan,
)
from campaigns.models import Automation, AutomationRun, Delivery, FollowUpTask, FrequencyPolicy, OutboxMessage
from campaigns.services import follow_up_task_complete, follow_up_task_create
from contacts.models import Contact, ContactTag
from contacts.services import contacts_tag, contacts_untag, purchase_record, purchase_refund
from tests.campaigns.factories_automations import AutomationSegmentFactory, AutomationTemplateFactory
from tests.factories import CommunityFactory, ContactFactory, MembershipFactory, ProductFactory, TagFactory, UserFactory

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
UTC = dt.UTC
DAY = dt.timedelta(days=1)
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=UTC)
_orders = iter(range(1, 1_000_000))

Trigger = Automation.Trigger
Action = Automation.Action


@pytest.fixture(autouse=True)
def _no_quiet_hours(db):
    # Sending tests run at whatever time it is; quiet hours have their own tests in test_sending.py.
    FrequencyPolicy.objects.update_or_create(pk=1, defaults={"quiet_hours_enabled": False})


@pytest.fixture
def tag(db):
    return TagFactory(name="SOP已触发")


def _make(user, trigger, config=None, *, action=Action.ADD_TAG, tag=None, **fields) -> Automation:
    if action in (Action.ADD_TAG, Action.REMOVE_TAG) and tag is None:
        tag = TagFactory()
    return automation_create(
        created_by=user,
        name=f"SOP {trigger}",
        trigger=trigger,
        trigger_config=config,
        action=action,
        tag=tag,
        **fields,
    )


def _active_since(automation: Automation, when: dt.datetime) -> Automation:
    Automation.objects.filter(pk=automation.pk).update(active_since=when, scanned_until=None)
    automation.refresh_from_db()
    return automation


def _runs(automation: Automation) -> list[tuple[int, str]]:
    return sorted(AutomationRun.objects.filter(automation=automation).values_list("contact_id", "key"))


def _buy(contact, product, at: dt.datetime, *, status="paid"):
    purchase, _created = purchase_record(
        contact=contact,
        external_order_id=f"SOP{next(_orders):07d}",
        purchased_at=at,
        amount=Decimal("99.00"),
        status=status,
        items=[{"product": product}],
    )
    return purchase


def _local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


# --- Event triggers: once per event, never history ----------------------------------------------


def test_contact_created_fires_once_across_repeated_scans(manager):
    automation = _make(manager, Trigger.CONTACT_CREATED)
    contact = ContactFactory()

    first = automations_scan()
    second = automations_scan()

    assert first["runs"] == 1 and second["runs"] == 0
    assert _runs(automation) == [(contact.pk, "created")]
    run = AutomationRun.objects.get(automation=automation)
    assert run.status == AutomationRun.Status.WAITING
    assert run.due_at == contact.created_at


def test_contacts_created_before_the_automation_was_switched_on_never_fire(manager):
    ContactFactory()
    automation = _make(manager, Trigger.CONTACT_CREATED)

    automations_scan()

    assert _runs(automation) == []


def test_merged_and_erased_contacts_never_fire(manager):
    automation = _make(manager, Trigger.CONTACT_CREATED)
    primary = ContactFactory()
    ContactFactory(merged_into=primary)
    ContactFactory(erased_at=timezone.now())

    automations_scan()

    assert _runs(automation) == [(primary.pk, "created")]


def test_purchase_made_fires_once_per_paid_purchase_with_its_purchase_and_product(manager):
    automation = _make(manager, Trigger.PURCHASE_MADE)
    contact = ContactFactory()
    product = ProductFactory(name="洗发水")
    now = timezone.now()
    paid = _buy(contact, product, now)
    _buy(contact, product, now, status="refunded")

    automations_scan()
    automations_scan()

    assert _runs(automation) == [(contact.pk, f"purchase:{paid.pk}")]
    run = AutomationRun.objects.get(automation=automation)
    assert (run.purchase_id, run.product_id) == (paid.pk, product.pk)


def test_purchases_placed_before_activation_never_fire_even_when_recorded_later(manager):
    automation = _make(manager, Trigger.PURCHASE_MADE)
    _buy(ContactFactory(), ProductFactory(), automation.active_since - dt.timedelta(minutes=5))

    automations_scan()

    assert _runs(automation) == []


def test_tag_added_fires_for_the_configured_tag_each_time_it_is_put_on(manager):
    watched, other = TagFactory(name="高意向"), TagFactory(name="低意向")
    automation = _make(manager, Trigger.TAG_ADDED, {"tag": watched.pk})
    contact = ContactFactory()

    contacts_tag(contact_ids=[contact.pk], tags=[watched, other])
    first_link = ContactTag.objects.get(contact=contact, tag=watched)
    automations_scan()
    automations_scan()
    assert _runs(automation) == [(contact.pk, f"tag:{first_link.pk}")]

    contacts_untag(contact_ids=[contact.pk], tags=[watched])
    contacts_tag(contact_ids=[contact.pk], tags=[watched])
    second_link = ContactTag.objects.get(contact=contact, tag=watched)
    automations_scan()
    assert _runs(automation) == sorted([(contact.pk, f"tag:{first_link.pk}"), (contact.pk, f"tag:{second_link.pk}")])


def test_tags_put_on_before_activation_never_fire(manager):
    watched = TagFactory()
    contact = ContactFactory()
    contacts_tag(contact_ids=[contact.pk], tags=[watched])
    automation = _make(manager, Trigger.TAG_ADDED, {"tag": watched.pk})

    automations_scan()

    assert _runs(automation) == []


def test_joined_community_fires_per_join_and_honours_the_community_setting(manager):
    vip, other = CommunityFactory(name="VIP群"), CommunityFactory(name="普通群")
    any_community = _make(manager, Trigger.JOINED_COMMUNITY)
    only_vip = _make(manager, Trigger.JOINED_COMMUNITY, {"community": vip.pk})
    contact = ContactFactory()
    joined_vip = MembershipFactory(contact=contact, community=vip)
    joined_other = MembershipFactory(contact=contact, community=other)
    MembershipFactory(community=vip, joined_at=any_community.active_since - DAY)  # history

    automations_scan()
    automations_scan()

    assert _runs(any_community) == sorted(
        [(contact.pk, f"join:{joined_vip.pk}"), (contact.pk, f"join:{joined_other.pk}")]
    )
    assert _runs(only_vip) == [(contact.pk, f"join:{joined_vip.pk}")]


def test_events_during_the_overlap_are_read_again_but_fire_once(manager):
    automation = _make(manager, Trigger.CONTACT_CREATED)
    contact = ContactFactory()
    now = timezone.now()
    automations_scan(now=now)
    # A later scan re-reads the last minutes (a row committed late is still found) without duplicating.
    automations_scan(now=now + dt.timedelta(minutes=1))

    assert _runs(automation) == [(contact.pk, "created")]
    automation.refresh_from_db()
    assert automation.scanned_until == now + dt.timedelta(minutes=1)


def test_the_scan_mark_never_moves_backwards(manager):
    automation = _make(manager, Trigger.CONTACT_CREATED)
    now = timezone.now()
    automations_scan(now=now + dt.timedelta(minutes=5))
    automations_scan(now=now)

    automation.refresh_from_db()
    assert automation.scanned_until == now + dt.timedelta(minutes=5)


# --- Switching on and off -------------------------------------------------------------------------


def test_switching_on_does_not_replay_what_happened_while_it_was_off(manager):
    automation = _make(manager, Trigger.CONTACT_CREATED)
    automation_set_active(automation=automation, active=False)
    ContactFactory()
    automations_scan()
    automation_set_active(automation=automation, active=True)
    automations_scan()
    assert _runs(automation) == []

    later = ContactFactory()
    automations_scan()
    assert _runs(automation) == [(later.pk, "created")]
    assert automation.is_active and automation.active_since is not None


def test_switching_off_drops_waiting_runs(manager):
    automation = _make(manager, Trigger.CONTACT_CREATED, delay_minutes=60)
    ContactFactory()
    automations_scan()

    automation_set_active(automation=automation, active=False)

    run = AutomationRun.objects.get(automation=automation)
    assert (run.status, run.error) == (AutomationRun.Status.SKIPPED, "automation switched off")
    assert automation_runs_process(now=timezone.now() + DAY)["claimed"] == 0


def test_an_inactive_automation_is_not_scanned(manager):
    automation = _make(manager, Trigger.CONTACT_CREATED, is_active=False)
    ContactFactory()

    automations_scan()

    assert automation.active_since is None
    assert _runs(automation) == []


# --- Birthday ---------------------------------------------------------------------------------


@pytest.fixture
def birthday_sop(manager):
    return _active_since(_make(manager, Trigger.BIRTHDAY), LONG_AGO)


def test_birthday_fires_on_the_local_day_just_after_midnight_in_shanghai(birthday_sop):
    today = ContactFactory(birthday=dt.date(1990, 3, 15))
    yesterday = ContactFactory(birthday=dt.date(1990, 3, 14))
    # 16:30 UTC on 14 March is 00:30 on 15 March in Shanghai.
    now = dt.datetime(2026, 3, 14, 16, 30, tzinfo=UTC)

    automations_scan(now=now)
    automations_scan(now=now + dt.timedelta(hours=8))

    assert _runs(birthday_sop) == [(today.pk, "birthday:2026")]
    assert yesterday.pk not in {c for c, _k in _runs(birthday_sop)}
    assert AutomationRun.objects.get(automation=birthday_sop).due_at == _local(2026, 3, 15, 9, 0)


def test_birthday_late_in_the_local_day_is_due_now(birthday_sop):
    contact = ContactFactory(birthday=dt.date(1990, 3, 15))
    now = dt.datetime(2026, 3, 15, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai, still the 15th

    automations_scan(now=now)
    automations_scan(now=dt.datetime(2026, 3, 15, 16, 1, tzinfo=UTC))  # 00:01 on the 16th: nothing new

    assert _runs(birthday_sop) == [(contact.pk, "birthday:2026")]
    assert AutomationRun.objects.get(automation=birthday_sop).due_at == now


def test_birthday_fires_once_a_year(birthday_sop):
    contact = ContactFactory(birthday=dt.date(1990, 3, 15))

    automations_scan(now=_local(2026, 3, 15, 10, 0))
    automations_scan(now=_local(2026, 3, 15, 11, 0))
    automations_scan(now=_local(2027, 3, 15, 10, 0))

    assert _runs(birthday_sop) == [(contact.pk, "birthday:2026"), (contact.pk, "birthday:2027")]


def test_february_29_birthdays_fall_on_february_28_in_common_years(birthday_sop):
    leapling = ContactFactory(birthday=dt.date(2000, 2, 29))

    automations_scan(now=_local(2027, 2, 28, 10, 0))
    assert _runs(birthday_sop) == [(leapling.pk, "birthday:2027")]

    automations_scan(now=_local(2028, 2, 28, 10, 0))
    assert len(_runs(birthday_sop)) == 1
    automations_scan(now=_local(2028, 2, 29, 10, 0))
    assert _runs(birthday_sop) == [(leapling.pk, "birthday:2027"), (leapling.pk, "birthday:2028")]


def test_birthday_delay_counts_from_nine_in_the_morning(manager):
    automation = _active_since(_make(manager, Trigger.BIRTHDAY, delay_minutes=30), LONG_AGO)
    ContactFactory(birthday=dt.date(1990, 3, 15))

    automations_scan(now=_local(2026, 3, 15, 0, 5))

    assert AutomationRun.objects.get(automation=automation).due_at == _local(2026, 3, 15, 9, 30)


# --- Inactivity -------------------------------------------------------------------------------


def _last_interaction(contact, when):
    Contact.objects.filter(pk=contact.pk).update(last_interaction_at=when)


def test_inactivity_fires_once_per_spell(manager):
    now = timezone.now()
    automation = _active_since(_make(manager, Trigger.INACTIVE, {"days": 30}), now - 20 * DAY)
    contact = ContactFactory(acquired_at=now - 400 * DAY)
    first_spell = now - 40 * DAY
    _last_interaction(contact, first_spell)

    automations_scan(now=now)
    automations_scan(now=now + dt.timedelta(hours=1))
    first_key = f"inactive:{timezone.localtime(first_spell, SHANGHAI).date().isoformat()}"
    assert _runs(automation) == [(contact.pk, first_key)]
    assert AutomationRun.objects.get(automation=automation).due_at == first_spell + 30 * DAY

    second_spell = now + DAY  # they came back
    _last_interaction(contact, second_spell)
    automations_scan(now=now + 2 * DAY)
    assert len(_runs(automation)) == 1
    automations_scan(now=now + 32 * DAY)
    automations_scan(now=now + 33 * DAY)
    second_key = f"inactive:{timezone.localtime(second_spell, SHANGHAI).date().isoformat()}"
    assert _runs(automation) == sorted([(contact.pk, first_key), (contact.pk, second_key)])


def test_inactivity_counts_from_acquisition_when_there_was_no_interaction(manager):
    now = timezone.now()
    automation = _active_since(_make(manager, Trigger.INACTIVE, {"days": 30}), now - 20 * DAY)
    silent = ContactFactory(acquired_at=now - 35 * DAY)
    ContactFactory(acquired_at=now - 10 * DAY)  # not inactive long enough yet

    automations_scan(now=now)

    key = f"inactive:{timezone.localtime(now - 35 * DAY, SHANGHAI).date().isoformat()}"
    assert _runs(automation) == [(silent.pk, key)]


def test_the_spell_is_named_by_the_local_date_of_the_last_interaction(manager):
    automation = _active_since(_make(manager, Trigger.INACTIVE, {"days": 30}), LONG_AGO)
    contact = ContactFactory(acquired_at=LONG_AGO)
    # 17:00 UTC on 14 March is 01:00 on 15 March in Shanghai.
    _last_interaction(contact, dt.datetime(2026, 3, 14, 17, 0, tzinfo=UTC))

    automations_scan(now=dt.datetime(2026, 4, 14, 0, 0, tzinfo=UTC))

    assert _runs(automation) == [(contact.pk, "inactive:2026-03-15")]


def test_contacts_already_inactive_before_activation_never_fire(manager):
    now = timezone.now()
    automation = _active_since(_make(manager, Trigger.INACTIVE, {"days": 30}), now - 20 * DAY)
    dormant = ContactFactory(acquired_at=now - 400 * DAY)
    _last_interaction(dormant, now - 100 * DAY)  # inactive since 70 days ago, before activation

    automations_scan(now=now)

    assert _runs(automation) == []


# --- Repurchase -------------------------------------------------------------------------------


@pytest.fixture
def cycle_product(db):
    return ProductFactory(name="猫粮", repurchase_cycle_days=30)


@pytest.fixture
def repurchase(manager):
    now = timezone.now()
    template = AutomationTemplateFactory(body="{name}，您的{product}该补货了")
    automation = automation_create(
        created_by=manager,
        name="复购提醒",
        trigger=Trigger.REPURCHASE_DUE,
        action=Action.SEND_TEMPLATE,
        template=template,
    )
    return _active_since(automation, now - 90 * DAY), now


def test_repurchase_reminder_fires_once_per_purchase_cycle(repurchase, cycle_product):
    automation, now = repurchase
    contact = ContactFactory()
    purchase = _buy(contact, cycle_product, now - 31 * DAY)
    not_yet = _buy(ContactFactory(), cycle_product, now - 29 * DAY)

    automations_scan(now=now)
    automations_scan(now=now + dt.timedelta(minutes=1))

    assert _runs(automation) == [(contact.pk, f"repurchase:{purchase.pk}:{cycle_product.pk}")]
    run = AutomationRun.objects.get(automation=automation)
    assert (run.purchase_id, run.product_id) == (purchase.pk, cycle_product.pk)
    assert run.due_at == purchase.purchased_at + 30 * DAY

    automations_scan(now=now + 2 * DAY)
    assert len(_runs(automation)) == 2
    assert AutomationRun.objects.filter(automation=automation, purchase=not_yet).count() == 1


def test_no_repurchase_reminder_after_buying_the_product_again(repurchase, cycle_product):
    automation, now = repurchase
    contact = ContactFactory()
    _buy(contact, cycle_product, now - 40 * DAY)
    again = _buy(contact, cycle_product, now - 10 * DAY)

    automations_scan(now=now)
    assert _runs(automation) == []

    automations_scan(now=now + 21 * DAY)
    assert _runs(automation) == [(contact.pk, f"repurchase:{again.pk}:{cycle_product.pk}")]


def test_buying_another_product_does_not_cancel_the_reminder(repurchase, cycle_product):
    automation, now = repurchase
    contact = ContactFactory()
    purchase = _buy(contact, cycle_product, now - 31 * DAY)
    _buy(contact, ProductFactory(name="猫砂"), now - DAY)

    automations_scan(now=now)

    assert _runs(automation) == [(contact.pk, f"repurchase:{purchase.pk}:{cycle_product.pk}")]


def test_refunded_purchases_get_no_repurchase_reminder(repurchase, cycle_product):
    automation, now = repurchase
    contact = ContactFactory()
    purchase = _buy(contact, cycle_product, now - 31 * DAY)
    purchase_refund(purchase=purchase)
    _buy(ContactFactory(), cycle_product, now - 31 * DAY, status="refunded")

    automations_scan(now=now)

    assert _runs(automation) == []


def test_a_refunded_later_purchase_does_not_count_as_buying_again(repurchase, cycle_product):
    automation, now = repurchase
    contact = ContactFactory()
    first = _buy(contact, cycle_product, now - 31 * DAY)
    purchase_refund(purchase=_buy(contact, cycle_product, now - 5 * DAY))

    automations_scan(now=now)

    assert _runs(automation) == [(contact.pk, f"repurchase:{first.pk}:{cycle_product.pk}")]


def test_a_second_purchase_starts_a_new_cycle_with_its_own_single_reminder(repurchase, cycle_product):
    automation, now = repurchase
    contact = ContactFactory()
    first = _buy(contact, cycle_product, now - 31 * DAY)
    automations_scan(now=now)
    assert automation_runs_process(now=now)["done"] == 1

    second = _buy(contact, cycle_product, now + DAY)
    automations_scan(now=now + 2 * DAY)
    assert len(_runs(automation)) == 1
    automations_scan(now=now + 32 * DAY)
    automations_scan(now=now + 33 * DAY)

    assert _runs(automation) == sorted(
        [
            (contact.pk, f"repurchase:{first.pk}:{cycle_product.pk}"),
            (contact.pk, f"repurchase:{second.pk}:{cycle_product.pk}"),
        ]
    )


def test_reminders_due_before_activation_never_fire(repurchase, cycle_product):
    automation, now = repurchase  # active since 90 days ago
    _buy(ContactFactory(), cycle_product, now - 200 * DAY)

    automations_scan(now=now)

    assert _runs(automation) == []


def test_products_without_a_cycle_and_other_products_than_the_configured_one_get_no_reminder(manager, cycle_product):
    now = timezone.now()
    other = ProductFactory(name="狗粮", repurchase_cycle_days=7)
    no_cycle = ProductFactory(name="猫爬架", repurchase_cycle_days=None)
    automation = _active_since(_make(manager, Trigger.REPURCHASE_DUE, {"product": cycle_product.pk}), now - 90 * DAY)
    contact = ContactFactory()
    bought = _buy(contact, cycle_product, now - 31 * DAY)
    _buy(contact, other, now - 31 * DAY)
    _buy(contact, no_cycle, now - 31 * DAY)

    automations_scan(now=now)

    assert _runs(automation) == [(contact.pk, f"repurchase:{bought.pk}:{cycle_product.pk}")]


def test_a_reminder_waiting_when_the_product_is_bought_again_is_skipped(manager, cycle_product):
    now = timezone.now()
    automation = _active_since(_make(manager, Trigger.REPURCHASE_DUE, delay_minutes=120), now - 90 * DAY)
    contact = ContactFactory()
    _buy(contact, cycle_product, now - 30 * DAY - dt.timedelta(minutes=30))
    automations_scan(now=now)
    _buy(contact, cycle_product, now)

    result = automation_runs_process(now=now + dt.timedelta(hours=2))

    run = AutomationRun.objects.get(automation=automation)
    assert result["skipped"] == 1
    assert (run.status, run.error) == (AutomationRun.Status.SKIPPED, "product bought again")
    assert not ContactTag.objects.filter(contact=contact).exists()


def test_a_reminder_waiting_when_the_purchase_is_refunded_is_skipped(manager, cycle_product):
    now = timezone.now()
    automation = _active_since(_make(manager, Trigger.REPURCHASE_DUE, delay_minutes=120), now - 90 * DAY)
    purchase = _buy(ContactFactory(), cycle_product, now - 30 * DAY - dt.timedelta(minutes=30))
    automations_scan(now=now)
    purchase_refund(purchase=purchase)

    automation_runs_process(now=now + dt.timedelta(hours=2))

    run = AutomationRun.objects.get(automation=automation)
    assert (run.status, run.error) == (AutomationRun.Status.SKIPPED, "purchase refunded")


# --- Delay and condition ------------------------------------------------------------------------


def test_delay_is_respected(manager, tag):
    automation = _make(manager, Trigger.CONTACT_CREATED, delay_minutes=60, tag=tag)
    contact = ContactFactory()
    automations_scan()
    run = AutomationRun.objects.get(automation=automation)
    assert run.due_at == contact.created_at + dt.timedelta(minutes=60)

    assert automation_runs_process(now=contact.created_at + dt.timedelta(minutes=59))["claimed"] == 0
    assert not ContactTag.objects.filter(contact=contact, tag=tag).exists()

    result = automation_runs_process(now=contact.created_at + dt.timedelta(minutes=61))
    run.refresh_from_db()
    assert result["done"] == 1 and run.status == AutomationRun.Status.DONE and run.finished_at is not None
    assert ContactTag.objects.filter(contact=contact, tag=tag).exists()


def test_the_condition_segment_filters_at_fire_time(manager, tag):
    shanghai = AutomationSegmentFactory(
        rules={"op": "and", "rules": [{"field": "region", "operator": "in", "value": ["上海"]}]}
    )
    automation = _make(manager, Trigger.CONTACT_CREATED, condition=shanghai, tag=tag)
    inside = ContactFactory(region="上海")
    outside = ContactFactory(region="北京")
    moved = ContactFactory(region="上海")
    automations_scan()
    Contact.objects.filter(pk=moved.pk).update(region="杭州")

    result = automation_runs_process()

    assert (result["done"], result["skipped"]) == (1, 2)
    statuses = dict(AutomationRun.objects.filter(automation=automation).values_list("contact_id", "status"))
    assert statuses == {inside.pk: "done", outside.pk: "skipped", moved.pk: "skipped"}
    assert AutomationRun.objects.get(contact=outside).error == "condition not met"
    assert list(ContactTag.objects.filter(tag=tag).values_list("contact_id", flat=True)) == [inside.pk]


def test_contacts_erased_before_the_run_fires_are_skipped(manager, tag):
    automation = _make(manager, Trigger.CONTACT_CREATED, tag=tag)
    contact = ContactFactory()
    automations_scan()
    Contact.objects.filter(pk=contact.pk).update(erased_at=timezone.now())

    automation_runs_process()

    run = AutomationRun.objects.get(automation=automation)
    assert (run.status, run.error) == ("skipped", "contact erased or merged")


# --- Actions ----------------------------------------------------------------------------------


def test_add_tag_puts_the_tag_on_as_the_automation(manager, tag):
    _make(manager, Trigger.CONTACT_CREATED, tag=tag)
    contact = ContactFactory()
    automations_scan()

    automation_runs_process()

    link = ContactTag.objects.get(contact=contact, tag=tag)
    assert link.source == ContactTag.Source.AUTOMATION


def test_remove_tag_takes_the_tag_off(manager, tag):
    watched = TagFactory(name="待跟进")
    _make(manager, Trigger.TAG_ADDED, {"tag": watched.pk}, action=Action.REMOVE_TAG, tag=tag)
    contact = ContactFactory()
    contacts_tag(contact_ids=[contact.pk], tags=[tag, watched])
    automations_scan()

    automation_runs_process()

    assert set(ContactTag.objects.filter(contact=contact).values_list("tag_id", flat=True)) == {watched.pk}


def test_assign_owner_hands_the_contact_over(manager, operator):
    _make(manager, Trigger.CONTACT_CREATED, action=Action.ASSIGN_OWNER, owner=operator)
    contact = ContactFactory(owner=manager)
    automations_scan()

    automation_runs_process()

    contact.refresh_from_db()
    assert contact.owner == operator


def test_assign_owner_to_a_user_deactivated_since_fails_the_runs(manager, operator):
    automation = _make(manager, Trigger.CONTACT_CREATED, action=Action.ASSIGN_OWNER, owner=operator)
    contact = ContactFactory(owner=manager)
    automations_scan()
    type(operator).objects.filter(pk=operator.pk).update(is_active=False)

    result = automation_runs_process()

    run = AutomationRun.objects.get(automation=automation)
    assert result["failed"] == 1 and run.status == AutomationRun.Status.FAILED
    assert run.error
    contact.refresh_from_db()
    assert contact.owner == manager


def test_create_task_gives_the_owner_a_task_due_in_a_day_and_skips_contacts_without_owner(manager, operator):
    automation = _make(manager, Trigger.CONTACT_CREATED, action=Action.CREATE_TASK, task_title="新客回访")
    owned = ContactFactory(owner=operator)
    orphan = ContactFactory(owner=None)
    automations_scan()
    now = timezone.now()

    result = automation_runs_process(now=now)

    task = FollowUpTask.objects.get()
    assert (task.assignee, task.contact, task.title, task.status) == (operator, owned, "新客回访", "open")
    assert task.due_at == now + DAY
    assert task.automation_run.contact_id == owned.pk
    orphan_run = AutomationRun.objects.get(automation=automation, contact=orphan)
    assert (orphan_run.status, orphan_run.error) == ("skipped", "no owner")
    assert (result["done"], result["skipped"], result["tasks"]) == (1, 1, 1)


# --- Sending ----------------------------------------------------------------------------------


@pytest.fixture
def welcome(manager):
    template = AutomationTemplateFactory(body="{name}，欢迎加入！券码 {coupon}")
    return automation_create(
        created_by=manager,
        name="新客欢迎",
        trigger=Trigger.CONTACT_CREATED,
        action=Action.SEND_TEMPLATE,
        template=template,
        variables={"coupon": "HELLO10"},
    )


def test_a_send_template_run_produces_exactly_one_delivery(welcome):
    contact = ContactFactory(name="王芳")
    automations_scan()

    automation_runs_process()
    # A retry of the same run (say its status update was lost) writes no second delivery.
    AutomationRun.objects.filter(automation=welcome).update(status=AutomationRun.Status.WAITING)
    automation_runs_process()
    automation_runs_process()

    delivery = Delivery.objects.get()
    run = AutomationRun.objects.get(automation=welcome)
    assert (delivery.automation_run, delivery.contact, delivery.broadcast) == (run, contact, None)
    assert (delivery.status, delivery.medium, delivery.is_marketing) == ("pending", "wecom", True)
    assert delivery.template == welcome.template


def test_service_templates_make_service_deliveries(manager):
    template = AutomationTemplateFactory(body="{name}，感谢您的订单", is_service=True)
    automation_create(
        created_by=manager,
        name="下单感谢",
        trigger=Trigger.PURCHASE_MADE,
        action=Action.SEND_TEMPLATE,
        template=template,
        medium="sms",
    )
    _buy(ContactFactory(), ProductFactory(), timezone.now())
    automations_scan()

    automation_runs_process()

    delivery = Delivery.objects.get()
    assert (delivery.is_marketing, delivery.medium) == (False, "sms")


def test_automation_messages_go_through_the_outbox_respecting_consent_and_opt_out(welcome):
    ok = ContactFactory(name="王芳", marketing_consent=True)
    no_consent = ContactFactory(marketing_consent=False)
    opted_out = ContactFactory(marketing_consent=True, opted_out_at=timezone.now())
    automations_scan()
    automation_runs_process()

    sending.deliveries_send(broadcast_id=None)
    sending.deliveries_send(broadcast_id=None)

    outcome = {d.contact_id: (d.status, d.reason) for d in Delivery.objects.all()}
    assert outcome == {
        ok.pk: ("sent", ""),
        no_consent.pk: ("suppressed", "no_consent"),
        opted_out.pk: ("suppressed", "opted_out"),
    }
    message = OutboxMessage.objects.get()
    assert message.contact_id == ok.pk
    assert message.body == "王芳，欢迎加入！券码 HELLO10"


def test_the_repurchase_reminder_names_the_product(repurchase, cycle_product):
    automation, now = repurchase
    contact = ContactFactory(name="李雷")
    _buy(contact, cycle_product, now - 31 * DAY)
    automations_scan(now=now)
    automation_runs_process(now=now)

    sending.deliveries_send(broadcast_id=None)

    assert OutboxMessage.objects.get().body == "李雷，您的猫粮该补货了"


def test_the_broadcasts_tick_starts_a_sender_for_automation_deliveries(welcome, monkeypatch):
    ContactFactory()
    automations_scan()
    automation_runs_process()
    enqueued = []
    monkeypatch.setattr(sending, "_enqueue_senders", lambda broadcast_id, count=2: enqueued.append(broadcast_id))

    sending.broadcasts_tick()

    assert enqueued == [None]


# --- Crash safety, concurrency, the task --------------------------------------------------------


def test_a_crash_mid_chunk_leaves_the_runs_waiting_and_nothing_half_done(welcome, monkeypatch):
    ContactFactory()
    ContactFactory()
    automations_scan()
    real_finish = automations.runs._finish

    def crash_when_marking_done(runs, status, **kwargs):
        if status == AutomationRun.Status.DONE:
            raise OperationalError("worker lost the database")
        return real_finish(runs, status, **kwargs)

    monkeypatch.setattr(automations.runs, "_finish", crash_when_marking_done)
    with pytest.raises(OperationalError):
        automation_runs_process()
    assert set(AutomationRun.objects.values_list("status", flat=True)) == {"waiting"}
    assert Delivery.objects.count() == 0

    monkeypatch.setattr(automations.runs, "_finish", real_finish)
    assert automation_runs_process()["done"] == 2
    assert Delivery.objects.count() == 2


def test_runs_are_processed_in_chunks(manager, tag):
    _make(manager, Trigger.CONTACT_CREATED, tag=tag)
    contacts = [ContactFactory() for _ in range(7)]
    automations_scan()

    result = automation_runs_process(chunk_size=3)

    assert (result["claimed"], result["done"]) == (7, 7)
    assert ContactTag.objects.filter(tag=tag).count() == len(contacts)


def test_the_scan_writes_in_chunks(manager):
    automation = _make(manager, Trigger.CONTACT_CREATED)
    contacts = [ContactFactory() for _ in range(7)]

    assert automations.automation_scan(automation=automation, chunk_size=3) == 7
    assert len(_runs(automation)) == len(contacts)


def test_the_tick_scans_then_processes(welcome):
    ContactFactory()

    result = tasks.automations_tick()

    assert result["scan"]["runs"] == 1 and result["process"]["done"] == 1
    assert Delivery.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_ticks_at_once_fire_each_run_once():
    manager = UserFactory(username="mgr", role="manager")
    template = AutomationTemplateFactory(body="{name}，欢迎")
    automation = automation_create(
        created_by=manager, name="欢迎", trigger=Trigger.CONTACT_CREATED, action=Action.SEND_TEMPLATE, template=template
    )
    contacts = [ContactFactory() for _ in range(120)]
    barrier = threading.Barrier(3)
    errors, claimed = [], []

    def tick():
        try:
            barrier.wait()
            automations_scan()
            claimed.append(automation_runs_process(chunk_size=10)["claimed"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=tick) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    assert sum(claimed) == len(contacts)
    assert AutomationRun.objects.filter(automation=automation, status="done").count() == len(contacts)
    assert Delivery.objects.count() == len(contacts)
    assert connection.vendor == "postgresql"


# --- Validation -------------------------------------------------------------------------------


def _errors(**kwargs) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as exc:
        automation_create(**kwargs)
    return exc.value.message_dict


def test_unknown_trigger_and_action_are_refused_by_name(manager):
    errors = _errors(created_by=manager, name="", trigger="moon_phase", action="dance")
    assert {"name", "trigger", "action"} <= set(errors)


def test_trigger_settings_are_checked_per_trigger(manager, tag):
    base = {"created_by": manager, "name": "x", "action": Action.ADD_TAG, "tag": tag}
    assert "trigger_config.days" in _errors(trigger=Trigger.INACTIVE, **base)
    assert "trigger_config.days" in _errors(trigger=Trigger.INACTIVE, trigger_config={"days": 0}, **base)
    assert "trigger_config.days" in _errors(trigger=Trigger.INACTIVE, trigger_config={"days": True}, **base)
    assert "trigger_config.tag" in _errors(trigger=Trigger.TAG_ADDED, **base)
    assert "trigger_config.tag" in _errors(trigger=Trigger.TAG_ADDED, trigger_config={"tag": 987654}, **base)
    assert "trigger_config.community" in _errors(
        trigger=Trigger.JOINED_COMMUNITY, trigger_config={"community": 987654}, **base
    )
    no_cycle = ProductFactory(repurchase_cycle_days=None)
    assert "trigger_config.product" in _errors(
        trigger=Trigger.REPURCHASE_DUE, trigger_config={"product": no_cycle.pk}, **base
    )
    assert "trigger_config.days" in _errors(trigger=Trigger.BIRTHDAY, trigger_config={"days": 3}, **base)
    assert "trigger_config" in _errors(trigger=Trigger.BIRTHDAY, trigger_config=[1], **base)
    ok = automation_create(trigger=Trigger.INACTIVE, trigger_config={"days": "30"}, **base)
    assert ok.trigger_config == {"days": 30}


def test_send_template_needs_an_active_template_whose_placeholders_have_values(manager):
    base = {"created_by": manager, "name": "x", "action": Action.SEND_TEMPLATE}
    coupon = AutomationTemplateFactory(body="{name} 券码 {coupon}")
    product = AutomationTemplateFactory(body="{name}，{product} 该补货了")
    archived = AutomationTemplateFactory(is_active=False)

    assert "template" in _errors(trigger=Trigger.CONTACT_CREATED, **base)
    assert "template" in _errors(trigger=Trigger.CONTACT_CREATED, template=archived, **base)
    assert "variables" in _errors(trigger=Trigger.CONTACT_CREATED, template=coupon, **base)
    assert "template" in _errors(
        trigger=Trigger.CONTACT_CREATED, template=AutomationTemplateFactory(body="{name.__class__}"), **base
    )
    # {product} comes from the run for repurchase reminders and purchases, and nowhere else.
    assert "variables" in _errors(trigger=Trigger.CONTACT_CREATED, template=product, **base)
    assert automation_create(trigger=Trigger.REPURCHASE_DUE, template=product, **base).template == product
    assert automation_create(trigger=Trigger.PURCHASE_MADE, template=product, **base).template == product
    made = automation_create(trigger=Trigger.CONTACT_CREATED, template=coupon, variables={"coupon": "A1"}, **base)
    assert made.variables == {"coupon": "A1"}


def test_each_action_needs_its_own_setting(manager):
    base = {"created_by": manager, "name": "x", "trigger": Trigger.CONTACT_CREATED}
    assert "tag" in _errors(action=Action.ADD_TAG, **base)
    assert "tag" in _errors(action=Action.REMOVE_TAG, **base)
    assert "owner" in _errors(action=Action.ASSIGN_OWNER, **base)
    inactive = UserFactory(username="gone")
    type(inactive).objects.filter(pk=inactive.pk).update(is_active=False)
    inactive.refresh_from_db()
    assert "owner" in _errors(action=Action.ASSIGN_OWNER, owner=inactive, **base)
    assert "task_title" in _errors(action=Action.CREATE_TASK, task_title="  ", **base)
    assert "delay_minutes" in _errors(action=Action.CREATE_TASK, task_title="t", delay_minutes=-1, **base)
    assert "medium" in _errors(action=Action.CREATE_TASK, task_title="t", medium="pigeon", **base)


def test_fields_an_action_does_not_use_are_cleared(manager, tag):
    template = AutomationTemplateFactory()
    automation = automation_create(
        created_by=manager,
        name="x",
        trigger=Trigger.CONTACT_CREATED,
        action=Action.CREATE_TASK,
        task_title="回访",
        template=template,
        tag=tag,
    )
    assert (automation.template, automation.tag, automation.owner) == (None, None, None)


def test_update_validates_the_whole_automation_and_restarts_a_changed_trigger(manager, tag):
    automation = _make(manager, Trigger.CONTACT_CREATED, tag=tag)
    _active_since(automation, LONG_AGO)

    with pytest.raises(ValidationError) as exc:
        automation_update(automation=automation, action=Action.ASSIGN_OWNER)
    assert "owner" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        automation_update(automation=automation, created_by=manager)
    assert "created_by" in exc.value.message_dict

    automation_update(automation=automation, delay_minutes=15)
    assert automation.delay_minutes == 15 and automation.active_since == LONG_AGO
    automation_update(automation=automation, trigger=Trigger.BIRTHDAY)
    assert automation.active_since > LONG_AGO


def test_switching_on_checks_the_automation_again(manager):
    template = AutomationTemplateFactory()
    automation = automation_create(
        created_by=manager,
        name="x",
        trigger=Trigger.CONTACT_CREATED,
        action=Action.SEND_TEMPLATE,
        template=template,
        is_active=False,
    )
    template.is_active = False
    template.save()

    with pytest.raises(ValidationError) as exc:
        automation_set_active(automation=automation, active=True)
    assert "template" in exc.value.message_dict


def test_a_template_archived_after_saving_fails_its_runs(welcome):
    ContactFactory()
    automations_scan()
    welcome.template.is_active = False
    welcome.template.save()

    result = automation_runs_process()

    assert result["failed"] == 1 and Delivery.objects.count() == 0


# --- Follow-up tasks ----------------------------------------------------------------------------


def test_follow_up_task_is_for_someone_who_can_see_the_contact(manager, operator, other_operator):
    mine = ContactFactory(owner=operator)

    task = follow_up_task_create(assignee=operator, contact=mine, title=" 回访 ", note="问问使用感受")
    assert (task.title, task.status, task.assignee) == ("回访", "open", operator)

    with pytest.raises(ValidationError) as exc:
        follow_up_task_create(assignee=other_operator, contact=mine, title="回访")
    assert "assignee" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        follow_up_task_create(assignee=manager, contact=mine, title="")
    assert "title" in exc.value.message_dict
    assert follow_up_task_create(assignee=manager, contact=mine, title="主管回访").assignee == manager


def test_only_the_assignee_or_a_manager_completes_a_task(manager, operator, other_operator):
    contact = ContactFactory(owner=operator)
    task = follow_up_task_create(assignee=operator, contact=contact, title="回访")

    with pytest.raises(PermissionDenied):
        follow_up_task_complete(task=task, user=other_operator)
    follow_up_task_complete(task=task, user=operator)
    assert task.status == "done" and task.done_at is not None
    done_at = task.done_at
    follow_up_task_complete(task=task, user=operator)
    assert task.done_at == done_at

    other = follow_up_task_create(assignee=operator, contact=contact, title="再回访")
    assert follow_up_task_complete(task=other, user=manager).status == "done"
