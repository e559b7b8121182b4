"""The WeCom pages through Django's test client, against the local WeCom stand-in: live codes (list with
figures, form, detail with the QR image, archive, a simulated scan), the connection page (settings
without their values, token, callback inbox, sync, staff mapping), who may open what, and bad input as
form errors rather than 500s."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.models import MessageTemplate
from contacts.models import ChannelSpend
from tests.factories import ChannelFactory, ContactFactory, TagFactory, UserFactory
from wecom import tasks as wecom_tasks
from wecom.models import CallbackEvent, FollowRelationship, LiveCode, StaffAccount, SyncRun
from wecom.standin import WeComStandIn, serve

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"
CORP_ID = "ww-pages"
SECRET = "pages-secret-value-123"
TOKEN = "pages-token-value"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture(autouse=True)
def _english(settings):
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def standin(settings):
    """The WeCom stand-in on a local port, with three members; the settings point at it."""
    fake = WeComStandIn(
        corp_id=CORP_ID, corp_secret=SECRET, token=TOKEN, encoding_aes_key=AES_KEY, staff=["li", "wang", "zhao"]
    )
    server, base = serve(fake)
    settings.WECOM_API_BASE = f"{base}/cgi-bin"
    settings.WECOM_CORP_ID = CORP_ID
    settings.WECOM_CORP_SECRET = SECRET
    settings.WECOM_CALLBACK_TOKEN = TOKEN
    settings.WECOM_ENCODING_AES_KEY = AES_KEY
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def staff(db):
    return [
        StaffAccount.objects.create(userid="li", name="李娜"),
        StaffAccount.objects.create(userid="wang", name="王强"),
        StaffAccount.objects.create(userid="zhao", name="赵敏", is_follow_user=False),
    ]


@pytest.fixture
def channel(db):
    return ChannelFactory(name="抖音投放")


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def manager_client(manager):
    return logged_in(manager)


@pytest.fixture
def operator_client(operator):
    return logged_in(operator)


def _form(channel, staff, /, **fields) -> dict:
    data = {
        "name": "抖音直播间",
        "channel": channel.pk,
        "pool": [staff[0].pk, staff[1].pk],
        f"cap_{staff[0].pk}": "30",
        "assignment": "round_robin",
        "skip_verify": "on",
        "link_title_1": "新人礼包",
        "link_url_1": "https://shop.example.com/gift",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def _make_code(manager_client, channel, staff, /, **fields) -> LiveCode:
    response = manager_client.post(reverse("wecom:live_code_create"), _form(channel, staff, **fields))
    assert response.status_code == 302, response.content.decode()[:3000]
    return LiveCode.objects.latest("pk")


def _follow(code, contact, staff_account, *, added_days_ago=1, deleted_days_after=None, uid=None):
    added = timezone.now() - dt.timedelta(days=added_days_ago)
    return FollowRelationship.objects.create(
        contact=contact,
        staff=staff_account,
        external_userid=uid or f"wm{contact.pk}-{staff_account.pk}",
        live_code=code,
        state=code.state,
        added_at=added,
        deleted_at=added + dt.timedelta(days=deleted_days_after) if deleted_days_after is not None else None,
        ended_by="customer" if deleted_days_after is not None else "",
    )


# --- Live codes: create, edit, archive -----------------------------------------------------------


def test_manager_creates_a_live_code_in_wecom_and_here(manager_client, standin, staff, channel):
    tag = TagFactory(name="直播新客")
    template = MessageTemplate.objects.create(name="欢迎", body="{name}，欢迎关注")
    code = _make_code(manager_client, channel, staff, tags=[tag.pk], welcome_template=template.pk)
    assert code.name == "抖音直播间" and code.channel == channel and code.skip_verify
    assert [(m.staff.userid, m.daily_cap) for m in code.pool.all()] == [("li", 30), ("wang", None)]
    assert list(code.tags.all()) == [tag] and code.welcome_template == template
    assert code.welcome_attachments == [
        {"msgtype": "link", "link": {"title": "新人礼包", "url": "https://shop.example.com/gift"}}
    ]
    way = standin.ways[code.config_id]
    assert way["state"] == code.state and way["user"] == ["li", "wang"]
    assert code.qr_code.endswith(f"/standin/qr/{code.config_id}")


def test_a_live_code_without_a_pool_is_a_form_error_naming_the_pool(manager_client, standin, staff, channel):
    response = manager_client.post(reverse("wecom:live_code_create"), _form(channel, staff, pool=[]))
    assert response.status_code == 200
    assert "Choose at least one staff member." in response.context["form"].errors["pool"]
    assert not LiveCode.objects.exists() and not standin.ways


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"channel": "999999"}, "channel"),
        ({"cap_{li}": "0"}, "cap_{li}"),
        ({"link_url_1": "not a url at all"}, "link_url_1"),
        ({"link_url_1": ""}, "link_url_1"),
        ({"link_title_1": "", "link_url_2": "https://example.com/x"}, "link_title_2"),
        ({"assignment": "whoever"}, "assignment"),
        ({"pool": ["abc"]}, "pool"),
    ],
)
def test_bad_input_is_a_form_error_on_the_field(manager_client, standin, staff, channel, fields, field):
    li = staff[0].pk
    fields = {k.replace("{li}", str(li)): v for k, v in fields.items()}
    field = field.replace("{li}", str(li))
    response = manager_client.post(reverse("wecom:live_code_create"), _form(channel, staff, **fields))
    assert response.status_code == 200
    assert field in response.context["form"].errors, response.context["form"].errors
    assert not LiveCode.objects.exists()


def test_wecom_refusing_the_code_is_shown_on_the_form(manager_client, standin, staff, channel):
    unknown = StaffAccount.objects.create(userid="left-the-company", name="离职")
    response = manager_client.post(reverse("wecom:live_code_create"), _form(channel, staff, pool=[unknown.pk]))
    assert response.status_code == 200
    assert "WeCom refused the code" in " ".join(response.context["form"].non_field_errors())
    assert not LiveCode.objects.exists()


def test_wecom_unreachable_is_a_form_error_not_a_500(manager_client, settings, staff, channel):
    settings.WECOM_API_BASE = "http://127.0.0.1:9/cgi-bin"
    settings.WECOM_CORP_ID, settings.WECOM_CORP_SECRET = "ww-x", "y"
    settings.SCRM_GATEWAY_TIMEOUT = 0.5
    from unittest import mock

    with mock.patch("wecom.client.time.sleep"):
        response = manager_client.post(reverse("wecom:live_code_create"), _form(channel, staff))
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert not LiveCode.objects.exists()


def test_manager_edits_a_code_and_its_state_stays(manager_client, standin, staff, channel):
    code = _make_code(manager_client, channel, staff)
    page = manager_client.get(reverse("wecom:live_code_edit", args=[code.pk]))
    assert page.status_code == 200 and "抖音直播间" in page.content.decode()
    response = manager_client.post(
        reverse("wecom:live_code_edit", args=[code.pk]),
        _form(
            channel,
            staff,
            name="抖音直播间 2",
            pool=[staff[1].pk],
            assignment="fewest_today",
            link_title_1="",
            link_url_1="",
        ),
    )
    assert response.status_code == 302
    edited = LiveCode.objects.get(pk=code.pk)
    assert edited.name == "抖音直播间 2" and edited.state == code.state and edited.assignment == "fewest_today"
    assert [m.staff.userid for m in edited.pool.all()] == ["wang"] and edited.welcome_attachments == []
    assert standin.ways[code.config_id]["user"] == ["wang"]


def test_archiving_asks_first_then_stops_the_code_in_wecom(manager_client, standin, staff, channel):
    code = _make_code(manager_client, channel, staff)
    confirm = manager_client.get(reverse("wecom:live_code_archive", args=[code.pk]))
    assert confirm.status_code == 200 and 'name="csrfmiddlewaretoken"' in confirm.content.decode()
    assert LiveCode.objects.get(pk=code.pk).is_active
    response = manager_client.post(reverse("wecom:live_code_archive", args=[code.pk]), follow=True)
    assert "archived" in response.content.decode()
    assert not LiveCode.objects.get(pk=code.pk).is_active and code.config_id not in standin.ways
    # Archived codes are not editable, and archiving again is harmless.
    assert manager_client.get(reverse("wecom:live_code_edit", args=[code.pk])).status_code == 302
    assert manager_client.post(reverse("wecom:live_code_archive", args=[code.pk])).status_code == 302


# --- Live codes: list and detail -----------------------------------------------------------------


def test_the_list_shows_each_codes_figures_and_a_dash_without_spend(manager_client, standin, staff, channel, operator):
    code = _make_code(manager_client, channel, staff)
    buyer = ContactFactory(owner=operator, purchase_count=1)
    _follow(code, buyer, staff[0])
    _follow(code, ContactFactory(owner=operator), staff[1], deleted_days_after=2)
    page = manager_client.get(reverse("wecom:live_code_list"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "抖音直播间" in text and "李娜" in text and "≤30" in text
    figures = page.context["rows"][0]["figures"]
    assert (figures.adds, figures.active, figures.deleted_within_7_days, figures.buyers) == (2, 1, 1, 1)
    assert figures.cost_per_add is None
    assert "¥0.00" not in text and 'data-testid="figure-cost">—<' in text

    ChannelSpend.objects.create(
        channel=channel, start_date=dt.date(2026, 1, 1), end_date=dt.date(2026, 1, 31), amount=Decimal("300.00")
    )
    text = manager_client.get(reverse("wecom:live_code_list")).content.decode()
    assert "150.00" in text


def test_the_list_computes_figures_in_a_fixed_number_of_queries(manager_client, standin, staff, channel):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            page = manager_client.get(reverse("wecom:live_code_list"))
        assert page.status_code == 200
        return len(captured)

    for i in range(3):
        _make_code(manager_client, channel, staff, name=f"码{i}")
    few = queries()
    for i in range(3, 12):
        _make_code(manager_client, channel, staff, name=f"码{i}")
    assert queries() <= few


def test_archived_codes_are_listed_only_on_request(manager_client, standin, staff, channel):
    code = _make_code(manager_client, channel, staff)
    manager_client.post(reverse("wecom:live_code_archive", args=[code.pk]))
    assert not manager_client.get(reverse("wecom:live_code_list")).context["rows"]
    assert manager_client.get(reverse("wecom:live_code_list") + "?archived=1").context["rows"]


def test_the_detail_shows_the_qr_image_and_wecoms_link(manager_client, standin, staff, channel):
    code = _make_code(manager_client, channel, staff)
    text = manager_client.get(reverse("wecom:live_code_detail", args=[code.pk])).content.decode()
    qr_url = reverse("wecom:live_code_qr", args=[code.pk])
    assert f'src="{qr_url}"' in text and f'href="{code.qr_code}"' in text and f"{qr_url}?download=1" in text
    image = manager_client.get(qr_url)
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG") and "Content-Disposition" not in image
    download = manager_client.get(qr_url + "?download=1")
    assert download["Content-Disposition"] == f'attachment; filename="live-code-{code.pk}.png"'


def test_an_operator_sees_codes_but_only_the_adds_of_their_own_contacts(
    manager_client, operator_client, operator, other_operator, standin, staff, channel
):
    code = _make_code(manager_client, channel, staff)
    _follow(code, ContactFactory(owner=operator, name="我的客户"), staff[0])
    _follow(code, ContactFactory(owner=other_operator, name="别人的客户"), staff[1])
    assert operator_client.get(reverse("wecom:live_code_list")).status_code == 200
    text = operator_client.get(reverse("wecom:live_code_detail", args=[code.pk])).content.decode()
    assert "我的客户" in text and "别人的客户" not in text
    assert operator_client.get(reverse("wecom:live_code_qr", args=[code.pk])).status_code == 200
    manager_text = manager_client.get(reverse("wecom:live_code_detail", args=[code.pk])).content.decode()
    assert "我的客户" in manager_text and "别人的客户" in manager_text


def test_operators_cannot_change_codes_nor_open_the_connection(
    manager_client, operator_client, standin, staff, channel
):
    code = _make_code(manager_client, channel, staff)
    text = operator_client.get(reverse("wecom:live_code_detail", args=[code.pk])).content.decode()
    assert reverse("wecom:live_code_edit", args=[code.pk]) not in text
    refused = [
        operator_client.get(reverse("wecom:live_code_create")),
        operator_client.post(reverse("wecom:live_code_create"), _form(channel, staff)),
        operator_client.get(reverse("wecom:live_code_edit", args=[code.pk])),
        operator_client.post(reverse("wecom:live_code_archive", args=[code.pk])),
        operator_client.post(reverse("wecom:live_code_simulate_scan", args=[code.pk])),
        operator_client.get(reverse("wecom:connection")),
        operator_client.get(reverse("wecom:connection_token")),
        operator_client.post(reverse("wecom:sync_now")),
        operator_client.post(reverse("wecom:staff_account_map", args=[staff[0].pk]), {}),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert LiveCode.objects.get(pk=code.pk).is_active and LiveCode.objects.count() == 1


def test_anonymous_visitors_are_sent_to_log_in(client, staff):
    for name in ("wecom:live_code_list", "wecom:connection", "wecom:live_code_create"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_unknown_codes_are_404(manager_client):
    assert manager_client.get(reverse("wecom:live_code_detail", args=[424242])).status_code == 404
    assert manager_client.get(reverse("wecom:live_code_qr", args=[424242])).status_code == 404


def test_forms_need_the_csrf_token(manager, staff, channel, standin):
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    assert client.post(reverse("wecom:live_code_create"), _form(channel, staff)).status_code == 403
    assert client.post(reverse("wecom:sync_now")).status_code == 403
    form_page = client.get(reverse("wecom:live_code_create")).content.decode()
    assert 'name="csrfmiddlewaretoken"' in form_page


def test_navigation_says_wecom_to_managers_and_live_codes_to_operators(manager_client, operator_client):
    manager_nav = [item["label"] for item in manager_client.get(reverse("wecom:live_code_list")).context["nav_items"]]
    operator_nav = [item["label"] for item in operator_client.get(reverse("wecom:live_code_list")).context["nav_items"]]
    assert "WeCom" in manager_nav and "Live codes" not in manager_nav
    assert "Live codes" in operator_nav and "WeCom" not in operator_nav


# --- Simulation ----------------------------------------------------------------------------------


def test_in_simulation_a_scan_reaches_the_callback(manager_client, standin, staff, channel, settings, live_server):
    settings.WECOM_SIMULATION = True
    code = _make_code(manager_client, channel, staff)
    text = manager_client.get(reverse("wecom:live_code_detail", args=[code.pk])).content.decode()
    assert 'data-testid="simulation-banner"' in text and 'data-testid="simulate-scan"' in text
    # The stand-in posts the add to the callback URL built from the request's host: the live server's.
    host = live_server.url.removeprefix("http://")
    response = manager_client.post(
        reverse("wecom:live_code_simulate_scan", args=[code.pk]), HTTP_HOST=host, follow=True
    )
    assert "A simulated customer scanned" in response.content.decode()
    event = CallbackEvent.objects.get()
    assert event.change_type == "add_external_contact" and code.state in event.message


def test_a_scan_when_the_standin_is_down_is_a_message(manager_client, standin, staff, channel, settings):
    settings.WECOM_SIMULATION = True
    code = _make_code(manager_client, channel, staff)
    settings.WECOM_API_BASE = "http://127.0.0.1:9/cgi-bin"
    response = manager_client.post(reverse("wecom:live_code_simulate_scan", args=[code.pk]), follow=True)
    assert response.status_code == 200 and "The WeCom stand-in did not take the scan" in response.content.decode()


def test_without_simulation_there_is_no_banner_and_no_scan(manager_client, standin, staff, channel, settings):
    settings.WECOM_SIMULATION = False
    code = _make_code(manager_client, channel, staff)
    text = manager_client.get(reverse("wecom:live_code_detail", args=[code.pk])).content.decode()
    assert "simulation-banner" not in text and "simulate-scan" not in text
    response = manager_client.post(reverse("wecom:live_code_simulate_scan", args=[code.pk]), follow=True)
    assert "only be simulated when WECOM_SIMULATION is on" in response.content.decode()
    assert not CallbackEvent.objects.exists()


# --- Connection page ------------------------------------------------------------------------------


def test_the_connection_page_names_missing_settings_but_never_shows_values(manager_client, settings):
    settings.WECOM_CORP_ID = "ww-visible-id"
    settings.WECOM_CORP_SECRET = "very-secret-value"
    settings.WECOM_CALLBACK_TOKEN = ""
    settings.WECOM_ENCODING_AES_KEY = ""
    page = manager_client.get(reverse("wecom:connection"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "very-secret-value" not in text and "ww-visible-id" not in text
    assert page.context["missing_settings"] == ["WECOM_CALLBACK_TOKEN", "WECOM_ENCODING_AES_KEY"]
    assert "Not configured" in text
    assert "http://testserver/wecom/callback/" in text


def test_the_token_check_says_whether_wecom_gives_a_token(manager_client, standin, settings):
    text = manager_client.get(reverse("wecom:connection_token")).content.decode()
    assert "Token: OK" in text and SECRET not in text
    settings.WECOM_CORP_SECRET = "wrong-secret"
    text = manager_client.get(reverse("wecom:connection_token")).content.decode()
    assert "Token: not available" in text and "wrong-secret" not in text


def test_a_token_check_that_blows_up_is_a_message(manager_client, monkeypatch):
    import wecom.client

    class Broken:
        def __init__(self, **kwargs):
            raise RuntimeError("boom")

    monkeypatch.setattr(wecom.client, "WeComClient", Broken)
    response = manager_client.get(reverse("wecom:connection_token"))
    assert response.status_code == 200 and "boom" in response.content.decode()


def test_the_connection_page_shows_the_inbox_and_the_last_sync(manager_client, manager):
    CallbackEvent.objects.create(
        key="a", event="change_external_contact", change_type="add_external_contact", message="<xml/>", status="done"
    )
    CallbackEvent.objects.create(
        key="b",
        event="change_external_contact",
        change_type="del_follow_user",
        message="<xml/>",
        status="failed",
        error="contact not found: wm-xyz",
        attempts=3,
    )
    SyncRun.objects.create(
        status="done",
        started_by=manager,
        staff_count=2,
        customers_seen=40,
        contacts_created=12,
        follows_written=41,
        position={"userids": ["a", "b"], "index": 2},
        finished_at=timezone.now(),
    )
    page = manager_client.get(reverse("wecom:connection"))
    text = page.content.decode()
    assert "contact not found: wm-xyz" in text and "del_follow_user" in text
    assert page.context["inbox"].counts == {"done": 1, "failed": 1}
    assert page.context["run_progress"] == (2, 2) and "41" in text


class _RecordingTask:
    def __init__(self):
        self.calls = []

    def delay(self, *args, **kwargs):
        self.calls.append((args, kwargs))


def test_sync_now_starts_a_run_and_queues_it_once(
    manager_client, manager, monkeypatch, django_capture_on_commit_callbacks
):
    task = _RecordingTask()
    monkeypatch.setattr(wecom_tasks, "sync_run", task, raising=False)
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(reverse("wecom:sync_now"), follow=True)
    run = SyncRun.objects.get()
    assert run.status == "running" and run.started_by == manager
    assert task.calls == [((run.pk,), {})] and "Sync queued" in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(reverse("wecom:sync_now"), follow=True)
    assert "already running" in response.content.decode() and len(task.calls) == 1


def test_sync_now_resumes_a_run_whose_worker_went_quiet(
    manager_client, monkeypatch, django_capture_on_commit_callbacks
):
    task = _RecordingTask()
    monkeypatch.setattr(wecom_tasks, "sync_run", task, raising=False)
    run = SyncRun.objects.create(status="running")
    SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    SyncRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - dt.timedelta(hours=2))
    with django_capture_on_commit_callbacks(execute=True):
        manager_client.post(reverse("wecom:sync_now"))
    assert task.calls == [((run.pk,), {})] and SyncRun.objects.count() == 1


def test_manager_maps_a_staff_account_to_a_user_one_to_one(manager_client, staff, operator, other_operator):
    url = reverse("wecom:staff_account_map", args=[staff[0].pk])
    response = manager_client.post(url, {f"staff{staff[0].pk}-user": operator.pk})
    assert response.status_code == 302
    assert StaffAccount.objects.get(pk=staff[0].pk).user == operator
    # The same user for a second account is refused, naming the account they already work as.
    response = manager_client.post(
        reverse("wecom:staff_account_map", args=[staff[1].pk]), {f"staff{staff[1].pk}-user": operator.pk}
    )
    assert response.status_code == 400
    assert "already works as the WeCom member 李娜 (li)" in response.content.decode()
    assert StaffAccount.objects.get(pk=staff[1].pk).user is None
    # Unmapping, and an unknown or inactive user, are handled without a 500.
    assert manager_client.post(url, {f"staff{staff[0].pk}-user": ""}).status_code == 302
    assert StaffAccount.objects.get(pk=staff[0].pk).user is None
    inactive = UserFactory(username="gone", is_active=False, role="operator")
    for bad in ("999999", "abc", str(inactive.pk)):
        assert manager_client.post(url, {f"staff{staff[0].pk}-user": bad}).status_code == 400


def test_the_staff_table_lists_every_account_with_its_user(manager_client, staff, operator):
    StaffAccount.objects.filter(pk=staff[0].pk).update(user=operator)
    page = manager_client.get(reverse("wecom:connection"))
    rows = page.context["staff_rows"]
    assert [r["account"].userid for r in rows] == ["li", "wang", "zhao"]
    assert rows[0]["chosen"] == str(operator.pk) and rows[1]["chosen"] == ""
    assert f'<option value="{operator.pk}" selected>' in page.content.decode()


def test_the_connection_page_does_not_grow_queries_with_staff(manager_client, operator):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert manager_client.get(reverse("wecom:connection")).status_code == 200
        return len(captured)

    StaffAccount.objects.create(userid="a1")
    few = queries()
    for i in range(10):
        StaffAccount.objects.create(userid=f"b{i}")
    assert queries() <= few


def test_list_filters_with_bad_values_do_not_fail(manager_client, standin, staff, channel):
    for query in ("?channel=abc", "?page=zzz", "?archived=1&channel=999999", "?search=%00"):
        assert manager_client.get(reverse("wecom:live_code_list") + query).status_code == 200, query


def test_the_admin_lists_every_wecom_model_read_only(admin_user, staff, channel, operator):
    admin_user.is_staff = True
    admin_user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(admin_user)
    code = LiveCode.objects.create(name="门店码", channel=channel, state="lc-admin")
    _follow(code, ContactFactory(owner=operator), staff[0])
    CallbackEvent.objects.create(key="k", event="change_external_contact", message="<xml>secret</xml>")
    SyncRun.objects.create(status="done")
    for model in ("staffaccount", "livecode", "followrelationship", "callbackevent", "syncrun"):
        response = client.get(f"/admin/wecom/{model}/")
        assert response.status_code == 200, model
        assert client.get(f"/admin/wecom/{model}/add/").status_code == 403, model
    detail = client.get(f"/admin/wecom/callbackevent/{CallbackEvent.objects.get().pk}/change/")
    assert detail.status_code == 200 and "<xml>secret</xml>" not in detail.content.decode()


def test_sync_now_runs_the_real_sync_against_the_standin(manager_client, standin, django_capture_on_commit_callbacks):
    from tests.celery_utils import celery_conf_override

    with celery_conf_override(task_always_eager=True), django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(reverse("wecom:sync_now"), follow=True)
    assert response.status_code == 200
    run = SyncRun.objects.get()
    assert run.status == "done", run.error
    assert set(StaffAccount.objects.values_list("userid", flat=True)) == {"li", "wang", "zhao"}
    page = manager_client.get(reverse("wecom:connection"))
    assert page.context["run"] == run and len(page.context["staff_rows"]) == 3
