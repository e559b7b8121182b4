"""The contact list in a real browser, in Chinese and in English: the searchable filter pickers and their
chips, saved views, bulk actions with the confirmation for "all matching", and the same page without
JavaScript. Screenshots go to /tmp/list-*.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from communities.models import Membership
from contacts.models import ContactTag, SavedView
from scrm import roles
from tests.factories import ChannelFactory, CommunityFactory, ContactFactory, TagFactory, TagGroupFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = "/tmp"


@pytest.fixture
def operator(transactional_db):
    return UserFactory(username="operator", first_name="小李", role=roles.OPERATOR)


@pytest.fixture
def book(operator):
    """An operator's book: eight contacts with tags of two groups, three channels and a community; and one
    contact of a colleague's."""
    colleague = UserFactory(username="colleague", first_name="小王", role=roles.OPERATOR)
    intent = TagGroupFactory(name="意向度")
    interest = TagGroupFactory(name="兴趣")
    tags = {name: TagFactory(group=intent, name=name, color="#c2410c") for name in ("强意向", "弱意向")}
    tags.update(
        {name: TagFactory(group=interest, name=name, color="#0f766e") for name in ("护肤", "母婴", "运动", "美妆")}
    )
    channels = [ChannelFactory(name=name) for name in ("抖音", "小红书", "门店")]
    names = ["周一", "陈二", "张三", "李四", "王五", "赵六", "孙七", "吴八"]
    contacts = []
    for i, name in enumerate(names):
        contact = ContactFactory(
            owner=operator, name=name, phone=f"+86139{i:04d}{5670 + i:04d}", channel=channels[i % 3]
        )
        contacts.append(contact)
    for contact in contacts[:3]:
        ContactTag.objects.create(contact=contact, tag=tags["护肤"], tagged_by=operator)
    ContactTag.objects.create(contact=contacts[3], tag=tags["母婴"], tagged_by=operator)
    ContactTag.objects.create(contact=contacts[0], tag=tags["强意向"], tagged_by=operator)
    ContactFactory(owner=colleague, name="同事的客户")
    community = CommunityFactory(owner=operator, name="护肤交流群")
    return {"contacts": contacts, "tags": tags, "community": community, "colleague": colleague}


@pytest.fixture
def login(page, live_server):
    """Sign a user in with a session cookie (the login form has its own tests) and open the contact list."""
    from django.conf import settings
    from django.test import Client

    def _login(user):
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])
        page.goto("/contacts/")
        return page

    return _login


def rows(page):
    return page.locator('[data-testid="contact-row"]')


@pytest.fixture
def errors(page):
    found: list[str] = []
    page.on("pageerror", lambda error: found.append(str(error)))
    page.on(
        "console",
        lambda message: found.append(message.text) if "Content Security Policy" in message.text else None,
    )
    return found


def english(page):
    page.click('button[name="language"][value="en"]')
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_pick_filters_see_chips_save_a_view_and_remove_a_chip(login, book, errors):
    page = login(book["contacts"][0].owner)
    expect(rows(page)).to_have_count(8)
    expect(page.locator("body")).not_to_contain_text("同事的客户")

    # The tag picker: type to filter, Enter picks the first match, which shows as a chip in the field.
    picker = page.get_by_test_id("filter-tag")
    search = picker.locator(".picker-search")
    search.click()
    expect(picker.locator(".picker-options")).to_be_visible()
    search.type("护")
    expect(picker.locator(".picker-option:visible")).to_have_count(1)
    search.press("Enter")
    expect(picker.locator(".picker-chip")).to_have_text(["护肤×"])
    search.press("Escape")
    expect(picker.locator(".picker-options")).to_be_hidden()
    # The channel picker: arrow keys and Enter, two values.
    channel = page.get_by_test_id("filter-channel")
    channel.locator(".picker-search").click()
    channel.locator(".picker-search").press("ArrowDown")
    channel.locator(".picker-search").press("Enter")
    channel.locator(".picker-search").press("ArrowDown")
    channel.locator(".picker-search").press("Enter")
    expect(channel.locator(".picker-chip")).to_have_count(2)
    page.screenshot(path=f"{SHOTS}/list-picker-zh.png", full_page=False)
    # Backspace in the empty box drops the last value again.
    channel.locator(".picker-search").press("Backspace")
    expect(channel.locator(".picker-chip")).to_have_count(1)
    channel.locator(".picker-chip-remove").click()
    expect(channel.locator(".picker-chip")).to_have_count(0)

    page.check('input[name="stage"][value="lead"]')
    page.click('[data-testid="filters"] button[type="submit"]')
    expect(rows(page)).to_have_count(3)
    chips = page.get_by_test_id("filter-chip")
    expect(chips).to_have_count(2)
    expect(page.get_by_test_id("filter-chips")).to_contain_text("护肤")
    expect(picker.locator(".picker-chip")).to_have_text(["护肤×"])  # the picker shows what is applied

    # Save the filters as a view: it becomes the active quick link.
    page.fill("#id_view_name", "护肤新线索")
    page.click('[data-testid="save-view-submit"]')
    expect(page.get_by_test_id("message")).to_contain_text("护肤新线索")
    expect(page.locator('[data-testid="saved-view-link"][aria-current="page"]')).to_have_text("护肤新线索")
    assert SavedView.objects.get().query == f"tag={book['tags']['护肤'].pk}&stage=lead"
    page.screenshot(path=f"{SHOTS}/list-chips-zh.png", full_page=True)

    # Removing the tag chip widens the list; the view's link brings the filters back.
    page.locator('[data-testid="filter-chip"][data-filter="tag"] [data-testid="filter-chip-remove"]').click()
    expect(rows(page)).to_have_count(8)
    expect(page.get_by_test_id("active-view")).to_have_count(0)
    page.get_by_test_id("saved-view-link").click()
    expect(rows(page)).to_have_count(3)
    assert not errors, errors


