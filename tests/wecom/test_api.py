"""The WeCom REST API against the local WeCom stand-in: live codes (create, change, archive, figures, the QR
image), follow relationships scoped by the contact's owner, the callback inbox and sync runs (managers),
staff accounts and their user mapping; 400s naming the field, 403s, and the schema."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.models import ChannelSpend
from tests.factories import ChannelFactory, ContactFactory, TagFactory
from wecom import tasks as wecom_tasks
from wecom.api.urls import router as wecom_router
from wecom.models import CallbackEvent, FollowRelationship, LiveCode, StaffAccount, SyncRun
from wecom.standin import WeComStandIn, serve

pytestmark = pytest.mark.django_db

CORP_ID = "ww-api"
SECRET = "api-secret"
CODES = "/api/v1/wecom/live-codes/"


@pytest.fixture(autouse=True)
def _english(settings):
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def standin(settings):
    fake = WeComStandIn(corp_id=CORP_ID, corp_secret=SECRET, staff=["li", "wang"])
    server, base = serve(fake)
    settings.WECOM_API_BASE = f"{base}/cgi-bin"
    settings.WECOM_CORP_ID = CORP_ID
    settings.WECOM_CORP_SECRET = SECRET
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def staff(db):
    return [
        StaffAccount.objects.create(userid="li", name="李娜"),
        StaffAccount.objects.create(userid="wang", name="王强"),
    ]


@pytest.fixture
def channel(db):
    return ChannelFactory(name="小红书")


def error_fields(response) -> set:
    body = response.json()
    assert set(body) == {"type", "detail", "errors"}, body
    return {error["field"] for error in body["errors"]}


def _payload(channel, staff, /, **fields) -> dict:
    return {
        "name": "小红书笔记",
        "channel": channel.pk,
        "pool": [{"staff": staff[0].pk, "daily_cap": 20}, {"staff": staff[1].pk}],
        "assignment": "round_robin",
        "welcome_attachments": [{"msgtype": "link", "link": {"title": "礼包", "url": "https://example.com/g"}}],
        **fields,
    }


def _create(api, channel, staff, /, **fields) -> dict:
    response = api.post(CODES, _payload(channel, staff, **fields), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _follow(code_id, contact, staff_account, *, deleted=False):
    now = timezone.now()
    return FollowRelationship.objects.create(
        contact=contact,
        staff=staff_account,
        external_userid=f"wm{contact.pk}-{staff_account.pk}",
        live_code_id=code_id,
        added_at=now - dt.timedelta(days=1),
        deleted_at=now if deleted else None,
    )


# --- Live codes ----------------------------------------------------------------------------------


def test_manager_creates_a_live_code_through_wecom(manager_api, standin, staff, channel):
    tag = TagFactory()
    body = _create(manager_api, channel, staff, tags=[tag.pk])
    code = LiveCode.objects.get(pk=body["id"])
    assert body["state"] == code.state and body["config_id"] in standin.ways and body["qr_code"]
    assert [(m["staff_userid"], m["daily_cap"]) for m in body["pool"]] == [("li", 20), ("wang", None)]
    assert body["tags"] == [tag.pk] and body["is_active"] is True
    assert body["figures"] == {
        "adds": 0,
        "active": 0,
        "deleted_within_7_days": 0,
        "buyers": 0,
        "spend": None,
        "cost_per_add": None,
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"channel": 999999}, "channel"),
        ({"pool": []}, "pool"),
        ({"pool": [{"staff": 999999}]}, "pool.0.staff"),
        ({"pool": [{"staff": "ID_LI", "daily_cap": 0}]}, "pool.0.daily_cap"),
        ({"pool": [{"staff": "ID_LI"}, {"staff": "ID_LI"}]}, "pool"),
        ({"assignment": "random"}, "assignment"),
        ({"welcome_attachments": [{"msgtype": "video"}]}, "welcome_attachments"),
        ({"welcome_attachments": {"msgtype": "link"}}, "welcome_attachments"),
        ({"welcome_template": 999999}, "welcome_template"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(manager_api, standin, staff, channel, fields, field):
    fields = {
        k: [{**m, "staff": staff[0].pk} if m.get("staff") == "ID_LI" else m for m in v] if k == "pool" else v
        for k, v in fields.items()
    }
    response = manager_api.post(CODES, _payload(channel, staff, **fields), format="json")
    assert response.status_code == 400, response.content
    assert field in error_fields(response)
    assert not LiveCode.objects.exists() and not standin.ways


def test_wecom_refusing_a_code_is_a_400(manager_api, standin, channel):
    ghost = StaffAccount.objects.create(userid="ghost")
    response = manager_api.post(CODES, _payload(channel, [ghost, ghost], pool=[{"staff": ghost.pk}]), format="json")
    assert response.status_code == 400 and error_fields(response) == {None}
    assert "WeCom refused the code" in response.json()["errors"][0]["message"]


def test_put_and_patch_change_the_code_and_keep_its_state(manager_api, standin, staff, channel):
    body = _create(manager_api, channel, staff)
    response = manager_api.patch(f"{CODES}{body['id']}/", {"name": "改名"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "改名" and len(response.json()["pool"]) == 2
    assert response.json()["welcome_attachments"] == body["welcome_attachments"]
    response = manager_api.put(
        f"{CODES}{body['id']}/", _payload(channel, staff, pool=[{"staff": staff[1].pk}]), format="json"
    )
    assert response.status_code == 200 and response.json()["state"] == body["state"]
    assert standin.ways[body["config_id"]]["user"] == ["wang"]
    response = manager_api.patch(f"{CODES}{body['id']}/", {"pool": []}, format="json")
    assert response.status_code == 400 and error_fields(response) == {"pool"}


def test_delete_archives_the_code_and_keeps_it(manager_api, standin, staff, channel):
    body = _create(manager_api, channel, staff)
    assert manager_api.delete(f"{CODES}{body['id']}/").status_code == 204
    code = LiveCode.objects.get(pk=body["id"])
    assert not code.is_active and body["config_id"] not in standin.ways
    assert manager_api.delete(f"{CODES}{body['id']}/").status_code == 204  # harmless when repeated
    response = manager_api.post(f"{CODES}{body['id']}/archive/")
    assert response.status_code == 200 and response.json()["is_active"] is False
    response = manager_api.patch(f"{CODES}{body['id']}/", {"name": "x"}, format="json")
    assert response.status_code == 409


def test_the_qr_image_is_a_png(manager_api, operator_api, standin, staff, channel):
    body = _create(manager_api, channel, staff)
    for api in (manager_api, operator_api):
        response = api.get(f"{CODES}{body['id']}/qr/")
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert response.content.startswith(b"\x89PNG")


def test_figures_count_what_the_caller_may_see_and_cost_is_null_without_spend(
    manager_api, operator_api, operator, other_operator, standin, staff, channel
):
    body = _create(manager_api, channel, staff)
    _follow(body["id"], ContactFactory(owner=operator, purchase_count=2), staff[0])
    _follow(body["id"], ContactFactory(owner=other_operator), staff[1], deleted=True)
    mine = operator_api.get(f"{CODES}{body['id']}/").json()["figures"]
    assert (mine["adds"], mine["buyers"], mine["cost_per_add"]) == (1, 1, None)
    everything = manager_api.get(CODES).json()["results"][0]["figures"]
    assert (everything["adds"], everything["active"], everything["deleted_within_7_days"]) == (2, 1, 1)
    ChannelSpend.objects.create(
        channel=channel, start_date=dt.date(2026, 1, 1), end_date=dt.date(2026, 1, 2), amount=Decimal("100")
    )
    assert manager_api.get(f"{CODES}{body['id']}/").json()["figures"]["cost_per_add"] == "50.00"


def test_operators_read_codes_but_cannot_write_them(operator_api, manager_api, standin, staff, channel):
    body = _create(manager_api, channel, staff)
    assert operator_api.get(CODES).status_code == 200
    assert operator_api.post(CODES, _payload(channel, staff), format="json").status_code == 403
    assert operator_api.patch(f"{CODES}{body['id']}/", {"name": "x"}, format="json").status_code == 403
    assert operator_api.delete(f"{CODES}{body['id']}/").status_code == 403
    assert operator_api.post(f"{CODES}{body['id']}/archive/").status_code == 403
    assert LiveCode.objects.get(pk=body["id"]).is_active


def test_the_list_does_not_grow_queries_with_page_size(manager_api, standin, staff, channel, operator):
    def queries(n) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = manager_api.get(CODES, {"page_size": n})
        assert response.status_code == 200 and len(response.json()["results"]) == n
        return len(captured)

    for i in range(6):
        body = _create(manager_api, channel, staff, name=f"码{i}")
        _follow(body["id"], ContactFactory(owner=operator), staff[i % 2])
    assert queries(6) <= queries(2)


# --- Follow relationships ------------------------------------------------------------------------


def test_operators_see_only_the_follows_of_their_own_contacts(operator_api, operator, other_operator, staff):
    mine = _follow(None, ContactFactory(owner=operator), staff[0])
    theirs = _follow(None, ContactFactory(owner=other_operator), staff[1])
    rows = operator_api.get("/api/v1/wecom/follows/").json()["results"]
    assert [r["id"] for r in rows] == [mine.pk]
    assert operator_api.get(f"/api/v1/wecom/follows/{theirs.pk}/").status_code == 404
    assert operator_api.get(f"/api/v1/wecom/follows/?contact={theirs.contact_id}").json()["results"] == []


def test_follows_filter_by_contact_staff_code_and_active(manager_api, standin, staff, channel, operator):
    body = _create(manager_api, channel, staff)
    contact = ContactFactory(owner=operator)
    through_code = _follow(body["id"], contact, staff[0])
    ended = _follow(None, contact, staff[1], deleted=True)
    other = _follow(None, ContactFactory(owner=operator), staff[0])

    def ids(query: str) -> set:
        response = manager_api.get(f"/api/v1/wecom/follows/?{query}")
        assert response.status_code == 200, response.content
        return {r["id"] for r in response.json()["results"]}

    assert ids(f"contact={contact.pk}") == {through_code.pk, ended.pk}
    assert ids(f"staff={staff[0].pk}") == {through_code.pk, other.pk}
    assert ids(f"live_code={body['id']}") == {through_code.pk}
    assert ids("active=false") == {ended.pk} and ids("active=true") == {through_code.pk, other.pk}
    row = manager_api.get(f"/api/v1/wecom/follows/{through_code.pk}/").json()
    assert row["live_code_name"] == "小红书笔记" and row["active"] is True and row["staff_userid"] == "li"
    assert manager_api.post("/api/v1/wecom/follows/", {}).status_code == 405


# --- Callbacks, sync runs, staff -----------------------------------------------------------------


def test_the_callback_inbox_is_for_managers(manager_api, operator_api, integrator_api):
    CallbackEvent.objects.create(
        key="k1", event="change_external_contact", message="<xml/>", status="failed", error="x"
    )
    CallbackEvent.objects.create(key="k2", event="change_external_contact", message="<xml/>", status="done")
    rows = manager_api.get("/api/v1/wecom/callbacks/?status=failed").json()["results"]
    assert [r["error"] for r in rows] == ["x"] and "message" not in rows[0]
    assert operator_api.get("/api/v1/wecom/callbacks/").status_code == 403
    assert integrator_api.get("/api/v1/wecom/callbacks/").status_code == 403


def test_managers_start_a_sync_and_operators_cannot(
    manager_api, operator_api, monkeypatch, django_capture_on_commit_callbacks
):
    calls = []

    class Task:
        @staticmethod
        def delay(*args, **kwargs):
            calls.append(args)

    monkeypatch.setattr(wecom_tasks, "sync_run", Task, raising=False)
    assert operator_api.post("/api/v1/wecom/sync-runs/").status_code == 403
    assert operator_api.get("/api/v1/wecom/sync-runs/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_api.post("/api/v1/wecom/sync-runs/")
    assert response.status_code == 202, response.content
    run = SyncRun.objects.get()
    assert calls == [(run.pk,)]
    listed = manager_api.get("/api/v1/wecom/sync-runs/").json()["results"]
    assert [r["id"] for r in listed] == [run.pk] and listed[0]["status"] == "running"
    response = manager_api.post("/api/v1/wecom/sync-runs/")
    assert response.status_code == 409 and response.json()["type"] == "conflict"


def test_managers_map_staff_to_users_one_to_one(manager_api, operator_api, staff, operator):
    url = f"/api/v1/wecom/staff/{staff[0].pk}/"
    response = manager_api.patch(url, {"user": operator.pk}, format="json")
    assert response.status_code == 200 and response.json()["user"] == operator.pk
    response = manager_api.patch(f"/api/v1/wecom/staff/{staff[1].pk}/", {"user": operator.pk}, format="json")
    assert response.status_code == 400 and error_fields(response) == {"user"}
    assert manager_api.patch(url, {"user": 999999}, format="json").status_code == 400
    assert manager_api.patch(url, {}, format="json").status_code == 400
    assert manager_api.patch(url, {"user": None}, format="json").json()["user"] is None
    assert manager_api.put(url, {"user": None}, format="json").status_code == 405
    assert operator_api.patch(url, {"user": operator.pk}, format="json").status_code == 403
    assert operator_api.get("/api/v1/wecom/staff/").status_code == 403
    rows = manager_api.get("/api/v1/wecom/staff/?mapped=false").json()["results"]
    assert {r["userid"] for r in rows} == {"li", "wang"}


def test_integrators_read_codes_follows_staff_and_runs(integrator_api, staff, operator):
    _follow(None, ContactFactory(owner=operator), staff[0])
    for path in ("live-codes", "follows", "staff", "sync-runs"):
        assert integrator_api.get(f"/api/v1/wecom/{path}/").status_code == 200, path
    assert len(integrator_api.get("/api/v1/wecom/follows/").json()["results"]) == 1
    assert integrator_api.post("/api/v1/wecom/sync-runs/").status_code == 403


# --- Schema -------------------------------------------------------------------------------------


def test_openapi_schema_documents_the_wecom_endpoints_without_warnings(manager_api):
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    GENERATOR_STATS.reset()
    schema = SchemaGenerator(patterns=None, urlconf=None).get_schema(request=None, public=True)
    validate_schema(schema)
    prefixes = {prefix for prefix, *_ in wecom_router.registry}
    paths = {p for p in schema["paths"] if any(p.startswith(f"/api/v1/{prefix}/") for prefix in prefixes)}
    assert {
        "/api/v1/wecom/live-codes/",
        "/api/v1/wecom/live-codes/{id}/",
        "/api/v1/wecom/live-codes/{id}/archive/",
        "/api/v1/wecom/live-codes/{id}/qr/",
        "/api/v1/wecom/follows/",
        "/api/v1/wecom/callbacks/{id}/",
        "/api/v1/wecom/sync-runs/",
        "/api/v1/wecom/staff/{id}/",
    } <= paths
    assert set(schema["paths"]["/api/v1/wecom/staff/{id}/"]) == {"get", "patch"}
    components = schema["components"]["schemas"]
    assert {"CallbackEventStatusEnum", "SyncRunStatusEnum"} <= set(components)
    assert "image/png" in schema["paths"]["/api/v1/wecom/live-codes/{id}/qr/"]["get"]["responses"]["200"]["content"]
    assert not GENERATOR_STATS, "drf-spectacular reported warnings or errors (see the captured output)"
    assert manager_api.get("/api/schema/").status_code == 200


@pytest.mark.parametrize(
    "attachments",
    [
        [{"msgtype": "link", "link": {"title": "x", "url": "javascript:alert(document.cookie)"}}],
        [{"msgtype": "link", "link": "https://example.com"}],
        [{"msgtype": "link", "link": {"title": "", "url": "https://example.com"}}],
        [{"msgtype": "image", "image": {}}],
        [{"msgtype": "miniprogram", "miniprogram": {"title": "t"}}],
        [["not", "a", "dict"]],
    ],
)
def test_an_attachment_that_is_not_wecoms_shape_or_not_a_web_link_is_a_400(
    manager_api, standin, channel, staff, attachments
):
    response = manager_api.post(CODES, _payload(channel, staff, welcome_attachments=attachments), format="json")
    assert response.status_code == 400
    assert "welcome_attachments" in error_fields(response)
    assert not LiveCode.objects.exists()


def test_a_daily_cap_out_of_range_is_a_400(manager_api, standin, channel, staff):
    pool = [{"staff": staff[0].pk, "daily_cap": 9_999_999_999}]
    response = manager_api.post(CODES, _payload(channel, staff, pool=pool), format="json")
    assert response.status_code == 400
    assert not LiveCode.objects.exists()


def test_wecom_busy_is_a_502_and_writes_nothing(manager_api, standin, channel, staff):
    standin.busy_every = 1
    response = manager_api.post(CODES, _payload(channel, staff), format="json")
    assert response.status_code == 502
    assert not LiveCode.objects.exists()
