"""Sending made visible: the broadcast editor's estimate (the planner's own checks counted by reason) and
preview, what holds the waiting messages on the progress page, their release when the quiet hours change,
a broadcast's per-recipient list, an automation's run history, and the explicit “also apply to the contacts
who match now” when an automation is switched on. The one-off messages are in test_oneoff.py."""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo

import pytest
from django.db.models import Count
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns import automations, policy, selectors, sending, services
from campaigns.gateways.outbox import OutboxGateway
from campaigns.models import (
    Automation,
    AutomationRun,
    Broadcast,
    Delivery,
    FrequencyCap,
    FrequencyPolicy,
    MessageTemplate,
    OutboxMessage,
    Segment,
)
from contacts.models import Contact, ContactTag, Purchase, PurchaseItem
from contacts.services import contacts_reassign
from tests.factories import (
    CommunityFactory,
    ContactFactory,
    MembershipFactory,
    ProductFactory,
    TagFactory,
    UserFactory,
)

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
EVERYONE = {"op": "and", "rules": []}
PASSWORD = "pass-word-123"
NIGHT = dt.datetime(2026, 11, 23, 23, 30, tzinfo=SHANGHAI)
MORNING = dt.datetime(2026, 11, 24, 8, 0, tzinfo=SHANGHAI)

pytestmark = pytest.mark.urls("tests.campaigns.urls_for_tests")


@pytest.fixture(autouse=True)
def _english(settings):
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _no_quiet_hours(db):
    FrequencyPolicy.objects.update_or_create(
        pk=1, defaults={"quiet_hours_enabled": False, "quiet_start": dt.time(22), "quiet_end": dt.time(8)}
    )


@pytest.fixture
def template(db):
    return MessageTemplate.objects.create(name="双12", body="{name}，双十二会员专享券 {coupon}")


@pytest.fixture
def everyone(db):
    return Segment.objects.create(name="全部", rules=EVERYONE)


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def _broadcast(user, template, segment, **fields) -> Broadcast:
    return services.broadcast_create(
        created_by=user,
        name=fields.pop("name", "双12 群发"),
        template=template,
        segment=segment,
        variables=fields.pop("variables", {"coupon": "DD12"}),
        **fields,
    )


def _mixed_book(owner=None) -> dict[str, list[Contact]]:
    """Contacts of every kind the planner tells apart (WeCom addresses unique per book)."""
    now = timezone.now()
    tag = f"{getattr(owner, 'pk', 0)}"
    return {
        "ok": [ContactFactory(owner=owner, wecom_external_userid=f"wm{i}-{tag}") for i in range(3)],
        "no_consent": [ContactFactory(owner=owner, marketing_consent=False, wecom_external_userid=f"wmx-{tag}")],
        "opted_out": [ContactFactory(owner=owner, opted_out_at=now, wecom_external_userid=f"wmy-{tag}")],
        "no_address": [ContactFactory(owner=owner, wecom_external_userid=None), ContactFactory(owner=owner)],
    }


def _planned(broadcast) -> dict[tuple[str, str], int]:
    rows = Delivery.objects.filter(broadcast=broadcast).values_list("status", "reason").annotate(n=Count("id"))
    return {(status, reason): n for status, reason, n in rows}


# --- The estimate -------------------------------------------------------------------------------------


def test_the_estimate_counts_exactly_what_the_planner_then_writes(manager, template, everyone, settings):
    settings.SCRM_GATEWAYS = {**settings.SCRM_GATEWAYS, "wecom": "tests.campaigns.test_sending_visible.AddressGateway"}
    _mixed_book()
    capped = ContactFactory(wecom_external_userid="wm-capped", region="杭州")
    FrequencyCap.objects.create(window="rolling", window_days=7, max_messages=1)
    earlier = _broadcast(manager, template, Segment.objects.create(name="one", rules=_only(capped)))
    _send(earlier, manager)

    audience = selectors.audience_contacts(author=manager, rules=EVERYONE, community_ids=[])
    estimate = policy.recipients_estimate(audience, medium="wecom", is_marketing=True, now=timezone.now())
    assert estimate == {
        "total": 8,
        "eligible": 3,
        "by_reason": {"opted_out": 1, "no_consent": 1, "no_address": 2, "frequency_cap": 1},
    }

    broadcast = _broadcast(manager, template, everyone)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING)
    sending.broadcast_plan(broadcast=Broadcast.objects.get(pk=broadcast.pk))
    planned = _planned(broadcast)
    assert planned.pop(("pending", "")) == estimate["eligible"]
    assert {reason: n for (_status, reason), n in planned.items()} == estimate["by_reason"]


