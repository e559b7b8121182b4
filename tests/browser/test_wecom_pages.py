"""The WeCom pages in a real browser, against the local WeCom stand-in: a manager creates a channel live code
through the form, finds it in the list and sees its QR image on its page, in Chinese and in English; the
connection page and a live code's page are photographed in both languages (to /tmp/wecom-shots/)."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from campaigns.models import MessageTemplate
from scrm import roles
from tests.factories import ChannelFactory, TagFactory, UserFactory
from wecom.models import CallbackEvent, LiveCode, StaffAccount, SyncRun
from wecom.standin import WeComStandIn, serve

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = "/tmp/wecom-shots"
CORP_ID = "ww-browser"
SECRET = "browser-secret"
TOKEN = "browser-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture
def manager(transactional_db):
    return UserFactory(username="manager", first_name="王经理", role=roles.MANAGER)


@pytest.fixture
def standin(settings):
    fake = WeComStandIn(
        corp_id=CORP_ID, corp_secret=SECRET, token=TOKEN, encoding_aes_key=AES_KEY, staff=["li", "wang"]
    )
    server, base = serve(fake)
    settings.WECOM_API_BASE = f"{base}/cgi-bin"
    settings.WECOM_CORP_ID = CORP_ID
    settings.WECOM_CORP_SECRET = SECRET
    settings.WECOM_CALLBACK_TOKEN = TOKEN
    settings.WECOM_ENCODING_AES_KEY = AES_KEY
    settings.WECOM_SIMULATION = True
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def wecom_setup(transactional_db, manager):
    li = StaffAccount.objects.create(userid="li", name="李娜", user=manager)
    wang = StaffAccount.objects.create(userid="wang", name="王强")
    channel = ChannelFactory(name="抖音投放")
    tag = TagFactory(name="直播新客")
    template = MessageTemplate.objects.create(name="新客欢迎语", body="{name}，欢迎加入！新人礼包已送上。")
    return {"li": li, "wang": wang, "channel": channel, "tag": tag, "template": template}


def _use_language(page, code: str) -> None:
    page.click(f'button[name="language"][value="{code}"]')
    expect(page.locator("html")).to_have_attribute("lang", code)


def _create_code(page, setup, name: str) -> None:
    page.goto("/wecom/")
    page.get_by_test_id("live-code-new").click()
    page.fill("#id_name", name)
    page.select_option("#id_channel", str(setup["channel"].pk))
    page.check(f"#id_pool_{setup['li'].pk}")
    page.check(f"#id_pool_{setup['wang'].pk}")
    page.fill(f"#id_cap_{setup['li'].pk}", "30")
    page.select_option("#id_tags", str(setup["tag"].pk))
    page.select_option("#id_welcome_template", str(setup["template"].pk))
    page.fill("#id_link_title_1", "新人礼包")
    page.fill("#id_link_url_1", "https://shop.example.com/gift")
    page.get_by_test_id("live-code-save").click()
    expect(page.get_by_test_id("live-code-name")).to_contain_text(name)


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_manager_creates_a_live_code_and_sees_its_qr_image(login, manager, standin, wecom_setup, language):
    os.makedirs(SHOTS, exist_ok=True)
    page = login(manager)
    _use_language(page, language)
    name = "抖音直播间" if language == "zh-hans" else "Douyin live room"

    # An empty pool is refused on the form, naming the pool.
    page.goto("/wecom/live-codes/new/")
    page.fill("#id_name", name)
    page.select_option("#id_channel", str(wecom_setup["channel"].pk))
    page.get_by_test_id("live-code-save").click()
    expect(page.get_by_test_id("pool-error")).to_be_visible()
    page.screenshot(path=f"{SHOTS}/live-code-form-{language}.png", full_page=True)
    assert not LiveCode.objects.exists()

    _create_code(page, wecom_setup, name)
    expect(page.get_by_test_id("simulation-banner")).to_be_visible()
    image = page.get_by_test_id("qr-image")
    expect(image).to_be_visible()
    # The PNG arrives after the page: wait for it to be decoded (a real image, not a broken one).
    page.wait_for_function(
        "() => { const img = document.querySelector('[data-testid=qr-image]');"
        " return img && img.complete && img.naturalWidth > 100; }",
        timeout=10_000,
    )
    expect(page.get_by_test_id("cost-per-add")).to_have_text("—")
    page.screenshot(path=f"{SHOTS}/live-code-detail-{language}.png", full_page=True)

    page.goto("/wecom/")
    row = page.get_by_test_id("live-code-row").filter(has_text=name)
    expect(row).to_contain_text("李娜")
    expect(row).to_contain_text("抖音投放")
    page.screenshot(path=f"{SHOTS}/live-code-list-{language}.png", full_page=True)
    row.get_by_role("link", name=name).click()
    expect(page.get_by_test_id("qr-image")).to_be_visible()


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_connection_page_in_both_languages(login, manager, standin, wecom_setup, language):
    os.makedirs(SHOTS, exist_ok=True)
    CallbackEvent.objects.create(
        key="a", event="change_external_contact", change_type="add_external_contact", message="<xml/>", status="done"
    )
    CallbackEvent.objects.create(
        key="b",
        event="change_external_contact",
        change_type="del_follow_user",
        message="<xml/>",
        status="failed",
        attempts=3,
        error="WeCom get error 84061: not external contact",
    )
    SyncRun.objects.create(
        status="done",
        staff_count=2,
        customers_seen=120,
        contacts_created=37,
        follows_written=121,
        position={"userids": ["li", "wang"], "index": 2},
    )
    page = login(manager)
    _use_language(page, language)
    page.goto("/wecom/connection/")
    expect(page.get_by_test_id("token-status")).to_be_visible()
    expect(page.get_by_test_id("token-status")).to_have_class("alert alert-success")
    expect(page.get_by_test_id("configured")).to_be_visible()
    expect(page.get_by_test_id("failed-callback")).to_contain_text("84061")
    expect(page.get_by_test_id("staff-row")).to_have_count(2)
    assert SECRET not in page.content() and AES_KEY not in page.content()
    page.screenshot(path=f"{SHOTS}/connection-{language}.png", full_page=True)


def test_a_simulated_scan_brings_the_customer_in_with_channel_owner_tags_and_welcome(
    login, manager, standin, wecom_setup
):
    """What README's "See WeCom intake after make run" promises, in a browser: the stand-in pushes a signed
    callback to the live server, the add is applied (Celery eager here; a real worker in
    tests/wecom/test_worker.py), and the customer shows on the code's page and in the contacts list."""
    from contacts.models import Contact
    from tests.celery_utils import celery_conf_override

    page = login(manager)
    _use_language(page, "zh-hans")
    _create_code(page, wecom_setup, "门店海报")
    with celery_conf_override(task_always_eager=True):
        page.get_by_test_id("simulate-scan").click()
        expect(page.get_by_test_id("follow-row")).to_have_count(1)
    contact = Contact.objects.get()
    assert contact.channel == wecom_setup["channel"]
    assert list(contact.tag_links.values_list("tag__name", flat=True)) == ["直播新客"]
    assert contact.owner in (manager, None)  # the pool's member the stand-in chose (li is mapped, wang is not)
    welcome = standin.welcomes[0]
    assert welcome["text"].startswith(contact.name) and "新人礼包" in welcome["text"]
    assert welcome["attachments"][0]["link"]["url"] == "https://shop.example.com/gift"
    page.goto("/contacts/")
    expect(page.get_by_test_id("contact-row").filter(has_text=contact.name)).to_contain_text("直播新客")
    # The intake report counts the add (and is photographed for review).
    page.goto("/wecom/intake/")
    expect(page.get_by_test_id("intake-total-row")).to_contain_text("抖音投放")
    page.screenshot(path=f"{SHOTS}/intake-zh-hans.png", full_page=True)
