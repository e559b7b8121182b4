"""The workbench (工作台) in a real browser, for an operator and a manager, in both languages: the landing
page after the login form, the blocks loaded after the page, "Done" on a task, the team view and "My
work", and an operator's own report figures. Screenshots go to /tmp/workbench-*.png.

The clock is fixed at Wednesday 12 March 2025, 15:00 in Shanghai (the live server runs in this process).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal

import pytest
from django.conf import settings
from playwright.sync_api import expect

from analytics.workbench.week import WorkWeek
from campaigns.models import Broadcast, Delivery, FollowUpTask, MessageTemplate
from campaigns.services import follow_up_task_create
from communities.models import Community
from communities.services import membership_join
from contacts.models import ImportJob
from contacts.services import contact_create, purchase_record, purchase_refund, touchpoint_record
from scrm import roles
from tests.factories import ChannelFactory, CommunityFactory, ProductFactory, UserFactory
from wecom.models import FollowRelationship, StaffAccount, SyncRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TZ = zoneinfo.ZoneInfo(settings.TIME_ZONE)
NOW = dt.datetime(2025, 3, 12, 15, 0, tzinfo=TZ)
PASSWORD = "pass-word-123"
SHOTS = "/tmp"
COLLECT_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(e.violatedDirective));
"""