def test_bulk_actions_on_ticked_rows_and_on_all_matching(login, book, errors):
    page = login(book["contacts"][0].owner)
    bulk = page.get_by_test_id("bulk-tag-form")
    # One panel at a time behind tabs.
    expect(bulk.locator(".bulk-tab")).to_have_count(4)  # tags, community, task, export (no owner: operator)
    expect(page.get_by_test_id("bulk-panel-community")).to_be_hidden()

    # Ticked rows into a community.
    rows(page).nth(0).locator('input[name="contact_ids"]').check()
    rows(page).nth(1).locator('input[name="contact_ids"]').check()
    expect(page.locator("[data-selected-count]")).to_contain_text("2")
    page.get_by_test_id("bulk-tab-community").click()
    page.select_option('select[name="community"]', str(book["community"].pk))
    page.get_by_test_id("bulk-community-submit").click()
    expect(page.get_by_test_id("message")).to_contain_text("护肤交流群")
    assert Membership.objects.filter(community=book["community"]).count() == 2

    # All contacts matching a filter: the tag picker in the bulk bar filters as one types; a confirmation
    # with the count comes first.
    page.goto(f"/contacts/?tag={book['tags']['护肤'].pk}")
    expect(rows(page)).to_have_count(3)
    page.get_by_test_id("bulk-scope-all").check()
    page.locator(".select-filter").fill("意向")
    expect(page.locator('select[name="tags"] option:visible')).to_have_count(2)
    page.select_option('select[name="tags"]', label="强意向")
    page.screenshot(path=f"{SHOTS}/list-bulk-zh.png", full_page=True)
    page.get_by_test_id("bulk-tag-submit").click()
    expect(page.get_by_test_id("bulk-confirm-count")).to_have_text("3")
    page.screenshot(path=f"{SHOTS}/list-confirm-zh.png", full_page=True)
    page.get_by_test_id("bulk-confirm-submit").click()
    expect(page.get_by_test_id("message")).to_contain_text("3")
    strong = book["tags"]["强意向"]
    assert set(ContactTag.objects.filter(tag=strong).values_list("contact__name", flat=True)) == {
        "周一",
        "陈二",
        "张三",
    }
    assert not errors, errors