def test_the_editor_shows_the_breakdown_and_a_preview_for_the_first_recipient(manager, template, everyone):
    book = _mixed_book()
    client = logged_in(manager)
    data = {"segment": everyone.pk, "template": template.pk, "variables": "coupon=VIP88", "medium": "wecom"}
    response = client.post(reverse("campaigns:broadcast_estimate"), data, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="estimate-eligible">5<' in page  # the outbox needs no address
    assert 'data-reason="no_consent"' in page and 'data-reason="opted_out"' in page
    first = min(c.pk for c in book["ok"] + book["no_address"])
    assert f"{Contact.objects.get(pk=first).name}，双十二会员专享券 VIP88" in page
    assert 'data-testid="sample-first"' in page

    # Another contact to preview for, by name; one who is not in the audience says so.
    ContactFactory(name="区外客户", region="北京")
    shanghai = Segment.objects.create(name="上海", rules={"op": "and", "rules": [_region("上海")]})
    response = client.post(reverse("campaigns:broadcast_estimate"), {**data, "segment": shanghai.pk, "sample": "区外"})
    page = response.content.decode()
    assert "区外客户，双十二会员专享券 VIP88" in page and 'data-testid="sample-outside"' in page
    # A missing variable is named; the medium changes the address check.
    response = client.post(reverse("campaigns:broadcast_estimate"), {**data, "variables": ""})
    assert "give it in the variables" in response.content.decode()


def test_an_operators_estimate_counts_only_their_own_contacts(operator, other_operator, template, everyone):
    _mixed_book(owner=operator)
    _mixed_book(owner=other_operator)
    theirs = ContactFactory(owner=other_operator, name="别人的客户")
    client = logged_in(operator)
    data = {"segment": everyone.pk, "template": template.pk, "variables": "coupon=X", "medium": "wecom"}
    page = client.post(reverse("campaigns:broadcast_estimate"), data).content.decode()
    assert 'data-testid="estimate-total">7<' in page
    # Previewing for another operator's contact answers like a contact that does not exist.
    page = client.post(reverse("campaigns:broadcast_estimate"), {**data, "sample": str(theirs.pk)}).content.decode()
    assert "None of your contacts matches" in page and "别人的客户" not in page
    # Another operator's broadcast named in the estimate is a 404.
    their_broadcast = _broadcast(other_operator, template, everyone)
    response = client.post(reverse("campaigns:broadcast_estimate"), {**data, "broadcast": their_broadcast.pk})
    assert response.status_code == 404


def test_the_estimate_says_when_the_quiet_hours_would_hold_the_messages(manager, template, everyone):
    ContactFactory()
    now = timezone.localtime(timezone.now(), SHANGHAI)
    FrequencyPolicy.objects.filter(pk=1).update(
        quiet_hours_enabled=True,
        quiet_start=(now - dt.timedelta(hours=1)).time(),
        quiet_end=(now + dt.timedelta(hours=1)).time().replace(second=0, microsecond=0),
    )
    client = logged_in(manager)
    data = {"segment": everyone.pk, "template": template.pk, "variables": "coupon=X", "medium": "wecom"}
    page = client.post(reverse("campaigns:broadcast_estimate"), {**data, "defer_quiet_hours": "on"}).content.decode()
    assert "It is quiet hours now" in page and "wait until" in page
    page = client.post(reverse("campaigns:broadcast_estimate"), data).content.decode()
    assert "would not be sent" in page


def test_a_draft_page_shows_the_estimate(manager, template, everyone):
    _mixed_book()
    broadcast = _broadcast(manager, template, everyone)
    page = logged_in(manager).get(reverse("campaigns:broadcast_detail", args=[broadcast.pk])).content.decode()
    assert 'data-testid="estimate-card"' in page and 'data-testid="estimate-eligible">5<' in page


# --- Holds and their release ------------------------------------------------------------------------


def _quiet_night():
    FrequencyPolicy.objects.filter(pk=1).update(quiet_hours_enabled=True, quiet_start=dt.time(22), quiet_end=dt.time(8))


def _start_at_night(broadcast, user, *, night=NIGHT) -> Broadcast:
    services.broadcast_submit(broadcast=broadcast, user=user)
    Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING, started_at=night)
    sending.broadcast_plan(broadcast=Broadcast.objects.get(pk=broadcast.pk), now=night)
    sending.deliveries_send_chunk(broadcast_id=broadcast.pk, now=night)
    return Broadcast.objects.get(pk=broadcast.pk)


