"""The campaigns pages in a real browser: a manager schedules a broadcast to a segment through the form and
watches the progress bar (htmx polling) reach 100% while the sending runs — the periodic tick and the
senders are called from the test process, as beat and the workers would — then reads the messages in
the outbox; and a segment is built with the rules builder, its live count following each change."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from campaigns import sending
from campaigns.models import Broadcast, FrequencyPolicy, MessageTemplate, OutboxMessage, Segment
from contacts.models import ContactTag
from scrm import roles
from tests.celery_utils import celery_conf_override
from tests.factories import ContactFactory, TagFactory, TagGroupFactory, UserFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.campaigns.urls_for_tests"),
]

SCREENSHOT_DIR = "/tmp"
SHANGHAI = {"op": "and", "rules": [{"field": "region", "operator": "in", "value": ["上海"]}]}


@pytest.fixture
def manager(transactional_db):
    return UserFactory(username="manager", first_name="王经理", role=roles.MANAGER)


@pytest.fixture(autouse=True)
def _no_quiet_hours(transactional_db):
    # The test may run at night: quiet hours would (rightly) defer every message.
    FrequencyPolicy.objects.update_or_create(pk=1, defaults={"quiet_hours_enabled": False})


@pytest.fixture
def idle_broker(tmp_path):
    """Tasks the pages enqueue go to a filesystem broker in a temporary folder that no worker reads: the
    test itself plays beat and the workers, so it decides when sending happens."""
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


def test_manager_schedules_a_broadcast_now_and_watches_it_sent(login, manager, idle_broker):
    segment = Segment.objects.create(name="上海客户", rules=SHANGHAI)
    template = MessageTemplate.objects.create(
        name="双12 会员券", category="活动通知", body="{name}，双十二会员专享券 {coupon}"
    )
    for name in ("林小满", "赵大勇", "钱多多"):
        ContactFactory(region="上海", name=name)
    ContactFactory(region="上海", name="没同意", marketing_consent=False)
    ContactFactory(region="北京", name="北京客户")

    page = login(manager)
    page.goto("/campaigns/")
    page.get_by_test_id("broadcast-new").click()
    page.fill("#id_name", "双12 上海会员")
    page.select_option("#id_segment", str(segment.pk))
    page.select_option("#id_template", str(template.pk))
    page.fill("#id_variables", "coupon=DD12")
    page.check('input[name="when"][value="now"]')
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-broadcast-form.png", full_page=True)
    page.get_by_test_id("broadcast-save-submit").click()

    page.wait_for_url(re.compile(r".*/campaigns/broadcasts/\d+/$"))
    broadcast = Broadcast.objects.get()
    assert broadcast.status == Broadcast.Status.SCHEDULED
    live = page.get_by_test_id("broadcast-live")
    expect(live).to_have_attribute("data-status", "scheduled")
    expect(page.get_by_test_id("broadcast-percent")).to_have_text("0.0%")

    # Beat's tick finds it due; the page, polling, shows it sending.
    sending.broadcasts_tick()
    expect(live).to_have_attribute("data-status", "sending")
    # A worker plans the deliveries and the senders send them.
    sending.broadcast_start(broadcast_id=broadcast.pk)
    while sending.deliveries_send(broadcast_id=broadcast.pk)["more"]:
        pass

    expect(live).to_have_attribute("data-status", "sent")
    expect(page.get_by_test_id("broadcast-percent")).to_have_text("100.0%")
    expect(page.get_by_test_id("broadcast-progress")).to_have_attribute("aria-valuenow", "100.0")
    expect(page.get_by_test_id("count-targeted")).to_have_text("4")
    expect(page.get_by_test_id("count-sent")).to_have_text("3")
    expect(page.locator('[data-testid="suppressed-reason"][data-reason="no_consent"]')).to_contain_text("1")
    expect(page.get_by_test_id("broadcast-results")).to_be_visible()
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-broadcast-sent.png", full_page=True)

    page.get_by_test_id("outbox-link").click()
    page.wait_for_url(re.compile(r".*/campaigns/outbox/\?broadcast=\d+$"))
    rows = page.get_by_test_id("outbox-row")
    expect(rows).to_have_count(3)
    expect(page.get_by_test_id("outbox-body").first).to_contain_text("双十二会员专享券 DD12")
    expect(page.locator("main")).to_contain_text("林小满，双十二会员专享券 DD12")
    assert OutboxMessage.objects.count() == 3
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-outbox.png", full_page=True)


def test_building_a_segment_with_the_rules_builder_and_its_live_count(login, manager):
    group = TagGroupFactory(name="意向度")
    strong = TagFactory(group=group, name="强意向")
    ContactFactory(region="上海", name="上海一")
    ContactFactory(region="杭州", name="杭州一")
    tagged = ContactFactory(region="北京", name="北京强意向")
    ContactFactory(region="北京", name="北京二")
    ContactTag.objects.get_or_create(contact=tagged, tag=strong, defaults={"tagged_by": manager})

    page = login(manager)
    page.goto("/campaigns/segments/new/")
    builder = page.get_by_test_id("rules-builder")
    expect(builder).to_be_visible()
    count = page.get_by_test_id("segment-count-value")
    expect(count).to_have_text("4")  # no rules yet: everyone

    page.fill("#id_name", "上海杭州 或 强意向")
    page.locator(".rb-root > .rb-group-foot [data-testid=rule-add-condition]").click()
    condition = page.get_by_test_id("rule-condition").first
    condition.get_by_test_id("rule-field").select_option("region")
    condition.get_by_test_id("rule-operator").select_option("in")
    condition.get_by_test_id("rule-value").fill("上海, 杭州")
    expect(count).to_have_text("2")

    # OR: the root group matches any of its rules; a tag condition with no tag chosen yet is an error.
    builder.locator(".rb-root > .rb-group-head select").select_option("or")
    page.locator(".rb-root > .rb-group-foot [data-testid=rule-add-condition]").click()
    tag_condition = page.get_by_test_id("rule-condition").nth(1)
    tag_condition.get_by_test_id("rule-field").select_option("tags")
    tag_condition.get_by_test_id("rule-operator").select_option("any")
    expect(page.get_by_test_id("segment-count-error").first).to_contain_text("rules[1].value")
    expect(tag_condition).to_have_class(re.compile(r"\brb-error\b"))
    tag_condition.get_by_test_id("rule-value").select_option(str(strong.pk))
    expect(count).to_have_text("3")
    expect(tag_condition).not_to_have_class(re.compile(r"\brb-error\b"))
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-segment-builder.png", full_page=True)

    page.get_by_test_id("segment-save").click()
    page.wait_for_url(re.compile(r".*/campaigns/segments/\d+/$"))
    segment = Segment.objects.get()
    assert segment.rules == {
        "op": "or",
        "rules": [
            {"field": "region", "operator": "in", "value": ["上海", "杭州"]},
            {"field": "tags", "operator": "any", "value": [strong.pk]},
        ],
    }
    expect(page.get_by_test_id("segment-count-value")).to_have_text("3")
    # The saved rules come back into the builder.
    expect(page.get_by_test_id("rule-condition")).to_have_count(2)
