"""The dashboard in a real browser: log in, filter, open a contact, switch language, bulk-tag, import."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from communities.services import membership_join
from contacts.models import ContactTag, ImportJob
from contacts.services import contact_facts_refresh, purchase_record, purchase_refund, touchpoint_record
from scrm import roles
from tests.factories import CommunityFactory, ContactFactory, ProductFactory, TagFactory, TagGroupFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT_DIR = "/tmp"


@pytest.fixture
def operator(transactional_db):
    return UserFactory(username="operator", first_name="小李", role=roles.OPERATOR)


@pytest.fixture
def book(operator):
    """An operator's small book of contacts, plus one contact of a colleague."""
    colleague = UserFactory(username="colleague", role=roles.OPERATOR)
    lead = ContactFactory(owner=operator, name="周一线索", phone="+8613911110001")
    customer = ContactFactory(owner=operator, name="陈二复购", phone="+8613911110002", occupation="设计师")
    ContactFactory(owner=colleague, name="同事的客户", phone="+8613911110003")

    group = TagGroupFactory(name="意向度")
    ContactTag.objects.create(contact=customer, tag=TagFactory(group=group, name="强意向"), tagged_by=operator)
    product = ProductFactory(name="益生菌礼盒", price=Decimal("199.00"))
    purchase_record(
        contact=customer,
        external_order_id="TB-1001",
        purchased_at=timezone.now() - dt.timedelta(days=40),
        amount=Decimal("398.00"),
        items=[{"product": product, "quantity": 2}],
    )
    purchase_record(
        contact=customer,
        external_order_id="TB-1002",
        purchased_at=timezone.now() - dt.timedelta(days=5),
        amount=Decimal("199.00"),
        items=[{"product": product}],
    )
    refunded, _ = purchase_record(
        contact=customer, external_order_id="TB-1003", purchased_at=timezone.now(), amount=Decimal("59.00")
    )
    purchase_refund(purchase=refunded)
    community = CommunityFactory(owner=operator, name="益生菌宝妈群")
    membership_join(community=community, contact=customer, staff=operator)
    touchpoint_record(contact=customer, medium="chat", kind="message_in", staff=operator)
    touchpoint_record(contact=customer, medium="moments", kind="like")
    ContactFactory(owner=operator, name="王三朋友", referred_by=customer)
    contact_facts_refresh(contact_ids=[customer.pk])  # a referrer who bought: an advocate
    customer.refresh_from_db()
    return {"lead": lead, "customer": customer}


def rows(page):
    return page.locator('[data-testid="contact-row"]')


def test_log_in_and_filter_the_contact_list(login, book):
    page = login(book["lead"].owner)
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_test_id("current-user")).to_contain_text("小李")
    expect(rows(page)).to_have_count(3)
    expect(page.locator("body")).not_to_contain_text("同事的客户")
    expect(page.locator("body")).to_contain_text("139****0001")

    page.check('input[name="stage"][value="advocate"]')
    page.click('[data-testid="filters"] button[type="submit"]')
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("陈二复购")
    expect(rows(page).first).to_contain_text("转介绍客户")
    expect(page.locator('input[name="stage"][value="advocate"]')).to_be_checked()
    page.check('input[name="stage"][value="lead"]')
    page.click('[data-testid="filters"] button[type="submit"]')
    expect(rows(page)).to_have_count(3)

    page.goto("/contacts/")
    page.fill('input[name="search"]', "周一")
    page.press('input[name="search"]', "Enter")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("周一线索")
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-contact-list-filtered.png", full_page=True)