def test_the_progress_says_how_many_wait_for_the_quiet_hours_and_until_when(manager, template, everyone):
    _quiet_night()
    ContactFactory.create_batch(3)
    ContactFactory(marketing_consent=False)
    # A night still to come, so that the page, read now, finds the messages held.
    night = timezone.localtime(timezone.now(), SHANGHAI).replace(hour=23, minute=30) + dt.timedelta(days=2)
    morning = (night + dt.timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    broadcast = _start_at_night(_broadcast(manager, template, everyone), manager, night=night)
    assert set(Delivery.objects.filter(broadcast=broadcast, status="pending").values_list("hold", "not_before")) == {
        ("quiet_hours", morning)
    }
    progress = selectors.broadcast_progress(broadcast, now=night)
    assert progress["holds"] == [
        {"hold": "quiet_hours", "count": 3, "first": morning, "last": morning, "until": morning}
    ]

    page = logged_in(manager).get(reverse("campaigns:broadcast_progress", args=[broadcast.pk])).content.decode()
    assert f"3 waiting until {morning:%m-%d} 08:00 (quiet hours)" in page
    link = reverse("campaigns:broadcast_deliveries", args=[broadcast.pk])
    assert f'href="{link}?status=pending&amp;hold=quiet_hours"' in page
    assert f'href="{link}?status=suppressed&amp;reason=no_consent"' in page


def test_a_retry_is_a_hold_of_its_own(manager, template, everyone):
    ContactFactory()
    broadcast = _broadcast(manager, template, everyone)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING)
    sending.broadcast_plan(broadcast=Broadcast.objects.get(pk=broadcast.pk))
    soon = timezone.now() + dt.timedelta(seconds=60)
    Delivery.objects.filter(broadcast=broadcast).update(not_before=soon, hold="retry", attempts=1, error="timeout")
    holds = selectors.broadcast_progress(broadcast)["holds"]
    assert [(h["hold"], h["count"], h["until"]) for h in holds] == [("retry", 1, soon)]
    page = logged_in(manager).get(reverse("campaigns:broadcast_detail", args=[broadcast.pk])).content.decode()
    assert "1 waiting to retry after a gateway error (next at" in page


def test_shortened_quiet_hours_release_the_held_messages_to_the_new_end(manager, template, everyone):
    _quiet_night()
    ContactFactory.create_batch(4)
    broadcast = _start_at_night(_broadcast(manager, template, everyone), manager)
    # At 23:45 the quiet hours become 22:00–06:00: the messages now wait until 06:00, not 08:00.
    FrequencyPolicy.objects.filter(pk=1).update(quiet_end=dt.time(6))
    at = NIGHT + dt.timedelta(minutes=15)
    assert sending.deliveries_quiet_hours_release(now=at, current=policy.policy_get()) == 4
    six = MORNING.replace(hour=6)
    assert set(Delivery.objects.filter(broadcast=broadcast).values_list("status", "not_before")) == {("pending", six)}
    # Still quiet at 05:59; all sent at 06:00, each once.
    assert sending.deliveries_send_chunk(broadcast_id=broadcast.pk, now=six - dt.timedelta(minutes=1)).sent == 0
    assert sending.deliveries_send_chunk(broadcast_id=broadcast.pk, now=six).sent == 4
    assert sending.deliveries_send_chunk(broadcast_id=broadcast.pk, now=six).claimed == 0
    assert OutboxMessage.objects.filter(delivery__broadcast=broadcast).count() == 4
    assert not OutboxMessage.objects.values("contact_id").annotate(n=Count("id")).filter(n__gt=1).exists()


