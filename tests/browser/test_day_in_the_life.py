"""A day in the life of an operator, in a real browser: log in and land on the workbench, work it (a
follow-up due today, done from there), open a contact and complete its task with an outcome that lands on
the timeline, edit the contact, then build a broadcast and see who would actually receive it. No CSP
violation on the way. Screenshots of the workbench in both languages in /tmp/day-*.png."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.followups import follow_up_task_add
from campaigns.models import FollowUpTask, MessageTemplate, Segment
from contacts.models import Touchpoint
from contacts.services import purchase_record
from scrm import roles
from tests.factories import ContactFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pass-word-123"
COLLECT_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


@pytest.fixture
def day(transactional_db):
    operator = UserFactory(username="xiaochen", first_name="小陈", role=roles.OPERATOR)
    colleague = UserFactory(username="colleague", role=roles.OPERATOR)
    now = timezone.now()
    lin = ContactFactory(owner=operator, name="林晓雨", phone="+8613911112222", region="上海", occupation="老师")
    zhou = ContactFactory(owner=operator, name="周敏", phone="+8613911113333", region="上海")
    ContactFactory(owner=operator, name="没同意的客户", region="上海", marketing_consent=False)
    ContactFactory(owner=colleague, name="同事的客户", region="上海")
    purchase_record(
        contact=lin, external_order_id="TB-1", purchased_at=now - dt.timedelta(days=30), amount=Decimal("199.00")
    )
    follow_up_task_add(actor=operator, contact=zhou, title="邀请周敏进群", due_at=now - dt.timedelta(hours=1))
    follow_up_task_add(actor=operator, contact=lin, title="回访试用装", due_at=now + dt.timedelta(hours=2))
    Segment.objects.create(
        name="上海客户", rules={"op": "and", "rules": [{"field": "region", "operator": "eq", "value": "上海"}]}
    )
    MessageTemplate.objects.create(name="双12 会员券", body="{name}，双十二会员专享券到了")
    return {"operator": operator, "lin": lin, "zhou": zhou}


def test_an_operators_day(page, live_server, day):
    operator, lin = day["operator"], day["lin"]
    operator.set_password(PASSWORD)
    operator.save()
    page.add_init_script(COLLECT_VIOLATIONS)

    # 09:00: log in, land on the workbench.
    page.goto("/login/")
    page.fill("#id_username", operator.username)
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit].btn-primary")
    page.wait_for_url(re.compile(r"^https?://[^/]+/$"))
    tasks = page.get_by_test_id("wb-tasks")
    expect(tasks.locator('[data-testid="wb-task"]')).to_have_count(2)
    expect(page.get_by_test_id("wb-task-overdue")).to_have_count(1)
    expect(page.get_by_test_id("wb-figures")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("同事的客户")
    page.screenshot(path="/tmp/day-workbench-zh.png", full_page=True)

    # The overdue follow-up, done from the workbench (back on the workbench, one left).
    overdue = tasks.locator('[data-testid="wb-task"]', has=page.get_by_test_id("wb-task-overdue"))
    overdue.get_by_test_id("wb-task-done").click()
    page.wait_for_url(re.compile(r"^https?://[^/]+/(\?.*)?$"))
    expect(page.get_by_test_id("wb-tasks").locator('[data-testid="wb-task"]')).to_have_count(1)
    assert FollowUpTask.objects.get(title="邀请周敏进群").status == FollowUpTask.Status.DONE

    # Open 林晓雨 from the remaining task, complete it with an outcome: it lands on the timeline.
    page.get_by_test_id("wb-task-contact").first.click()
    page.wait_for_url(f"**/contacts/{lin.pk}/")
    page.get_by_test_id("task-done").click()
    page.get_by_test_id("task-outcome").fill("客户很满意，约下周复购")
    page.get_by_test_id("task-complete-submit").click()
    expect(page.get_by_test_id("timeline")).to_contain_text("客户很满意，约下周复购")

    # Edit the contact: a new occupation, saved in place.
    page.get_by_test_id("profile-edit-open").click()
    page.fill("#id_profile-occupation", "瑜伽教练")
    page.get_by_test_id("profile-save").click()
    expect(page.get_by_test_id("profile")).to_contain_text("瑜伽教练")
    lin.refresh_from_db()
    assert lin.occupation == "瑜伽教练"
    assert Touchpoint.objects.filter(contact=lin, kind="task_done").exists()

    # Build a broadcast: the estimate shows who would actually receive it (own contacts with consent).
    page.goto("/campaigns/broadcasts/new/")
    page.select_option("#id_segment", label="上海客户")
    expect(page.get_by_test_id("estimate-total")).to_have_text("3")  # not the colleague's contact
    expect(page.get_by_test_id("estimate-eligible")).to_have_text("2")  # minus no consent
    page.select_option("#id_template", label="双12 会员券")
    expect(page.get_by_test_id("estimate-preview-body")).to_contain_text("双十二会员专享券到了")

    assert page.evaluate("window.__cspViolations") == []

    # The workbench in English too.
    page.context.add_cookies([{"name": "django_language", "value": "en", "url": live_server.url}])
    page.goto("/")
    expect(page.get_by_test_id("wb-tasks")).to_contain_text("Follow-ups due today")
    page.screenshot(path="/tmp/day-workbench-en.png", full_page=True)