def test_contact_page_shows_purchases_tags_and_timeline(login, book):
    page = login(book["customer"].owner)
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-contact-list.png", full_page=True)
    page.get_by_role("link", name="陈二复购").click()
    page.wait_for_url(f"**/contacts/{book['customer'].pk}/")

    expect(page.get_by_test_id("contact-name")).to_contain_text("陈二复购")
    expect(page.get_by_test_id("fact-purchases")).to_have_text("2")
    expect(page.get_by_test_id("fact-total")).to_contain_text("597.00")
    purchases = page.locator('[data-testid="purchase-row"]')
    expect(purchases).to_have_count(3)
    expect(page.get_by_test_id("purchases")).to_contain_text("益生菌礼盒 × 2")
    expect(page.locator('[data-testid="refunded"]')).to_have_count(1)
    expect(page.get_by_test_id("tags")).to_contain_text("意向度")
    expect(page.get_by_test_id("tags")).to_contain_text("强意向")
    expect(page.locator('[data-testid="touchpoint"]')).to_have_count(3)
    expect(page.get_by_test_id("timeline")).to_contain_text("点赞")
    expect(page.get_by_test_id("communities")).to_contain_text("益生菌宝妈群")
    expect(page.get_by_test_id("referrals")).to_contain_text("王三朋友")
    expect(page.get_by_test_id("profile")).to_contain_text("设计师")
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-contact-page.png", full_page=True)


def test_tag_is_added_and_removed_on_the_contact_page_without_a_reload(login, book):
    TagFactory(group=TagGroupFactory(name="兴趣"), name="母婴")
    page = login(book["lead"].owner)
    page.goto(f"/contacts/{book['lead'].pk}/")
    page.evaluate("window.__same_page = true")
    page.select_option('[data-testid="tag-add-form"] select[name="tag"]', label="母婴")
    page.click('[data-testid="tag-add-form"] button[type="submit"]')
    expect(page.locator('[data-testid="tag-link"]')).to_have_count(1)
    expect(page.get_by_test_id("tags")).to_contain_text("母婴")
    expect(page.get_by_test_id("message")).to_contain_text("母婴")
    assert page.evaluate("window.__same_page === true"), "htmx should have swapped the tags in place"
    assert ContactTag.objects.filter(contact=book["lead"], tag__name="母婴").exists()

    page.locator('[data-testid="tag-link"] button').click()
    expect(page.locator('[data-testid="tag-link"]')).to_have_count(0)
    assert not ContactTag.objects.filter(contact=book["lead"]).exists()


def test_language_switch_changes_the_interface(login, book):
    page = login(book["lead"].owner)
    nav = page.locator(".mainnav")
    expect(nav).to_contain_text("客户")
    page.click('button[name="language"][value="en"]')
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(nav).to_contain_text("Contacts")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(rows(page)).to_have_count(3)  # still on the list, same data
    page.goto(f"/contacts/{book['customer'].pk}/")
    expect(page.get_by_test_id("purchases")).to_contain_text("Refunded")

    page.click('button[name="language"][value="zh-hans"]')
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_test_id("purchases")).to_contain_text("已退款")
    expect(nav).to_contain_text("客户")


def test_bulk_tag_from_the_list(login, book):
    tag = TagFactory(group=TagGroupFactory(name="活动"), name="618大促")
    page = login(book["lead"].owner)
    page.check('input[data-select-all="contact_ids"]')
    expect(page.locator('input[name="contact_ids"]:checked')).to_have_count(3)
    expect(page.locator("[data-selected-count]")).to_contain_text("3")
    page.select_option('[data-testid="bulk-tag-form"] select[name="tags"]', value=str(tag.pk))
    page.click('[data-testid="bulk-tag-submit"]')
    expect(page.get_by_test_id("message")).to_contain_text("3")
    for row in rows(page).all():
        expect(row).to_contain_text("618大促")
    tagged = set(ContactTag.objects.filter(tag=tag).values_list("contact__owner__username", flat=True))
    assert tagged == {"operator"}


def test_log_out(login, book):
    page = login(book["lead"].owner)
    page.get_by_role("button", name="退出登录").click()
    page.wait_for_url("**/login/")
    page.goto("/contacts/")
    assert "/login/" in page.url


