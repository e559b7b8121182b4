"""The contact page as a workspace in a real browser: edit the profile, add a note, create a follow-up task,
complete it with an outcome and see it on the timeline, all swapped in place by htmx, with no CSP
violation; then the page in both languages (screenshots in /tmp/contact-*.png) and the task list."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.followups import follow_up_reminders_mark, follow_up_task_add
from campaigns.models import FollowUpTask
from contacts.models import Contact, Touchpoint
from contacts.services import purchase_record, touchpoint_record
from scrm import roles
from tests.factories import CommunityFactory, ContactFactory, ProductFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT_DIR = "/tmp"
PASSWORD = "pass-word-123"
COLLECT_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


def sign_in(page, user, target: str):
    """Log in through the login form straight to ``target`` (``?next=``), whatever the home page is."""
    page.goto(f"/login/?next={target}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit].btn-primary")
    page.wait_for_url(f"**{target}")
    return page


@pytest.fixture
def operator(transactional_db):
    return UserFactory(username="operator", first_name="小陈", role=roles.OPERATOR)


@pytest.fixture
def customer(operator):
    contact = ContactFactory(owner=operator, name="林晓雨", phone="+8613911112222", region="上海", city="静安")
    product = ProductFactory(name="益生菌礼盒", price=Decimal("199.00"))
    purchase_record(
        contact=contact,
        external_order_id="TB-2001",
        purchased_at=timezone.now() - dt.timedelta(days=20),
        amount=Decimal("398.00"),
        items=[{"product": product, "quantity": 2}],
    )
    touchpoint_record(contact=contact, medium="wecom", kind="message_in", staff=operator)
    CommunityFactory(owner=operator, name="益生菌宝妈群")
    return contact


def test_work_on_a_contact_without_leaving_the_page(page, operator, customer):
    page.add_init_script(COLLECT_VIOLATIONS)
    sign_in(page, operator, f"/contacts/{customer.pk}/")
    page.evaluate("window.__same_page = true")

    # Edit the profile: a bad email is shown on its field, then a good edit is saved in place.
    page.get_by_test_id("profile-edit-open").click()
    page.fill("#id_profile-email", "not-an-email")
    page.get_by_test_id("profile-save").click()
    expect(page.locator("#profile .field-email .error")).to_be_visible()
    page.fill("#id_profile-email", "lin@example.com")
    page.fill("#id_profile-occupation", "瑜伽教练")
    page.select_option("#id_profile-intent_level", "high")
    page.get_by_test_id("profile-save").click()
    expect(page.get_by_test_id("profile")).to_contain_text("瑜伽教练")
    expect(page.get_by_test_id("profile-edit")).not_to_have_attribute("open", "")
    expect(page.get_by_test_id("message")).to_be_visible()
    customer.refresh_from_db()
    assert (customer.email, customer.occupation, customer.intent_level) == ("lin@example.com", "瑜伽教练", "high")

    # A follow-up note goes on the timeline.
    page.get_by_test_id("action-note").click()
    page.fill("#id_note-text", "客户说敏感肌，想先试用小样")
    page.get_by_test_id("note-add").click()
    expect(page.get_by_test_id("timeline")).to_contain_text("客户说敏感肌，想先试用小样")

    # A task: the header's button opens the form.
    page.get_by_test_id("action-task").click()
    page.fill("#id_task-title", "寄小样并回访")
    page.fill("#id_task-due_at", (timezone.localtime() + dt.timedelta(days=1)).strftime("%Y-%m-%dT10:00"))
    page.get_by_test_id("contact-task-create").click()
    expect(page.locator('[data-testid="contact-task"]')).to_have_count(1)
    expect(page.get_by_test_id("contact-task-title")).to_have_text("寄小样并回访")
    page.screenshot(path=f"{SCREENSHOT_DIR}/contact-workspace-task.png", full_page=True)

    # Complete it with an outcome: gone from the open tasks, on the timeline.
    page.get_by_test_id("task-done").click()
    page.get_by_test_id("task-outcome").fill("已寄出，客户很满意，下周复购")
    page.get_by_test_id("task-complete-submit").click()
    expect(page.locator('[data-testid="contact-task"]')).to_have_count(0)
    expect(page.get_by_test_id("timeline")).to_contain_text("已寄出，客户很满意，下周复购")
    expect(page.get_by_test_id("timeline")).to_contain_text("寄小样并回访")

    # Into a community, in place too.
    page.select_option('[data-testid="community-join-form"] select', label="益生菌宝妈群")
    page.get_by_test_id("community-join").click()
    expect(page.locator('[data-testid="membership-row"]')).to_have_count(1)

    assert page.evaluate("window.__same_page === true"), "htmx should have swapped the sections in place"
    assert page.evaluate("window.__cspViolations") == []
    task = FollowUpTask.objects.get()
    assert (task.status, task.outcome, task.completed_by) == ("done", "已寄出，客户很满意，下周复购", operator)
    assert set(Touchpoint.objects.filter(contact=customer).values_list("kind", flat=True)) >= {
        "note",
        "task_done",
        "join_group",
    }

    # The page in both languages.
    page.reload()
    page.screenshot(path=f"{SCREENSHOT_DIR}/contact-zh.png", full_page=True)
    expect(page.get_by_test_id("followup")).to_contain_text("跟进")
    page.locator('[data-testid="language-switcher"] button[value="en"]').click()
    page.wait_for_load_state("networkidle")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_test_id("followup")).to_contain_text("Follow-up")
    page.get_by_test_id("profile-edit-open").click()
    page.screenshot(path=f"{SCREENSHOT_DIR}/contact-en.png", full_page=True)


def test_my_tasks_show_reminders_views_and_a_form(page, operator, customer):
    other = ContactFactory(owner=operator, name="周敏")
    now = timezone.now()
    follow_up_task_add(
        actor=operator,
        contact=customer,
        title="提醒：发复购券",
        due_at=now - dt.timedelta(hours=2),
        remind_at=now - dt.timedelta(hours=3),
    )
    follow_up_task_add(actor=operator, contact=other, title="邀请进群", due_at=now + dt.timedelta(days=2))
    follow_up_reminders_mark()
    page.add_init_script(COLLECT_VIOLATIONS)
    sign_in(page, operator, "/campaigns/tasks/")
    expect(page.locator('[data-testid="task-reminder"]')).to_have_count(1)
    expect(page.get_by_test_id("task-count-overdue")).to_have_text("1")
    expect(page.locator('[data-testid="task-row"]')).to_have_count(2)

    page.get_by_test_id("task-new-open").click()
    page.get_by_test_id("task-contact-search").fill("周")
    expect(page.locator("#id_contact option")).to_have_count(2)  # the prompt and 周敏
    page.select_option("#id_contact", label="周敏 · " + other.phone[-4:])
    page.fill("#id_title", "电话回访周敏")
    page.get_by_test_id("task-create").click()
    expect(page.locator('[data-testid="task-row"]')).to_have_count(3)
    page.screenshot(path=f"{SCREENSHOT_DIR}/contact-task-list-zh.png", full_page=True)
    page.get_by_test_id("task-view-overdue").click()
    expect(page.locator('[data-testid="task-row"]')).to_have_count(1)
    assert page.evaluate("window.__cspViolations") == []
    assert Contact.objects.get(pk=other.pk).follow_up_tasks.filter(title="电话回访周敏", created_by=operator).exists()


def test_a_manager_recomputes_scores_and_sees_tasks_by_staff(page, operator, customer):
    from analytics.models import ContactScore
    from tests.celery_utils import celery_conf_override

    manager = UserFactory(username="manager", first_name="周经理", role=roles.MANAGER)
    follow_up_task_add(actor=manager, contact=customer, title="复购回访", due_at=timezone.now() - dt.timedelta(hours=1))
    page.add_init_script(COLLECT_VIOLATIONS)
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, manager, f"/contacts/{customer.pk}/")
    expect(page.get_by_test_id("not-scored")).to_be_visible()
    expect(page.locator("#id_task-assignee")).to_be_visible(visible=False)  # in the closed new-task form
    with celery_conf_override(task_always_eager=True):
        page.get_by_test_id("scores-refresh").click()
        page.wait_for_url(f"**/contacts/{customer.pk}/#scores")
        expect(page.get_by_test_id("message")).to_be_visible()
    page.reload()
    expect(page.get_by_test_id("score-layer")).to_be_visible()
    assert ContactScore.objects.filter(contact=customer).exists()
    page.screenshot(path=f"{SCREENSHOT_DIR}/contact-manager-zh.png", full_page=True)

    page.goto("/campaigns/tasks/")
    expect(page.get_by_test_id("task-by-staff")).to_contain_text("小陈")
    expect(page.locator('[data-testid="staff-row"]')).to_have_count(1)
    page.screenshot(path=f"{SCREENSHOT_DIR}/contact-task-list-manager-zh.png", full_page=True)
    assert page.evaluate("window.__cspViolations") == []