def test_quiet_hours_switched_off_release_the_held_messages_now(manager, template, everyone):
    _quiet_night()
    ContactFactory.create_batch(2)
    deferred = _start_at_night(_broadcast(manager, template, everyone), manager)
    FrequencyPolicy.objects.filter(pk=1).update(quiet_hours_enabled=False)
    at = NIGHT + dt.timedelta(minutes=5)
    assert sending.deliveries_quiet_hours_release(now=at, current=policy.policy_get()) == 2
    assert sending.deliveries_due(broadcast_id=deferred.pk, now=at).count() == 2
    assert sending.deliveries_send_chunk(broadcast_id=deferred.pk, now=at).sent == 2
    # Released rows that had been sent are not touched again.
    assert sending.deliveries_quiet_hours_release(now=at, current=policy.policy_get()) == 0


def test_the_policy_page_releases_what_the_old_quiet_hours_hold(manager, template, everyone):
    """Through the service at the real time: quiet hours around now hold the messages; moving their end to
    a minute from now makes them wait only that minute; switching them off makes them due now."""
    ContactFactory.create_batch(2)
    now = timezone.localtime(timezone.now(), SHANGHAI)
    start, end = (now - dt.timedelta(hours=1)).time(), (now + dt.timedelta(hours=2)).time().replace(microsecond=0)
    FrequencyPolicy.objects.filter(pk=1).update(quiet_hours_enabled=True, quiet_start=start, quiet_end=end)
    broadcast = _broadcast(manager, template, everyone)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    sending.broadcasts_tick()
    sending.broadcast_start(broadcast_id=broadcast.pk)
    sending.deliveries_send(broadcast_id=broadcast.pk)
    held = Delivery.objects.filter(broadcast=broadcast, status="pending", hold="quiet_hours")
    assert held.count() == 2 and held.first().not_before > timezone.now() + dt.timedelta(hours=1)

    soon = (now + dt.timedelta(minutes=2)).time().replace(second=0, microsecond=0)
    policy_args = {"user": manager, "exempt_service_messages": True, "caps": []}
    services.policy_update(quiet_hours_enabled=True, quiet_start=start, quiet_end=soon, **policy_args)
    new_end = policy.quiet_hours_end(timezone.now(), policy=policy.policy_get())
    assert set(held.values_list("not_before", flat=True)) == {new_end}

    services.policy_update(quiet_hours_enabled=False, quiet_start=start, quiet_end=soon, **policy_args)
    assert sending.deliveries_due(broadcast_id=broadcast.pk, now=timezone.now()).count() == 2
    while sending.deliveries_send(broadcast_id=broadcast.pk)["more"]:
        pass
    assert _planned(broadcast) == {("sent", ""): 2}
    assert Broadcast.objects.get(pk=broadcast.pk).status == Broadcast.Status.SENT


# --- A broadcast's recipients ---------------------------------------------------------------------


def _sent_broadcast(user, template, segment) -> Broadcast:
    broadcast = _broadcast(user, template, segment)
    return _send(broadcast, user)


def _send(broadcast, user) -> Broadcast:
    services.broadcast_submit(broadcast=broadcast, user=user)
    sending.broadcasts_tick()
    sending.broadcast_start(broadcast_id=broadcast.pk)
    while sending.deliveries_send(broadcast_id=broadcast.pk)["more"]:
        pass
    return Broadcast.objects.get(pk=broadcast.pk)