def test_import_shows_progress_until_done_and_the_rejected_rows(login, operator, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    csv_text = (
        "name,phone,gender,birthday\n"
        "林小满,13800138001,女,1990-05-01\n"
        "坏号码,12345,男,\n"
        "赵大勇,13800138002,男,1988-13-40\n"
        "钱多多,13800138003,unknown,\n"
    )
    page = login(operator)
    page.click('.mainnav a[href="/contacts/import/"]')
    expect(page.get_by_test_id("import-columns")).to_contain_text("external_order_id")
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-import-form.png", full_page=True)
    page.select_option('select[name="kind"]', "contacts")
    page.set_input_files(
        'input[name="file"]', files=[{"name": "客户.csv", "mimeType": "text/csv", "buffer": csv_text.encode()}]
    )
    page.click('[data-testid="import-form"] button[type="submit"]')
    page.wait_for_url(re.compile(r".*/contacts/import/\d+/$"))

    progress = page.get_by_test_id("import-progress")
    expect(progress).to_have_attribute("data-status", "done", timeout=20_000)
    expect(page.get_by_test_id("count-created")).to_have_text("2")
    expect(page.get_by_test_id("count-rejected")).to_have_text("2")
    errors = page.locator('[data-testid="import-error-row"]')
    expect(errors).to_have_count(2)
    expect(errors.nth(0)).to_contain_text("3")
    expect(errors.nth(0)).to_contain_text("phone")
    expect(errors.nth(1)).to_contain_text("birthday")
    job = ImportJob.objects.get()
    assert job.created_by == operator and job.status == ImportJob.Status.DONE
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-import-done.png", full_page=True)


def test_export_runs_in_the_background_and_downloads_the_filtered_list(login, book, operator, settings, tmp_path):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MEDIA_ROOT = tmp_path
    page = login(operator)
    page.goto(page.url.split("/contacts/")[0] + "/contacts/?search=陈二")
    expect(page.get_by_test_id("contact-row")).to_have_count(1)
    page.get_by_test_id("export-link").click()
    page.wait_for_url(re.compile(r".*/contacts/exports/\d+/$"))
    expect(page.get_by_test_id("export-progress")).to_have_attribute("data-status", "done", timeout=20_000)
    expect(page.get_by_test_id("export-message")).to_contain_text("1")
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-export-done.png", full_page=True)
    with page.expect_download() as download:
        page.get_by_test_id("export-download").click()
    text = open(download.value.path(), encoding="utf-8-sig").read()
    assert "陈二复购" in text and "周一线索" not in text and "同事的客户" not in text
    page.click('a[href="/contacts/exports/"]')
    expect(page.get_by_test_id("export-row")).to_have_count(1)


def test_import_progress_bar_polls_a_running_job(login, operator):
    job = ImportJob.objects.create(
        kind=ImportJob.Kind.CONTACTS,
        status=ImportJob.Status.RUNNING,
        file="imports/x.csv",
        filename="x.csv",
        created_by=operator,
        total_rows=4,
        processed_rows=1,
    )
    page = login(operator)
    page.goto(f"/contacts/import/{job.pk}/")
    expect(page.locator(".progress-pct")).to_have_text("25%")
    ImportJob.objects.filter(pk=job.pk).update(processed_rows=3)
    expect(page.locator(".progress-pct")).to_have_text("75%", timeout=5_000)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.DONE,
        processed_rows=4,
        created_count=3,
        error_count=1,
        errors=[{"line": 4, "field": "phone", "message": "不是有效的手机号"}],
    )
    expect(page.get_by_test_id("import-progress")).to_have_attribute("data-status", "done", timeout=5_000)
    expect(page.locator('[data-testid="import-error-row"]')).to_contain_text("不是有效的手机号")


def test_communities_list_and_members(login, book, operator):
    page = login(operator)
    page.click('.mainnav a[href="/communities/"]')
    community_rows = page.locator('[data-testid="community-row"]')
    expect(community_rows).to_have_count(1)
    expect(community_rows.first).to_contain_text("益生菌宝妈群")
    expect(community_rows.first).to_contain_text("1 / 500")
    page.get_by_role("link", name="益生菌宝妈群").click()
    expect(page.locator('[data-testid="member-row"]')).to_have_count(1)
    page.get_by_role("link", name="陈二复购").click()
    page.wait_for_url(f"**/contacts/{book['customer'].pk}/")
    page.go_back()
    page.screenshot(path=f"{SCREENSHOT_DIR}/scrm-community-page.png", full_page=True)