def test_the_list_in_english_with_a_manager_and_a_shared_view(login, book, errors):
    manager = UserFactory(username="boss", first_name="Boss", role=roles.MANAGER)
    page = login(manager)
    english(page)
    expect(page.get_by_test_id("filter-owner")).to_be_visible()
    owner = page.get_by_test_id("filter-owner").locator(".picker-search")
    owner.click()
    owner.type("小李")
    owner.press("Enter")
    page.get_by_test_id("filter-tag").locator(".picker-search").click()
    page.get_by_test_id("filter-tag").locator(".picker-search").type("兴趣")  # group names match too
    expect(page.get_by_test_id("filter-tag").locator(".picker-option:visible")).to_have_count(4)
    page.screenshot(path=f"{SHOTS}/list-picker-en.png", full_page=False)
    page.get_by_test_id("filter-tag").locator(".picker-search").press("Escape")
    page.check('input[name="stage"][value="lead"]')
    page.click('[data-testid="filters"] button[type="submit"]')
    expect(rows(page)).to_have_count(8)
    expect(page.get_by_test_id("filter-chips")).to_contain_text("Owner")
    page.fill("#id_view_name", "Li's leads")
    page.check('.save-view input[name="shared"]')
    page.click('[data-testid="save-view-submit"]')
    expect(page.get_by_test_id("message")).to_contain_text("Li's leads")
    page.screenshot(path=f"{SHOTS}/list-chips-en.png", full_page=True)

    # Bulk: assign the ticked rows to the colleague (managers only), then "all matching" asks first.
    page.get_by_test_id("bulk-tab-owner").click()
    rows(page).nth(0).locator('input[name="contact_ids"]').check()
    page.select_option('select[name="owner"]', str(book["colleague"].pk))
    page.get_by_test_id("bulk-assign-submit").click()
    expect(page.get_by_test_id("message")).to_contain_text("Assigned 1 contact")
    page.get_by_test_id("bulk-scope-all").check()
    page.get_by_test_id("bulk-tab-task").click()
    page.fill('input[name="title"]', "Call back before 618")
    page.get_by_test_id("bulk-task-submit").click()
    expect(page.get_by_test_id("bulk-confirm")).to_contain_text("Call back before 618")
    page.screenshot(path=f"{SHOTS}/list-confirm-en.png", full_page=True)
    page.get_by_test_id("bulk-confirm-cancel").click()
    expect(rows(page)).to_have_count(7)

    page.get_by_test_id("saved-views-manage").click()
    expect(page.locator('[data-testid="my-views"] input[name$="-shared"]')).to_be_checked()
    expect(page.get_by_test_id("my-views").locator(".chip")).to_have_count(2)  # the view's filters, readable
    page.screenshot(path=f"{SHOTS}/list-views-en.png", full_page=True)
    assert not errors, errors


def test_the_team_sees_a_shared_view_and_manages_its_own_in_chinese(login, book, errors, operator):
    manager = UserFactory(username="boss", first_name="老板", role=roles.MANAGER)
    SavedView.objects.create(owner=manager, name="全部线索", query="stage=lead", shared=True)
    SavedView.objects.create(owner=operator, name="护肤客户", query=f"tag={book['tags']['护肤'].pk}")
    page = login(operator)
    expect(page.get_by_test_id("saved-view-link")).to_have_count(2)
    page.get_by_test_id("saved-views-manage").click()
    expect(page.get_by_test_id("team-views")).to_contain_text("全部线索")
    row = page.get_by_test_id("my-view-row")
    row.locator('input[type="text"]').fill("护肤老客")
    row.get_by_test_id("view-rename-submit").click()
    expect(page.get_by_test_id("message")).to_contain_text("护肤老客")
    page.screenshot(path=f"{SHOTS}/list-views-zh.png", full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("view-delete-submit").click()
    expect(page.get_by_test_id("my-view-row")).to_have_count(0)
    assert list(SavedView.objects.values_list("name", flat=True)) == ["全部线索"]
    assert not errors, errors


def test_without_javascript_the_filters_are_checkbox_lists_that_still_work(browser, live_server, book):
    context = browser.new_context(
        locale="zh-CN", viewport={"width": 1440, "height": 900}, base_url=live_server.url, java_script_enabled=False
    )
    page = context.new_page()
    try:
        from django.conf import settings
        from django.test import Client

        client = Client()
        client.force_login(book["contacts"][0].owner)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])
        page.goto("/contacts/")
        expect(page.locator(".picker-search")).to_have_count(0)
        page.get_by_test_id("filter-tag").get_by_label("母婴").check()
        page.get_by_test_id("filter-tag").get_by_label("护肤").check()
        page.click('[data-testid="filters"] button[type="submit"]')
        expect(rows(page)).to_have_count(4)
        expect(page.get_by_test_id("filter-chip")).to_have_count(2)
        page.screenshot(path=f"{SHOTS}/list-nojs-zh.png", full_page=True)
        page.locator('[data-testid="filter-chip"]').first.locator("a").click()
        expect(rows(page)).to_have_count(1)
    finally:
        context.close()