def test_the_recipients_list_filters_by_status_and_reason_and_links_each_contact(manager, template, everyone):
    book = _mixed_book()
    broadcast = _sent_broadcast(manager, template, everyone)
    client = logged_in(manager)
    url = reverse("campaigns:broadcast_deliveries", args=[broadcast.pk])
    page = client.get(url).content.decode()
    assert page.count('data-testid="recipient-row"') == 7
    page = client.get(url, {"status": "suppressed", "reason": "no_consent"}).content.decode()
    assert page.count('data-testid="recipient-row"') == 1
    (blocked,) = book["no_consent"]
    assert reverse("contacts:detail", args=[blocked.pk]) in page
    page = client.get(url, {"status": "sent"}).content.decode()
    assert page.count('data-testid="recipient-row"') == 5
    # The results page links each blocked count to this list.
    detail = client.get(reverse("campaigns:broadcast_detail", args=[broadcast.pk])).content.decode()
    assert f"{url}?status=suppressed&amp;reason=opted_out" in detail


def test_an_operator_sees_only_the_deliveries_to_their_own_contacts(operator, other_operator, manager, template):
    everyone = Segment.objects.create(name="全部", rules=EVERYONE)
    ContactFactory(owner=operator, name="我的客户")
    broadcast = _broadcast(operator, template, everyone)
    services.broadcast_submit(broadcast=broadcast, user=operator)
    services.broadcast_approve(broadcast=broadcast, user=manager)
    ContactFactory(owner=operator, name="后来转走的客户")
    Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING)
    sending.broadcast_plan(broadcast=Broadcast.objects.get(pk=broadcast.pk))
    # Handed over to another operator after planning: no longer this operator's to see.
    contacts_reassign(contacts=Contact.objects.filter(name="后来转走的客户"), owner=other_operator)
    client = logged_in(operator)
    page = client.get(reverse("campaigns:broadcast_deliveries", args=[broadcast.pk])).content.decode()
    assert "我的客户" in page and "后来转走的客户" not in page
    # Another operator's broadcast: 404, like an id that does not exist.
    theirs = _broadcast(other_operator, template, everyone)
    assert client.get(reverse("campaigns:broadcast_deliveries", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("campaigns:broadcast_deliveries", args=[999999])).status_code == 404


def test_the_recipients_list_pages_and_keeps_its_query_count(
    manager, template, everyone, django_assert_max_num_queries
):
    ContactFactory.create_batch(60)
    broadcast = _sent_broadcast(manager, template, everyone)
    client = logged_in(manager)
    url = reverse("campaigns:broadcast_deliveries", args=[broadcast.pk])
    client.get(url)  # warm the session and permission caches
    with django_assert_max_num_queries(12):
        page = client.get(url).content.decode()
    assert page.count('data-testid="recipient-row"') == 50
    page = client.get(url, {"page": 2}).content.decode()
    assert page.count('data-testid="recipient-row"') == 10


# --- Automation run history ----------------------------------------------------------------------


def _automation(manager, **fields) -> Automation:
    fields.setdefault("name", "新客欢迎")
    fields.setdefault("trigger", Automation.Trigger.CONTACT_CREATED)
    fields.setdefault("action", Automation.Action.SEND_TEMPLATE)
    if fields["action"] == Automation.Action.SEND_TEMPLATE:
        fields.setdefault("template", MessageTemplate.objects.create(name="欢迎", body="{name}，欢迎加入"))
    return automations.automation_create(created_by=manager, **fields)


def test_the_run_history_shows_each_run_and_what_it_did_for_the_users_contacts(
    manager, operator, other_operator, django_assert_max_num_queries
):
    automation = _automation(manager)
    mine = [ContactFactory(owner=operator, name=f"我的{i}") for i in range(3)]
    ContactFactory(owner=operator, name="没同意", marketing_consent=False)
    ContactFactory(owner=other_operator, name="别人的")
    automations.automations_scan()
    automations.automation_runs_process()
    while sending.deliveries_send(broadcast_id=None)["more"]:
        pass
    client = logged_in(operator)
    url = reverse("campaigns:automation_runs", args=[automation.pk])
    client.get(url)
    with django_assert_max_num_queries(12):
        page = client.get(url).content.decode()
    assert page.count('data-testid="run-row"') == 4
    assert "别人的" not in page and all(c.name in page for c in mine)
    assert "No consent" in page and page.count(">Sent<") >= 3
    assert 'data-status="done"' in page
    # The manager sees every run; the counts say the same.
    page = logged_in(manager).get(url).content.decode()
    assert page.count('data-testid="run-row"') == 5
    assert client.get(reverse("campaigns:automation_runs", args=[999999])).status_code == 404


def test_skipped_runs_say_why(manager):
    segment = Segment.objects.create(name="上海", rules={"op": "and", "rules": [_region("上海")]})
    automation = _automation(manager, condition=segment)
    ContactFactory(region="北京", name="北京客户")
    automations.automations_scan()
    automations.automation_runs_process()
    page = logged_in(manager).get(reverse("campaigns:automation_runs", args=[automation.pk]), {"status": "skipped"})
    assert "condition not met" in page.content.decode()


# --- Also apply to the contacts who match now ------------------------------------------------------


def test_switching_on_applies_to_current_matches_only_when_asked_and_only_once(manager):
    tag = TagFactory()
    tagged = ContactFactory.create_batch(3)
    ContactFactory()  # not tagged
    for contact in tagged:
        ContactTag.objects.create(contact=contact, tag=tag)
    automation = _automation(
        manager, trigger=Automation.Trigger.TAG_ADDED, trigger_config={"tag": tag.pk}, is_active=False
    )
    assert automations.automation_backfill_count(automation) == 3

    # Default: history is not replayed.
    automations.automation_set_active(automation=automation, active=True)
    automations.automations_scan()
    assert not AutomationRun.objects.exists()

    # Off, and on again with the option: one run per tagged contact, due now, keyed like the scan's.
    automations.automation_set_active(automation=automation, active=False)
    automation = automations.automation_set_active(automation=automation, active=True, apply_to_current=True)
    assert automation.applied_to_current == 3
    keys = set(AutomationRun.objects.values_list("contact_id", "key"))
    assert keys == {(ct.contact_id, f"tag:{ct.pk}") for ct in ContactTag.objects.filter(tag=tag)}
    assert automations.automation_backfill_count(automation) == 0
    automations.automation_runs_process()
    assert Delivery.objects.filter(automation_run__automation=automation).count() == 3
    # A scan, and the same option again, write nothing more.
    automations.automations_scan()
    automations.automation_set_active(automation=automation, active=False)
    again = automations.automation_set_active(automation=automation, active=True, apply_to_current=True)
    assert again.applied_to_current == 0 and AutomationRun.objects.count() == 3


@pytest.mark.parametrize(
    "trigger",
    ["contact_created", "purchase_made", "joined_community", "birthday", "inactive", "repurchase_due"],
)
def test_each_trigger_counts_what_it_then_writes(manager, trigger):
    now = timezone.now()
    long_ago = now - dt.timedelta(days=100)
    product = ProductFactory(repurchase_cycle_days=30)
    community = CommunityFactory()
    today = timezone.localtime(now, SHANGHAI).date()
    buyers = []
    for i in range(3):
        contact = ContactFactory(acquired_at=long_ago, birthday=today.replace(year=1990) if i < 2 else None)
        purchase = Purchase.objects.create(contact=contact, external_order_id=f"o{i}", purchased_at=long_ago, amount=99)
        PurchaseItem.objects.create(purchase=purchase, product=product, quantity=1, unit_price=99)
        MembershipFactory(contact=contact, community=community, joined_at=long_ago)
        buyers.append(contact)
    # A second, later order and a second community for one contact: still one run for them where "latest".
    later = Purchase.objects.create(contact=buyers[0], external_order_id="o-late", purchased_at=now, amount=9)
    PurchaseItem.objects.create(
        purchase=later, product=ProductFactory(repurchase_cycle_days=None), quantity=1, unit_price=9
    )
    MembershipFactory(contact=buyers[0], community=CommunityFactory(), joined_at=long_ago)
    ContactFactory(acquired_at=now, last_interaction_at=now)  # matches only "contact created"

    config = {"inactive": {"days": 30}}.get(trigger, {})
    automation = _automation(manager, trigger=trigger, trigger_config=config, is_active=False)
    expected = {
        "contact_created": 4,
        "purchase_made": 3,
        "joined_community": 3,
        "birthday": 2,
        "inactive": 3,
        "repurchase_due": 3,
    }[trigger]
    assert automations.automation_backfill_count(automation) == expected
    switched = automations.automation_set_active(automation=automation, active=True, apply_to_current=True)
    runs = AutomationRun.objects.filter(automation=automation)
    assert runs.values("contact_id").distinct().count() == expected == switched.applied_to_current
    assert not runs.values("contact_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    # The scan right after finds the same events under the same keys: nothing twice.
    automations.automations_scan()
    assert runs.count() == expected


def test_the_switch_on_panel_previews_the_count_and_the_option_is_off_by_default(manager, operator):
    ContactFactory.create_batch(2)
    automation = _automation(manager, is_active=False)
    client = logged_in(manager)
    url = reverse("campaigns:automation_toggle", args=[automation.pk])
    page = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-count="2"' in page and "Also apply to the 2 contacts who match now" in page
    assert 'name="apply_to_current" value="on" data-testid="apply-to-current">' in page  # not checked
    response = client.post(url, {"active": "1"})
    assert response.status_code == 302 and not AutomationRun.objects.exists()
    client.post(url, {"active": "0"})
    client.post(url, {"active": "1", "apply_to_current": "on"}, follow=True)
    assert AutomationRun.objects.count() == 2
    # Operators may not switch automations at all.
    assert logged_in(operator).get(url).status_code == 403


# --- helpers ---------------------------------------------------------------------------------------


def _region(value: str) -> dict:
    return {"field": "region", "operator": "in", "value": [value]}


def _only(contact) -> dict:
    return {"op": "and", "rules": [{"field": "region", "operator": "in", "value": [contact.region]}]}


class AddressGateway(OutboxGateway):
    """Like the outbox, but needing an address (so that "no address" is counted)."""

    needs_address = True


# --- With a real worker (PostgreSQL) ---------------------------------------------------------------


def _wait_for(predicate, *, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.mark.postgres
def test_a_real_worker_sends_the_released_messages_once(celery_worker_process):
    manager = UserFactory(username="mgr", role="manager")
    Contact.objects.bulk_create(
        [Contact(name=f"客户{i}", acquired_at=timezone.now(), marketing_consent=True) for i in range(300)]
    )
    now = timezone.localtime(timezone.now(), SHANGHAI)
    start, end = (now - dt.timedelta(hours=1)).time(), (now + dt.timedelta(hours=2)).time().replace(microsecond=0)
    FrequencyPolicy.objects.update_or_create(
        pk=1, defaults={"quiet_hours_enabled": True, "quiet_start": start, "quiet_end": end}
    )
    template = MessageTemplate.objects.create(name="Promo", body="{name}，会员日")
    broadcast = services.broadcast_create(
        created_by=manager,
        name="会员日",
        template=template,
        segment=Segment.objects.create(name="全部", rules=EVERYONE),
    )
    services.broadcast_submit(broadcast=broadcast, user=manager)
    celery_worker_process(concurrency=2, extra_env={"SCRM_SEND_CHUNK": "50"})
    sending.broadcasts_tick()
    held = Delivery.objects.filter(
        broadcast=broadcast, status="pending", hold="quiet_hours", not_before__gt=timezone.now()
    )
    _wait_for(lambda: held.count() == 300, timeout=60, what="the quiet hours to hold every message")
    assert not Delivery.objects.filter(broadcast=broadcast, status="sent").exists()

    # A manager switches the quiet hours off: the ticks (beat's job) wake the senders, which send now.
    services.policy_update(
        user=manager, quiet_hours_enabled=False, quiet_start=start, quiet_end=end, exempt_service_messages=True, caps=[]
    )

    def finished():
        sending.broadcasts_tick(stale_after=dt.timedelta(seconds=0))
        return Broadcast.objects.get(pk=broadcast.pk).status == Broadcast.Status.SENT

    _wait_for(finished, timeout=120, what="the released broadcast to finish")
    assert _planned(broadcast) == {("sent", ""): 300}
    assert OutboxMessage.objects.count() == 300
    assert not OutboxMessage.objects.values("contact_id").annotate(n=Count("id")).filter(n__gt=1).exists()