def at(month: int, day: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime(2025, month, day, hour, minute, tzinfo=TZ)


@pytest.fixture
def clock(monkeypatch):
    real_at = WorkWeek.at.__func__
    monkeypatch.setattr(WorkWeek, "at", classmethod(lambda cls, now=None: real_at(cls, now or NOW)))


@pytest.fixture
def team(transactional_db, clock):
    """小李 (an operator) with a realistic week, 小王 (a colleague) and 陈经理 (a manager)."""
    operator = UserFactory(username="operator", first_name="小李", role=roles.OPERATOR)
    colleague = UserFactory(username="colleague", first_name="小王", role=roles.OPERATOR)
    manager = UserFactory(username="manager", first_name="陈经理", role=roles.MANAGER)
    douyin, store = ChannelFactory(name="抖音投放"), ChannelFactory(name="门店扫码")
    probiotic = ProductFactory(name="益生菌礼盒", repurchase_cycle_days=7, price=Decimal("199.00"))
    mask = ProductFactory(name="修护面膜", repurchase_cycle_days=14, price=Decimal("89.00"))

    def person(name, owner, acquired, channel=douyin, **values):
        return contact_create(name=name, owner=owner, acquired_at=acquired, channel=channel, **values)

    def buy(contact, order, when, amount, product=None):
        items = [{"product": product}] if product else []
        return purchase_record(
            contact=contact, external_order_id=order, purchased_at=when, amount=Decimal(amount), items=items
        )[0]

    zhou = person("周晓雯", operator, at(3, 10, 9, 20))
    wu = person("吴佳怡", operator, at(3, 11, 14, 5), channel=store)
    zheng = person("郑美玲", operator, at(3, 12, 10, 40))
    wang = person("王丽娟", operator, at(3, 4), birthday=dt.date(1988, 3, 13))
    sun = person("孙静", operator, at(1, 8), birthday=dt.date(1990, 3, 12))
    li = person("李婷婷", operator, at(1, 20), birthday=dt.date(1992, 3, 15))
    person("何雪", operator, at(2, 8, 12))  # 30 days without a word on 10 March
    ma = person("马晓燕", operator, at(1, 3))
    touchpoint_record(contact=ma, medium="chat", kind="message_in", occurred_at=at(2, 9, 16))
    theirs = person("同事的客户", colleague, at(3, 11))

    buy(zhou, "TB-9001", at(3, 11, 20), "398.00", probiotic)
    buy(wu, "TB-9002", at(3, 12, 11), "89.00", mask)
    buy(sun, "TB-8001", at(3, 4, 12), "199.00", probiotic)  # due again Tuesday
    buy(li, "TB-8002", at(2, 27, 21), "89.00", mask)  # due again Thursday
    buy(wang, "TB-8003", at(3, 5, 9), "199.00")
    purchase_refund(purchase=buy(zheng, "TB-9003", at(3, 12, 12), "59.00"))
    buy(theirs, "TB-7001", at(3, 11), "999.00")

    staff = StaffAccount.objects.create(userid="xiaoli", user=operator, name="小李")
    for i, (contact, deleted_at, ended_by) in enumerate(
        ((wang, at(3, 11, 21), "customer"), (ma, at(3, 12, 9), "staff"), (zhou, None, ""))
    ):
        FollowRelationship.objects.create(
            contact=contact,
            staff=staff,
            external_userid=f"wm-{i}",
            added_at=contact.acquired_at,
            deleted_at=deleted_at,
            ended_by=ended_by,
        )

    for contact, title, due in (
        (zhou, "回访：益生菌首单体验", at(3, 11, 18)),
        (wu, "发送新人礼券", at(3, 12, 11)),
        (sun, "复购提醒：益生菌礼盒", at(3, 12, 17, 30)),
        (li, "生日祝福准备", at(3, 14)),
    ):
        follow_up_task_create(assignee=operator, contact=contact, title=title, due_at=due)
    follow_up_task_create(assignee=colleague, contact=theirs, title="同事的任务", due_at=at(3, 11))

    template = MessageTemplate.objects.create(name="春季上新", body="{name} 您好，春季上新")
    spring = Broadcast.objects.create(name="春季上新群发", template=template, created_by=manager, status="sent")
    for contact in (zhou, wu, sun):
        Delivery.objects.create(
            broadcast=spring,
            contact=contact,
            template=template,
            medium="wecom",
            status="sent",
            sent_at=at(3, 11, 10),
            gateway="wecom",
            gateway_state="awaiting_confirmation",
        )
    Broadcast.objects.create(
        name="会员日活动", template=template, created_by=operator, status="pending_approval", scheduled_at=at(3, 14, 10)
    )
    job = ImportJob.objects.create(
        kind="contacts", status="failed", filename="门店会员.csv", created_by=operator, message="第 3 行：手机号无效"
    )
    ImportJob.objects.filter(pk=job.pk).update(created_at=at(3, 11, 16))
    run = SyncRun.objects.create(status="failed", error="WeCom 40001: invalid secret")
    SyncRun.objects.filter(pk=run.pk).update(started_at=at(3, 12, 2))
    full = CommunityFactory(owner=operator, name="益生菌宝妈群", capacity=3)
    for contact in (zhou, wu, sun):
        membership_join(community=full, contact=contact, joined_at=at(3, 10))
    quiet = CommunityFactory(owner=colleague, name="面膜体验群")
    membership_join(community=quiet, contact=theirs, joined_at=at(1, 10))
    Community.objects.filter(pk=quiet.pk).update(created_at=at(1, 1))
    return {"operator": operator, "manager": manager, "colleague": colleague}


def sign_in(page, user):
    """The login form, then the landing page: the workbench."""
    page.goto("/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit].btn-primary")
    page.wait_for_url(re.compile(r"^https?://[^/]+/$"))
    return page


def english(page):
    page.click('button[name="language"][value="en"]')
    expect(page.locator("html")).to_have_attribute("lang", "en")


def blocks_loaded(page, *slots):
    for slot in slots:
        expect(page.get_by_test_id(f"{slot}-loading")).to_have_count(0)


def test_an_operator_starts_the_day_on_the_workbench(page, team):
    page.add_init_script(COLLECT_VIOLATIONS)
    sign_in(page, team["operator"])
    expect(page.get_by_test_id("workbench-title")).to_have_text("工作台")
    expect(page.locator(".mainnav a").first).to_have_attribute("aria-current", "page")
    blocks_loaded(page, "wb-awaiting", "wb-repurchase")
    expect(page.get_by_test_id("wb-tasks-count")).to_have_text("3")
    expect(page.get_by_test_id("wb-figure-revenue-value")).to_have_text("¥487.00")
    expect(page.get_by_test_id("wb-repurchase-row")).to_have_count(2)
    expect(page.get_by_test_id("wb-awaiting-row")).to_contain_text("春季上新群发")
    expect(page.locator("main")).not_to_contain_text("同事")
    page.screenshot(path=f"{SHOTS}/workbench-operator-zh.png", full_page=True)

    # One click on "Done": back on the workbench, one task fewer.
    page.get_by_test_id("wb-task").filter(has_text="发送新人礼券").get_by_test_id("wb-task-done").click()
    page.wait_for_url(re.compile(r"^https?://[^/]+/$"))
    expect(page.get_by_test_id("message")).to_contain_text("发送新人礼券")
    expect(page.get_by_test_id("wb-tasks-count")).to_have_text("2")
    assert FollowUpTask.objects.filter(title="发送新人礼券", status="done").exists()

    english(page)
    expect(page.get_by_test_id("workbench-title")).to_have_text("Workbench")
    blocks_loaded(page, "wb-awaiting", "wb-repurchase")
    expect(page.get_by_test_id("wb-tasks")).to_contain_text("Follow-ups due today")
    page.screenshot(path=f"{SHOTS}/workbench-operator-en.png", full_page=True)

    # A figure leads to the contacts behind it.
    page.get_by_test_id("wb-figure-conversions").click()
    expect(page.locator('[data-testid="contact-row"]')).to_have_count(2)
    assert page.evaluate("window.__cspViolations") == []


def test_a_manager_sees_the_team_and_their_own_work(page, team):
    page.add_init_script(COLLECT_VIOLATIONS)
    sign_in(page, team["manager"])
    expect(page.get_by_test_id("workbench-title")).to_have_text("团队工作台")
    blocks_loaded(page, "wb-groups")
    expect(page.get_by_test_id("wb-team-row")).to_have_count(3)
    expect(page.get_by_test_id("wb-approvals")).to_contain_text("会员日活动")
    expect(page.get_by_test_id("wb-imports")).to_contain_text("门店会员.csv")
    expect(page.get_by_test_id("wb-wecom")).to_contain_text("40001")
    expect(page.get_by_test_id("wb-group-row")).to_have_count(2)
    page.screenshot(path=f"{SHOTS}/workbench-manager-zh.png", full_page=True)

    english(page)
    expect(page.get_by_test_id("workbench-title")).to_have_text("Team workbench")
    blocks_loaded(page, "wb-groups")
    page.screenshot(path=f"{SHOTS}/workbench-manager-en.png", full_page=True)

    page.get_by_test_id("workbench-view-mine").click()
    expect(page.get_by_test_id("workbench-title")).to_have_text("Workbench")
    expect(page.get_by_test_id("wb-tasks-empty")).to_be_visible()
    blocks_loaded(page, "wb-awaiting", "wb-repurchase")
    page.screenshot(path=f"{SHOTS}/workbench-manager-mine-en.png", full_page=True)
    assert page.evaluate("window.__cspViolations") == []


def test_an_operator_reads_their_own_report_figures(page, team):
    sign_in(page, team["operator"])
    page.click('.mainnav a[href="/reports/"]')
    expect(page.get_by_test_id("own-figures-note")).to_be_visible()
    page.goto("/reports/?date_from=2025-03-01&date_to=2025-03-12")
    expect(page.get_by_test_id("kpi-leads")).to_have_text("4")  # March: four of theirs, not the colleague's
    expect(page.get_by_test_id("kpi-cac")).to_have_text("—")
    expect(page.get_by_test_id("spend-note")).to_be_visible()
    expect(page.get_by_test_id("export-csv").first).to_be_hidden()  # the API refuses operators
    assert "owner" not in page.locator('[data-testid="report-filters"]').inner_html()
    page.screenshot(path=f"{SHOTS}/workbench-reports-operator-zh.png", full_page=True)
    english(page)
    expect(page.get_by_test_id("own-figures-note")).to_have_text("your own contacts only")
    page.screenshot(path=f"{SHOTS}/workbench-reports-operator-en.png", full_page=True)
