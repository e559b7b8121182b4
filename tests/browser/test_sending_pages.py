"""Sending made visible, in a real browser: the broadcast editor's estimate and preview following the form
(htmx), a broadcast held by the quiet hours saying so and linking its blocked counts to the recipients list,
switching an automation on with the explicit “also apply to the contacts who match now”, and a one-off
message from a contact's page answered in place. Screenshots in English and Chinese: /tmp/sending-*.png."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import pytest
from playwright.sync_api import expect

from campaigns import sending, services
from campaigns.models import Automation, AutomationRun, Broadcast, FrequencyPolicy, MessageTemplate, Segment
from contacts.models import ContactTag
from scrm import roles
from tests.celery_utils import celery_conf_override
from tests.factories import ContactFactory, TagFactory, UserFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.campaigns.urls_for_tests"),
]

SHOTS = "/tmp"
SHANGHAI_TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
SHANGHAI = {"op": "and", "rules": [{"field": "region", "operator": "in", "value": ["上海"]}]}
EVERYONE = {"op": "and", "rules": []}
LANGUAGES = ("en", "zh-hans")


@pytest.fixture
def manager(transactional_db):
    return UserFactory(username="manager", first_name="王经理", role=roles.MANAGER)


@pytest.fixture
def operator(transactional_db):
    return UserFactory(username="operator", first_name="小陈", role=roles.OPERATOR)


@pytest.fixture(autouse=True)
def _no_quiet_hours(transactional_db):
    FrequencyPolicy.objects.update_or_create(
        pk=1, defaults={"quiet_hours_enabled": False, "quiet_start": dt.time(22), "quiet_end": dt.time(8)}
    )


@pytest.fixture(autouse=True)
def idle_broker(tmp_path):
    """Tasks the pages enqueue go to a folder no worker reads: the test plays beat and the workers."""
    folders = {name: tmp_path / name for name in ("queue", "control")}
    for folder in folders.values():
        folder.mkdir()
    with celery_conf_override(
        broker_url="filesystem://",
        broker_transport_options={
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "control_folder": str(folders["control"]),
            "store_processed": False,
        },
        task_always_eager=False,
    ):
        yield


@pytest.fixture
def signed_in(page, live_server):
    """A signed-in browser without going through the login page (whose landing page is not ours)."""

    def _sign_in(user):
        from django.conf import settings
        from django.test import Client

        client = Client()
        client.force_login(user)
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
        return page

    return _sign_in


def _language(page, live_server, code: str) -> None:
    page.context.add_cookies([{"name": "django_language", "value": code, "url": live_server.url}])


def test_the_editor_estimates_who_receives_it_as_the_form_changes(signed_in, manager, live_server, settings):
    settings.SCRM_GATEWAYS = {**settings.SCRM_GATEWAYS, "sms": "tests.campaigns.test_oneoff.AddressGateway"}
    shanghai = Segment.objects.create(name="上海客户", rules=SHANGHAI)
    everyone = Segment.objects.create(name="全部客户", rules=EVERYONE)
    template = MessageTemplate.objects.create(name="双12 会员券", body="{name}，双十二会员专享券 {coupon}")
    ContactFactory(region="上海", name="林小满")
    ContactFactory(region="上海", name="赵大勇", phone=None)
    ContactFactory(region="上海", name="没同意", marketing_consent=False)
    ContactFactory(region="北京", name="北京客户")

    page = signed_in(manager)
    for code in LANGUAGES:
        _language(page, live_server, code)
        page.goto("/campaigns/broadcasts/new/")
        estimate = page.locator("#broadcast-estimate")
        expect(page.get_by_test_id("estimate-note")).to_be_visible()
        page.select_option("#id_segment", str(shanghai.pk))
        expect(page.get_by_test_id("estimate-total")).to_have_text("3")
        expect(page.get_by_test_id("estimate-eligible")).to_have_text("2")
        page.select_option("#id_template", str(template.pk))
        page.fill("#id_variables", "coupon=DD12")
        expect(page.get_by_test_id("estimate-preview-body")).to_have_text("林小满，双十二会员专享券 DD12")
        # SMS needs a phone number: 赵大勇 has none.
        page.select_option("#id_medium", "sms")
        expect(page.locator('[data-testid="estimate-reason"][data-reason="no_address"] td.num')).to_have_text("1")
        expect(page.get_by_test_id("estimate-eligible")).to_have_text("1")
        page.select_option("#id_segment", str(everyone.pk))
        expect(page.get_by_test_id("estimate-total")).to_have_text("4")
        # Another contact to preview for.
        page.get_by_test_id("estimate-sample").fill("北京客户")
        page.get_by_test_id("estimate-sample-button").click()
        expect(page.get_by_test_id("estimate-preview-body")).to_have_text("北京客户，双十二会员专享券 DD12")
        expect(estimate).to_contain_text("SMS" if code == "en" else "短信")
        page.screenshot(path=f"{SHOTS}/sending-estimate-{code}.png", full_page=True)


def _held_broadcast(manager) -> Broadcast:
    """A broadcast started at a night still to come: the quiet hours hold its messages until 08:00."""
    FrequencyPolicy.objects.filter(pk=1).update(quiet_hours_enabled=True)
    everyone = Segment.objects.create(name="全部客户", rules=EVERYONE)
    template = MessageTemplate.objects.create(name="会员日", body="{name}，会员日满199减50")
    for name in ("林小满", "赵大勇", "钱多多", "孙悦"):
        ContactFactory(name=name)
    ContactFactory(name="没同意", marketing_consent=False)
    ContactFactory(name="已退订", opted_out_at=dt.datetime(2026, 1, 1, tzinfo=SHANGHAI_TZ))
    broadcast = services.broadcast_create(created_by=manager, name="会员日群发", template=template, segment=everyone)
    services.broadcast_submit(broadcast=broadcast, user=manager)
    night = dt.datetime.now(SHANGHAI_TZ).replace(hour=23, minute=30) + dt.timedelta(days=1)
    Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING, started_at=night)
    sending.broadcast_plan(broadcast=Broadcast.objects.get(pk=broadcast.pk), now=night)
    sending.deliveries_send_chunk(broadcast_id=broadcast.pk, now=night)
    return broadcast


def test_a_held_broadcast_says_why_and_its_counts_open_the_recipients(signed_in, manager, live_server):
    broadcast = _held_broadcast(manager)
    page = signed_in(manager)
    for code in LANGUAGES:
        _language(page, live_server, code)
        page.goto(f"/campaigns/broadcasts/{broadcast.pk}/")
        hold = page.locator('[data-testid="hold"][data-hold="quiet_hours"]')
        expect(hold).to_contain_text("4")
        expect(hold).to_contain_text("08:00")
        page.screenshot(path=f"{SHOTS}/sending-progress-{code}.png", full_page=True)

        hold.locator("a").click()
        page.wait_for_url(re.compile(r".*/deliveries/\?status=pending&hold=quiet_hours$"))
        expect(page.get_by_test_id("recipient-row")).to_have_count(4)

        page.goto(f"/campaigns/broadcasts/{broadcast.pk}/")
        page.locator('[data-testid="suppressed-reason"][data-reason="no_consent"] a').click()
        page.wait_for_url(re.compile(r".*/deliveries/\?status=suppressed&reason=no_consent$"))
        rows = page.get_by_test_id("recipient-row")
        expect(rows).to_have_count(1)
        expect(rows).to_contain_text("没同意")
        page.screenshot(path=f"{SHOTS}/sending-recipients-{code}.png", full_page=True)
    page.get_by_test_id("recipient-contact").click()
    page.wait_for_url(re.compile(r".*/contacts/\d+/$"))
    expect(page.locator("main")).to_contain_text("没同意")


def test_switching_an_automation_on_offers_the_contacts_who_match_now(signed_in, manager, live_server):
    tag = TagFactory(name="宝妈")
    for name in ("林小满", "赵大勇", "钱多多"):
        ContactTag.objects.create(contact=ContactFactory(name=name), tag=tag)
    template = MessageTemplate.objects.create(name="宝妈群邀请", body="{name}，邀请您加入宝妈交流群")
    automation = Automation.objects.create(
        name="宝妈入群邀请",
        trigger=Automation.Trigger.TAG_ADDED,
        trigger_config={"tag": tag.pk},
        action=Automation.Action.SEND_TEMPLATE,
        template=template,
        is_active=False,
    )
    page = signed_in(manager)
    for code in LANGUAGES:
        _language(page, live_server, code)
        page.goto("/campaigns/automations/")
        page.get_by_test_id("automation-toggle").click()
        panel = page.get_by_test_id("automation-activate")
        expect(page.get_by_test_id("matching-now")).to_have_attribute("data-count", "3")
        expect(page.get_by_test_id("apply-to-current")).not_to_be_checked()
        page.screenshot(path=f"{SHOTS}/sending-automation-on-{code}.png", full_page=True)
        expect(panel).to_be_visible()
    page.get_by_test_id("apply-to-current").check()
    page.get_by_test_id("automation-activate-submit").click()
    expect(page.get_by_test_id("message")).to_contain_text("3")
    assert AutomationRun.objects.filter(automation=automation).count() == 3

    from campaigns.automations import automation_runs_process

    automation_runs_process()
    while sending.deliveries_send(broadcast_id=None)["more"]:
        pass
    for code in LANGUAGES:
        _language(page, live_server, code)
        page.goto("/campaigns/automations/")
        page.get_by_test_id("automation-runs-link").click()
        expect(page.get_by_test_id("run-row")).to_have_count(3)
        expect(page.get_by_test_id("run-outcome").first).to_contain_text(
            "Sent" if code == "en" else "已发送", use_inner_text=True
        )
        page.screenshot(path=f"{SHOTS}/sending-runs-{code}.png", full_page=True)


def test_a_one_off_message_from_the_contact_page_answers_in_place(signed_in, operator, live_server):
    contact = ContactFactory(owner=operator, name="王小姐")
    blocked = ContactFactory(owner=operator, name="陈女士", marketing_consent=False)
    page = signed_in(operator)
    for code in LANGUAGES:
        _language(page, live_server, code)
        page.goto(f"/contacts/{contact.pk}/")
        if not page.get_by_test_id("contact-message").count():
            # The contact page includes the form once the contacts app does; the page of its own is the same form.
            page.goto(f"/campaigns/contacts/{contact.pk}/message/")
        form = page.get_by_test_id("contact-message-form")
        expect(form).to_be_visible()
        form.get_by_test_id("message-body").fill("{name}，您好！您关注的面霜到货了。")
        form.get_by_test_id("message-send").click()
        outcome = page.get_by_test_id("message-outcome")
        expect(outcome).to_have_attribute("data-state", "sent")
        expect(outcome).to_contain_text("王小姐")
        outcome.scroll_into_view_if_needed()
        page.screenshot(path=f"{SHOTS}/sending-one-off-{code}.png", full_page=False)

        page.goto(f"/campaigns/contacts/{blocked.pk}/message/")
        page.get_by_test_id("message-body").fill("{name}，您好")
        page.get_by_test_id("message-send").click()
        expect(page.get_by_test_id("message-outcome")).to_have_attribute("data-state", "blocked")
        expect(page.get_by_test_id("message-outcome")).to_contain_text("陈女士")
        page.screenshot(path=f"{SHOTS}/sending-one-off-blocked-{code}.png", full_page=True)
