"""The campaigns REST API: segments, templates, broadcasts and their status flow, deliveries and the
outbox, the frequency policy, automations and their runs, follow-up tasks; scoping (operators see their
own), the 400s that name the field, the 403s, and query counts that do not grow with the page size."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import NoReverseMatch, include, path, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns import services
from campaigns.api.urls import router as campaigns_router
from campaigns.models import (
    Automation,
    AutomationRun,
    Broadcast,
    Delivery,
    FollowUpTask,
    FrequencyCap,
    FrequencyPolicy,
    MessageTemplate,
    OutboxMessage,
    Segment,
)
from scrm.urls import urlpatterns as project_urlpatterns
from tests.campaigns.factories import BroadcastFactory, MessageTemplateFactory, SegmentFactory
from tests.factories import CommunityFactory, ContactFactory, MembershipFactory, PurchaseFactory, TagFactory


@pytest.fixture(autouse=True)
def _english(settings):
    """These tests read the English messages; the Chinese ones are the catalogue's job."""
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


pytestmark = pytest.mark.django_db

# Until scrm/api_urls.py registers the campaigns router, the tests mount it themselves (see the fixture).
urlpatterns = [path("api/v1/", include(campaigns_router.urls)), *project_urlpatterns]

EVERYONE = {"op": "and", "rules": []}
TOMORROW = dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def _campaigns_routes(settings):
    try:
        reverse("broadcast-list")
    except NoReverseMatch:
        settings.ROOT_URLCONF = __name__


@pytest.fixture(autouse=True)
def _no_quiet_hours(db):
    FrequencyPolicy.objects.update_or_create(pk=1, defaults={"quiet_hours_enabled": False})


def error_fields(response) -> set:
    body = response.json()
    assert set(body) == {"type", "detail", "errors"}, body
    return {error["field"] for error in body["errors"]}


def error_messages(response, field: str) -> list[str]:
    return [error["message"] for error in response.json()["errors"] if error["field"] == field]


def _later(delta: dt.timedelta = TOMORROW) -> str:
    return (timezone.now() + delta).isoformat()


@pytest.fixture
def template(db):
    return MessageTemplate.objects.create(name="双十二", category="促销", body="{name}，会员专享券 {coupon}")


@pytest.fixture
def everyone(db):
    return Segment.objects.create(name="Everyone", rules=EVERYONE)


def _broadcast_payload(template, segment, **fields) -> dict:
    return {
        "name": "Double 12",
        "template": template.pk,
        "segment": segment.pk if segment else None,
        "variables": {"coupon": "DD12"},
        "medium": "wecom",
        **fields,
    }


def _delivery(broadcast, contact, status=Delivery.Status.SENT, reason="", **fields) -> Delivery:
    return Delivery.objects.create(
        broadcast=broadcast,
        contact=contact,
        medium=broadcast.medium,
        template=broadcast.template,
        status=status,
        reason=reason,
        claimed_at=timezone.now() if status in ("sending", "sent") else None,
        sent_at=timezone.now() if status == "sent" else None,
        **fields,
    )


# --- Segments ------------------------------------------------------------------------------------


def test_segment_create_normalises_rules_and_detail_has_the_count_but_list_does_not(operator, operator_api):
    tag = TagFactory()
    ContactFactory.create_batch(2, owner=operator)
    rules = {"op": "and", "rules": [{"field": "tags", "operator": "none", "value": [str(tag.pk), tag.pk]}]}
    response = operator_api.post("/api/v1/segments/", {"name": " 未打标 ", "rules": rules})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "未打标"
    assert body["rules"]["rules"][0]["value"] == [tag.pk]
    assert body["count"] == 2 and body["created_by"]["id"] == operator.pk

    assert operator_api.get(f"/api/v1/segments/{body['id']}/").json()["count"] == 2
    listed = operator_api.get("/api/v1/segments/").json()["results"]
    assert [row["id"] for row in listed] == [body["id"]] and "count" not in listed[0]


def test_segment_count_and_preview_are_scoped_to_the_callers_contacts(
    operator, operator_api, other_operator, manager_api
):
    ContactFactory.create_batch(2, owner=operator, region="上海")
    ContactFactory.create_batch(3, owner=other_operator, region="上海")
    ContactFactory(owner=operator, region="杭州")
    rules = {"op": "and", "rules": [{"field": "region", "operator": "eq", "value": "上海"}]}
    segment = SegmentFactory(rules=rules)

    assert operator_api.get(f"/api/v1/segments/{segment.pk}/count/").json() == {"count": 2}
    assert manager_api.get(f"/api/v1/segments/{segment.pk}/count/").json() == {"count": 5}
    assert operator_api.post("/api/v1/segments/preview/", {"rules": rules}).json() == {"count": 2}
    assert manager_api.post("/api/v1/segments/preview/", {"rules": EVERYONE}).json() == {"count": 6}


def test_segment_preview_with_an_unknown_operator_is_a_400_naming_rules_and_the_place(operator_api):
    rules = {
        "op": "and",
        "rules": [
            {"field": "region", "operator": "eq", "value": "上海"},
            {"field": "stage", "operator": "contains", "value": ["lead"]},
        ],
    }
    response = operator_api.post("/api/v1/segments/preview/", {"rules": rules})
    assert response.status_code == 400
    assert error_fields(response) == {"rules"}
    [message] = error_messages(response, "rules")
    assert message.startswith("rules[1].operator: unknown operator 'contains'")


def test_segment_with_an_unknown_field_or_tag_is_a_400_and_nothing_is_saved(manager_api):
    response = manager_api.post(
        "/api/v1/segments/",
        {"name": "x", "rules": {"op": "and", "rules": [{"field": "salary", "operator": "gte", "value": 1}]}},
    )
    assert response.status_code == 400 and error_fields(response) == {"rules"}
    assert "rules[0].field: unknown field 'salary'" in error_messages(response, "rules")[0]

    response = manager_api.post(
        "/api/v1/segments/preview/",
        {"rules": {"op": "and", "rules": [{"field": "tags", "operator": "any", "value": [999]}]}},
    )
    assert response.status_code == 400 and "unknown" in error_messages(response, "rules")[0]
    assert not Segment.objects.exists()


def test_segment_update_validates_rules(manager_api):
    segment = SegmentFactory()
    response = manager_api.patch(f"/api/v1/segments/{segment.pk}/", {"rules": {"op": "xor", "rules": []}})
    assert response.status_code == 400 and error_fields(response) == {"rules"}
    response = manager_api.patch(f"/api/v1/segments/{segment.pk}/", {"name": "新名字"})
    assert response.status_code == 200 and response.json()["name"] == "新名字"


def test_a_segment_in_use_cannot_be_deleted_and_operators_cannot_delete_segments(manager_api, operator_api, manager):
    used = SegmentFactory()
    BroadcastFactory(segment=used, created_by=manager)
    unused = SegmentFactory()
    assert operator_api.delete(f"/api/v1/segments/{unused.pk}/").status_code == 403
    response = manager_api.delete(f"/api/v1/segments/{used.pk}/")
    assert response.status_code == 409 and response.json()["type"] == "conflict"
    assert manager_api.delete(f"/api/v1/segments/{unused.pk}/").status_code == 204
    assert list(Segment.objects.all()) == [used]


def test_segment_fields_describe_the_rule_language(operator_api):
    fields = {row["field"]: row for row in operator_api.get("/api/v1/segments/fields/").json()}
    assert fields["tags"]["operators"] == ["any", "all", "none"]
    assert "lead" in [choice["value"] for choice in fields["stage"]["choices"]]


# --- Message templates ---------------------------------------------------------------------------


def test_template_create_lists_its_placeholders(manager, manager_api):
    response = manager_api.post(
        "/api/v1/templates/", {"name": "券", "category": "促销", "subject": "给 {name}", "body": "{name}：{coupon}"}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["placeholders"] == ["coupon", "name"]
    assert body["created_by"]["id"] == manager.pk and body["is_active"] is True


def test_template_with_an_unknown_placeholder_is_a_400_naming_the_body(manager_api):
    response = manager_api.post("/api/v1/templates/", {"name": "x", "body": "你好 {nickname}"})
    assert response.status_code == 400 and error_fields(response) == {"body"}
    assert "{nickname}" in error_messages(response, "body")[0]
    assert not MessageTemplate.objects.exists()


def test_templates_filter_by_category_and_search_and_list_categories(manager_api):
    promo = MessageTemplateFactory(name="双十二", category="促销", body="{name} 大促")
    care = MessageTemplateFactory(name="生日", category="关怀", body="{name} 生日快乐")
    MessageTemplateFactory(name="售后", category="售后", body="{name} 收货了吗")

    def ids(query):
        response = manager_api.get(f"/api/v1/templates/?{query}")
        assert response.status_code == 200, response.content
        return sorted(row["id"] for row in response.json()["results"])

    assert ids("category=促销,关怀") == sorted([promo.pk, care.pk])
    assert ids("search=生日快乐") == [care.pk]
    assert ids("search=双十二&category=促销") == [promo.pk]
    categories = manager_api.get("/api/v1/templates/categories/").json()
    assert {row["category"]: row["count"] for row in categories} == {"促销": 1, "关怀": 1, "售后": 1}


def test_template_archive_through_update_and_operators_cannot_edit_templates(manager_api, operator_api, template):
    assert operator_api.patch(f"/api/v1/templates/{template.pk}/", {"is_active": False}).status_code == 403
    response = manager_api.patch(f"/api/v1/templates/{template.pk}/", {"is_active": False})
    assert response.status_code == 200 and response.json()["is_active"] is False


def test_a_used_template_cannot_be_deleted(manager, manager_api, template):
    BroadcastFactory(template=template, created_by=manager)
    response = manager_api.delete(f"/api/v1/templates/{template.pk}/")
    assert response.status_code == 409
    assert MessageTemplate.objects.filter(pk=template.pk).exists()


def test_template_preview_renders_for_a_visible_contact(operator, operator_api, template):
    contact = ContactFactory(owner=operator, name="王芳")
    response = operator_api.post(
        f"/api/v1/templates/{template.pk}/preview/", {"contact": contact.pk, "variables": {"coupon": "DD12"}}
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"subject": "", "text": "王芳，会员专享券 DD12"}


def test_template_preview_for_another_operators_contact_is_a_404(operator_api, other_operator, template):
    theirs = ContactFactory(owner=other_operator)
    response = operator_api.post(f"/api/v1/templates/{template.pk}/preview/", {"contact": theirs.pk})
    assert response.status_code == 404
    assert operator_api.post(f"/api/v1/templates/{template.pk}/preview/", {"contact": 999999}).status_code == 404


def test_template_placeholders_are_described(operator_api):
    rows = {row["name"]: row for row in operator_api.get("/api/v1/templates/placeholders/").json()}
    assert rows["name"]["source"] == "contact" and rows["coupon"]["source"] == "variable"


# --- Broadcasts: the status flow ----------------------------------------------------------------


def test_operator_creates_and_submits_a_manager_approves_then_cancels(
    operator, operator_api, manager, manager_api, template, everyone
):
    ContactFactory.create_batch(2, owner=operator)
    response = operator_api.post("/api/v1/broadcasts/", _broadcast_payload(template, everyone))
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["status"] == "draft" and created["created_by"]["id"] == operator.pk
    assert created["template_name"] == "双十二" and created["segment_name"] == "Everyone"
    pk = created["id"]

    response = operator_api.post(f"/api/v1/broadcasts/{pk}/submit/", {"scheduled_at": _later()})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "pending_approval"

    assert operator_api.post(f"/api/v1/broadcasts/{pk}/approve/").status_code == 403
    response = manager_api.post(f"/api/v1/broadcasts/{pk}/approve/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "scheduled" and body["approved_by"]["id"] == manager.pk and body["approved_at"]

    response = operator_api.post(f"/api/v1/broadcasts/{pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert operator_api.post(f"/api/v1/broadcasts/{pk}/cancel/").json()["status"] == "cancelled"


def test_a_managers_submission_is_scheduled_directly(manager_api, template, everyone):
    ContactFactory()
    pk = manager_api.post("/api/v1/broadcasts/", _broadcast_payload(template, everyone)).json()["id"]
    when = timezone.now() + TOMORROW
    response = manager_api.post(f"/api/v1/broadcasts/{pk}/submit/", {"scheduled_at": when.isoformat()})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "scheduled"
    assert Broadcast.objects.get(pk=pk).scheduled_at == when


def test_manager_rejects_back_to_draft_and_operators_cannot_reject(operator, operator_api, manager_api, template):
    broadcast = BroadcastFactory(created_by=operator, template=template, status=Broadcast.Status.PENDING_APPROVAL)
    assert operator_api.post(f"/api/v1/broadcasts/{broadcast.pk}/reject/").status_code == 403
    response = manager_api.post(f"/api/v1/broadcasts/{broadcast.pk}/reject/")
    assert response.status_code == 200 and response.json()["status"] == "draft"
    response = manager_api.post(f"/api/v1/broadcasts/{broadcast.pk}/approve/")
    assert response.status_code == 400 and error_fields(response) == {"status"}


def test_only_drafts_can_be_edited(operator, operator_api, template, everyone):
    draft = services.broadcast_create(
        created_by=operator, name="a", template=template, segment=everyone, variables={"coupon": "X"}
    )
    response = operator_api.patch(f"/api/v1/broadcasts/{draft.pk}/", {"name": "改名", "variables": {"coupon": "Y"}})
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "改名" and response.json()["variables"] == {"coupon": "Y"}

    Broadcast.objects.filter(pk=draft.pk).update(status=Broadcast.Status.SCHEDULED)
    response = operator_api.patch(f"/api/v1/broadcasts/{draft.pk}/", {"name": "again"})
    assert response.status_code == 400 and error_fields(response) == {"status"}


def test_broadcasts_are_never_deleted(manager_api, manager):
    broadcast = BroadcastFactory(created_by=manager)
    assert manager_api.delete(f"/api/v1/broadcasts/{broadcast.pk}/").status_code == 405
    assert Broadcast.objects.filter(pk=broadcast.pk).exists()


# --- Broadcasts: 400s that name the field -------------------------------------------------------


def test_unknown_placeholder_in_the_template_is_a_400(manager_api, everyone):
    # Saved directly: the template services would refuse it; the broadcast must refuse it too.
    bad = MessageTemplate.objects.create(name="bad", body="{name} {nickname}")
    response = manager_api.post("/api/v1/broadcasts/", _broadcast_payload(bad, everyone))
    assert response.status_code == 400 and error_fields(response) == {"template"}
    assert "{nickname}" in error_messages(response, "template")[0]


def test_a_missing_variable_is_a_400_naming_variables(manager_api, template, everyone):
    response = manager_api.post("/api/v1/broadcasts/", _broadcast_payload(template, everyone, variables={}))
    assert response.status_code == 400 and error_fields(response) == {"variables"}


def test_a_send_time_in_the_past_is_a_400_naming_scheduled_at(manager_api, template, everyone):
    past = _later(-dt.timedelta(hours=2))
    response = manager_api.post("/api/v1/broadcasts/", _broadcast_payload(template, everyone, scheduled_at=past))
    assert response.status_code == 400 and error_fields(response) == {"scheduled_at"}
    assert not Broadcast.objects.exists()

    ContactFactory()
    pk = manager_api.post("/api/v1/broadcasts/", _broadcast_payload(template, everyone)).json()["id"]
    response = manager_api.post(f"/api/v1/broadcasts/{pk}/submit/", {"scheduled_at": past})
    assert response.status_code == 400 and error_fields(response) == {"scheduled_at"}
    assert Broadcast.objects.get(pk=pk).status == "draft"


def test_submitting_an_empty_audience_is_a_400_naming_audience(operator, operator_api, other_operator, template):
    ContactFactory(owner=other_operator, region="上海")  # matches, but not the operator's
    segment = SegmentFactory(rules={"op": "and", "rules": [{"field": "region", "operator": "eq", "value": "上海"}]})
    pk = operator_api.post("/api/v1/broadcasts/", _broadcast_payload(template, segment)).json()["id"]
    response = operator_api.post(f"/api/v1/broadcasts/{pk}/submit/", {})
    assert response.status_code == 400 and error_fields(response) == {"audience"}


def test_no_segment_and_no_community_is_a_400_naming_audience(manager_api, template):
    response = manager_api.post("/api/v1/broadcasts/", _broadcast_payload(template, None))
    assert response.status_code == 400 and error_fields(response) == {"audience"}


def test_unknown_ids_are_400s_naming_the_field(manager_api, template, everyone):
    for field in ("segment", "template"):
        payload = {**_broadcast_payload(template, everyone), field: 999999}
        response = manager_api.post("/api/v1/broadcasts/", payload)
        assert response.status_code == 400 and error_fields(response) == {field}, response.json()
    response = manager_api.post("/api/v1/broadcasts/", _broadcast_payload(template, everyone, communities=[999999]))
    assert response.status_code == 400 and error_fields(response) == {"communities"}
    response = manager_api.post("/api/v1/broadcasts/", _broadcast_payload(template, everyone, medium="pigeon"))
    assert response.status_code == 400 and error_fields(response) == {"medium"}


def test_operator_may_only_use_communities_they_run(operator, operator_api, other_operator, template):
    mine, theirs = CommunityFactory(owner=operator), CommunityFactory(owner=other_operator)
    response = operator_api.post("/api/v1/broadcasts/", _broadcast_payload(template, None, communities=[theirs.pk]))
    assert response.status_code == 400 and error_fields(response) == {"communities"}
    response = operator_api.post("/api/v1/broadcasts/", _broadcast_payload(template, None, communities=[mine.pk]))
    assert response.status_code == 201, response.content
    assert response.json()["communities"] == [mine.pk]


def test_an_operators_community_broadcast_reaches_only_their_own_contacts(
    operator, operator_api, other_operator, template
):
    community = CommunityFactory(owner=operator)
    mine, theirs = ContactFactory(owner=operator), ContactFactory(owner=other_operator)
    MembershipFactory(community=community, contact=mine)
    MembershipFactory(community=community, contact=theirs)
    pk = operator_api.post(
        "/api/v1/broadcasts/", _broadcast_payload(template, None, communities=[community.pk])
    ).json()["id"]
    from campaigns.selectors import broadcast_audience

    assert list(broadcast_audience(Broadcast.objects.get(pk=pk))) == [mine]


# --- Broadcasts: scoping, progress and results --------------------------------------------------


def test_operator_gets_404_for_another_operators_broadcast(operator_api, other_operator, template):
    theirs = BroadcastFactory(created_by=other_operator, template=template)
    assert operator_api.get("/api/v1/broadcasts/").json()["count"] == 0
    for suffix in ("", "progress/", "results/"):
        assert operator_api.get(f"/api/v1/broadcasts/{theirs.pk}/{suffix}").status_code == 404
    assert operator_api.patch(f"/api/v1/broadcasts/{theirs.pk}/", {"name": "x"}).status_code == 404
    for verb in ("submit", "cancel"):
        assert operator_api.post(f"/api/v1/broadcasts/{theirs.pk}/{verb}/").status_code == 404
    assert Broadcast.objects.get(pk=theirs.pk).status == "draft"


def test_broadcast_progress_and_results_count_the_deliveries(manager, manager_api, template):
    broadcast = BroadcastFactory(
        created_by=manager, template=template, status=Broadcast.Status.SENDING, conversion_window_days=7
    )
    buyer, *others = ContactFactory.create_batch(6)
    _delivery(broadcast, buyer)
    _delivery(broadcast, others[0])
    _delivery(broadcast, others[1], status=Delivery.Status.PENDING)
    _delivery(broadcast, others[2], status=Delivery.Status.FAILED)
    _delivery(broadcast, others[3], status=Delivery.Status.SUPPRESSED, reason=Delivery.Reason.FREQUENCY_CAP)
    _delivery(broadcast, others[4], status=Delivery.Status.SUPPRESSED, reason=Delivery.Reason.NO_CONSENT)

    progress = manager_api.get(f"/api/v1/broadcasts/{broadcast.pk}/progress/").json()
    assert progress["status"] == "sending"
    assert (progress["targeted"], progress["pending"], progress["sent"], progress["failed"]) == (6, 1, 2, 1)
    assert progress["suppressed"] == 2 and progress["done"] == 5 and progress["percent"] == 83.3
    assert progress["suppressed_by_reason"]["frequency_cap"] == 1
    assert progress["suppressed_by_reason"]["no_consent"] == 1

    PurchaseFactory(contact=buyer, amount=Decimal("199.00"), purchased_at=timezone.now() + dt.timedelta(hours=1))
    results = manager_api.get(f"/api/v1/broadcasts/{broadcast.pk}/results/").json()
    assert results["sent"] == 2 and results["conversion_window_days"] == 7
    assert results["converted_contacts"] == 1 and results["conversion_orders"] == 1
    assert Decimal(results["conversion_revenue"]) == Decimal("199.00")
    assert results["conversion_rate"] == 0.5


def test_filters_on_broadcasts(manager_api, manager, operator):
    draft = BroadcastFactory(created_by=manager)
    sent = BroadcastFactory(created_by=operator, status=Broadcast.Status.SENT)
    assert [r["id"] for r in manager_api.get("/api/v1/broadcasts/?status=sent").json()["results"]] == [sent.pk]
    assert [r["id"] for r in manager_api.get(f"/api/v1/broadcasts/?created_by={manager.pk}").json()["results"]] == [
        draft.pk
    ]
    response = manager_api.get("/api/v1/broadcasts/?status=flying")
    assert response.status_code == 400 and error_fields(response) == {"status"}


# --- Deliveries and the outbox ------------------------------------------------------------------


def test_operator_sees_deliveries_to_their_own_contacts_only(operator, operator_api, other_operator, manager):
    broadcast = BroadcastFactory(created_by=manager, status=Broadcast.Status.SENT)
    mine = _delivery(broadcast, ContactFactory(owner=operator))
    theirs = _delivery(broadcast, ContactFactory(owner=other_operator))
    rows = operator_api.get("/api/v1/deliveries/").json()["results"]
    assert [row["id"] for row in rows] == [mine.pk]
    assert operator_api.get(f"/api/v1/deliveries/{theirs.pk}/").status_code == 404
    assert operator_api.get(f"/api/v1/deliveries/{mine.pk}/").json()["broadcast"] == broadcast.pk


def test_deliveries_filter_by_broadcast_status_reason_contact_and_medium(manager_api, manager):
    first, second = BroadcastFactory(created_by=manager), BroadcastFactory(created_by=manager, medium="sms")
    contact = ContactFactory()
    sent = _delivery(first, contact)
    capped = _delivery(first, ContactFactory(), status="suppressed", reason="frequency_cap")
    other = _delivery(second, contact, status="failed")

    def ids(query):
        response = manager_api.get(f"/api/v1/deliveries/?{query}")
        assert response.status_code == 200, response.content
        return sorted(row["id"] for row in response.json()["results"])

    assert ids(f"broadcast={first.pk}") == sorted([sent.pk, capped.pk])
    assert ids("status=suppressed&reason=frequency_cap") == [capped.pk]
    assert ids(f"contact={contact.pk}") == sorted([sent.pk, other.pk])
    assert ids("medium=sms") == [other.pk]
    assert ids("status=sent&status=failed") == sorted([sent.pk, other.pk])


def test_outbox_lists_rendered_messages_by_broadcast(manager_api, manager, operator_api):
    broadcast = BroadcastFactory(created_by=manager)
    contact = ContactFactory()
    delivery = _delivery(broadcast, contact)
    message = OutboxMessage.objects.create(delivery=delivery, contact=contact, medium="wecom", body="你好")
    _delivery(BroadcastFactory(created_by=manager), ContactFactory())
    rows = manager_api.get(f"/api/v1/outbox/?broadcast={broadcast.pk}").json()["results"]
    assert [(row["id"], row["broadcast"], row["body"]) for row in rows] == [(message.pk, broadcast.pk, "你好")]
    assert manager_api.get(f"/api/v1/outbox/{message.pk}/").json()["delivery"] == delivery.pk


# --- Frequency policy ---------------------------------------------------------------------------


def test_frequency_policy_get_and_put(manager, manager_api):
    FrequencyCap.objects.all().delete()  # the migration's default cap
    FrequencyCap.objects.create(medium="", window="rolling", window_days=7, max_messages=3)
    body = manager_api.get("/api/v1/frequency-policy/").json()
    assert body["quiet_hours_enabled"] is False
    assert body["caps"] == [{"medium": "", "window": "rolling", "window_days": 7, "max_messages": 3}]

    response = manager_api.put(
        "/api/v1/frequency-policy/",
        {
            "quiet_hours_enabled": True,
            "quiet_start": "21:30",
            "quiet_end": "08:00",
            "caps": [
                {"medium": "", "window": "month"},
                {"medium": "sms", "window": "rolling", "window_days": 1, "max_messages": 1},
            ],
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["quiet_start"] == "21:30:00" and body["quiet_hours_enabled"] is True
    assert body["updated_by"]["id"] == manager.pk
    assert sorted((c["medium"], c["window"], c["window_days"], c["max_messages"]) for c in body["caps"]) == [
        ("", "month", None, None),
        ("sms", "rolling", 1, 1),
    ]


def test_frequency_policy_preset_replaces_the_caps_and_keeps_other_fields(manager_api):
    FrequencyCap.objects.create(medium="", window="rolling", window_days=7, max_messages=3)
    response = manager_api.put("/api/v1/frequency-policy/", {"preset": "daily_1"})
    assert response.status_code == 200, response.content
    assert response.json()["quiet_hours_enabled"] is False
    assert response.json()["caps"] == [{"medium": "", "window": "rolling", "window_days": 1, "max_messages": 1}]


def test_bad_caps_are_400s_naming_the_cap_index_and_field(manager_api):
    before = list(FrequencyCap.objects.values_list("pk", flat=True))
    response = manager_api.put(
        "/api/v1/frequency-policy/",
        {
            "caps": [
                {"medium": "", "window": "month"},
                {"medium": "sms", "window": "rolling", "max_messages": 1},
                {"medium": "pigeon", "window": "rolling", "window_days": 1, "max_messages": 1},
            ]
        },
    )
    assert response.status_code == 400
    assert error_fields(response) == {"caps.1.window_days", "caps.2.medium"}
    assert list(FrequencyCap.objects.values_list("pk", flat=True)) == before


def test_operators_cannot_edit_the_frequency_policy(operator_api):
    before = list(FrequencyCap.objects.values_list("pk", flat=True))
    response = operator_api.put("/api/v1/frequency-policy/", {"preset": "daily_1"})
    assert response.status_code == 403
    assert list(FrequencyCap.objects.values_list("pk", flat=True)) == before


# --- Follow-up tasks ----------------------------------------------------------------------------


def test_operator_creates_a_task_for_their_contact_and_completes_it(operator, operator_api):
    contact = ContactFactory(owner=operator)
    response = operator_api.post("/api/v1/tasks/", {"contact": contact.pk, "title": "回访", "due_at": _later()})
    assert response.status_code == 201, response.content
    task = response.json()
    assert task["assignee"] == operator.pk and task["status"] == "open" and task["contact_name"] == contact.name
    response = operator_api.post(f"/api/v1/tasks/{task['id']}/complete/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "done" and response.json()["done_at"]
    assert [t["id"] for t in operator_api.get("/api/v1/tasks/?status=done").json()["results"]] == [task["id"]]
    assert operator_api.get("/api/v1/tasks/?status=open").json()["count"] == 0


def test_operator_cannot_see_or_complete_another_operators_task(operator_api, other_operator):
    task = FollowUpTask.objects.create(assignee=other_operator, contact=ContactFactory(owner=other_operator), title="x")
    assert operator_api.get("/api/v1/tasks/").json()["count"] == 0
    assert operator_api.get(f"/api/v1/tasks/{task.pk}/").status_code == 404
    assert operator_api.post(f"/api/v1/tasks/{task.pk}/complete/").status_code == 404
    assert FollowUpTask.objects.get(pk=task.pk).status == "open"


def test_operator_cannot_assign_tasks_to_others_or_about_hidden_contacts(operator, operator_api, other_operator):
    mine, theirs = ContactFactory(owner=operator), ContactFactory(owner=other_operator)
    response = operator_api.post("/api/v1/tasks/", {"contact": mine.pk, "title": "x", "assignee": other_operator.pk})
    assert response.status_code == 400 and error_fields(response) == {"assignee"}
    response = operator_api.post("/api/v1/tasks/", {"contact": theirs.pk, "title": "x"})
    assert response.status_code == 400 and error_fields(response) == {"contact"}
    assert not FollowUpTask.objects.exists()


def test_manager_assigns_tasks_and_filters_by_assignee(manager_api, operator, other_operator):
    contact = ContactFactory(owner=operator)
    response = manager_api.post("/api/v1/tasks/", {"contact": contact.pk, "title": "回访", "assignee": operator.pk})
    assert response.status_code == 201, response.content
    FollowUpTask.objects.create(assignee=other_operator, contact=contact, title="y")
    rows = manager_api.get(f"/api/v1/tasks/?assignee={operator.pk}").json()["results"]
    assert [row["id"] for row in rows] == [response.json()["id"]]


# --- Schema -------------------------------------------------------------------------------------


# The enum names for choice sets whose field names other models share (``medium``, ``status``); to be
# merged into SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] in scrm/settings.py, where they then take effect
# everywhere (patching them in here changes nothing once they are there).
CAMPAIGNS_ENUM_NAME_OVERRIDES = {
    "CampaignMediumEnum": "campaigns.models.Medium",
    "BroadcastStatusEnum": "campaigns.models.Broadcast.Status",
    "DeliveryStatusEnum": "campaigns.models.Delivery.Status",
    "AutomationRunStatusEnum": "campaigns.models.AutomationRun.Status",
    "FollowUpTaskStatusEnum": "campaigns.models.FollowUpTask.Status",
}


def test_openapi_schema_documents_the_campaigns_endpoints_without_warnings(manager_api):
    from django.conf import settings
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.settings import patched_settings
    from drf_spectacular.validation import validate_schema

    overrides = {**settings.SPECTACULAR_SETTINGS.get("ENUM_NAME_OVERRIDES", {}), **CAMPAIGNS_ENUM_NAME_OVERRIDES}
    GENERATOR_STATS.reset()
    with patched_settings({"ENUM_NAME_OVERRIDES": overrides}):
        schema = SchemaGenerator(patterns=None, urlconf=None).get_schema(request=None, public=True)
    validate_schema(schema)
    campaigns_paths = {
        p for p in schema["paths"] if p.split("/")[3] in {prefix for prefix, *_ in campaigns_router.registry}
    }
    assert "/api/v1/broadcasts/{id}/approve/" in campaigns_paths
    assert "/api/v1/frequency-policy/" in campaigns_paths
    assert set(schema["paths"]["/api/v1/frequency-policy/"]) == {"get", "put"}
    assert not GENERATOR_STATS, "drf-spectacular reported warnings or errors (see the captured output)"
    assert manager_api.get("/api/schema/").status_code == 200


# --- Automations and their runs -----------------------------------------------------------------


def _automation_payload(template, **fields) -> dict:
    return {
        "name": "购后感谢",
        "trigger": "purchase_made",
        "action": "send_template",
        "template": template.pk,
        "variables": {"coupon": "THX"},
        "delay_minutes": 30,
        **fields,
    }


def test_manager_creates_an_automation_and_switches_it_off_and_on(manager, manager_api, template):
    response = manager_api.post("/api/v1/automations/", _automation_payload(template))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["is_active"] is True and body["active_since"] and body["created_by"] == manager.pk
    pk = body["id"]

    response = manager_api.post(f"/api/v1/automations/{pk}/deactivate/")
    assert response.status_code == 200 and response.json()["is_active"] is False
    response = manager_api.post(f"/api/v1/automations/{pk}/activate/")
    assert response.status_code == 200 and response.json()["is_active"] is True

    response = manager_api.patch(f"/api/v1/automations/{pk}/", {"delay_minutes": 60, "is_active": False})
    assert response.status_code == 200, response.content
    assert (response.json()["delay_minutes"], response.json()["is_active"]) == (60, False)
    assert manager_api.get("/api/v1/automations/?is_active=false").json()["count"] == 1


def test_automation_with_unknown_ids_is_a_400_naming_the_field(manager_api, template):
    response = manager_api.post("/api/v1/automations/", {**_automation_payload(template), "template": 999999})
    assert response.status_code == 400 and error_fields(response) == {"template"}
    response = manager_api.post("/api/v1/automations/", _automation_payload(template, condition=999999))
    assert response.status_code == 400 and error_fields(response) == {"condition"}
    assert not Automation.objects.exists()


def test_automation_sending_a_template_without_its_variables_is_a_400(manager_api, template):
    response = manager_api.post("/api/v1/automations/", _automation_payload(template, variables={}))
    assert response.status_code == 400 and "variables" in error_fields(response)


def test_operators_read_automations_but_cannot_change_them_and_automations_are_not_deleted(
    operator_api, manager_api, manager, template
):
    automation = manager_api.post("/api/v1/automations/", _automation_payload(template)).json()
    assert operator_api.get(f"/api/v1/automations/{automation['id']}/").status_code == 200
    assert operator_api.post("/api/v1/automations/", _automation_payload(template)).status_code == 403
    assert operator_api.post(f"/api/v1/automations/{automation['id']}/deactivate/").status_code == 403
    assert manager_api.delete(f"/api/v1/automations/{automation['id']}/").status_code == 405


def test_automation_runs_filter_by_automation_and_status(manager_api, manager, template):
    from campaigns import automations

    first = automations.automation_create(
        created_by=manager, name="a", trigger="contact_created", action="create_task", task_title="回访"
    )
    second = automations.automation_create(
        created_by=manager, name="b", trigger="contact_created", action="create_task", task_title="回访"
    )
    contact = ContactFactory()
    now = timezone.now()
    done = AutomationRun.objects.create(automation=first, contact=contact, key="c", due_at=now, status="done")
    waiting = AutomationRun.objects.create(automation=first, contact=ContactFactory(), key="c", due_at=now)
    AutomationRun.objects.create(automation=second, contact=contact, key="c", due_at=now)

    def ids(query):
        response = manager_api.get(f"/api/v1/automation-runs/?{query}")
        assert response.status_code == 200, response.content
        return sorted(row["id"] for row in response.json()["results"])

    assert ids(f"automation={first.pk}") == sorted([done.pk, waiting.pk])
    assert ids(f"automation={first.pk}&status=waiting") == [waiting.pk]


# --- No N+1 -------------------------------------------------------------------------------------


def _populate(user, manager):
    """A dozen rows for every list, visible to ``user``, with every relation the serializers show."""
    from campaigns import automations

    communities = [CommunityFactory(owner=user), CommunityFactory(owner=user)]
    tag = TagFactory()
    segment = SegmentFactory(created_by=user)
    template = MessageTemplateFactory(created_by=user, body="{name} {coupon}")
    for n in range(12):
        SegmentFactory(created_by=user)
        MessageTemplateFactory(created_by=user, category=f"c{n % 3}")
        broadcast = BroadcastFactory(
            created_by=user, segment=segment, template=template, approved_by=manager, variables={"coupon": "X"}
        )
        broadcast.communities.set(communities)
        contact = ContactFactory(owner=user)
        delivery = _delivery(broadcast, contact)
        OutboxMessage.objects.create(delivery=delivery, contact=contact, medium="wecom", body="hi")
        automation = automations.automation_create(
            created_by=manager,
            name=f"sop{n}",
            trigger="contact_created",
            condition=segment,
            action="send_template",
            template=template,
            variables={"coupon": "X"},
        )
        run = AutomationRun.objects.create(automation=automation, contact=contact, key="created", due_at=timezone.now())
        Delivery.objects.create(automation_run=run, contact=contact, medium="wecom", template=template)
        automations.automation_create(
            created_by=manager, name=f"tag{n}", trigger="contact_created", action="add_tag", tag=tag
        )
        FollowUpTask.objects.create(assignee=user, contact=contact, title="回访", automation_run=run)


LIST_ENDPOINTS = ["segments", "templates", "broadcasts", "deliveries", "automations", "tasks"]
MANAGER_ONLY_ENDPOINTS = ["outbox", "automation-runs"]


@pytest.mark.parametrize(
    "role,endpoint",
    [("manager", e) for e in LIST_ENDPOINTS + MANAGER_ONLY_ENDPOINTS] + [("operator", e) for e in LIST_ENDPOINTS],
)
def test_list_endpoint_query_count_does_not_grow_with_page_size(
    endpoint, role, request, manager, django_assert_max_num_queries
):
    user = request.getfixturevalue(role)
    _populate(user, manager)
    client = APIClient()
    client.force_authenticate(user)
    with django_assert_max_num_queries(12) as small:
        response = client.get(f"/api/v1/{endpoint}/?page_size=2")
        assert response.status_code == 200 and len(response.json()["results"]) == 2
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get(f"/api/v1/{endpoint}/?page_size=50")
        assert response.status_code == 200 and len(response.json()["results"]) >= 12


@pytest.mark.parametrize("endpoint", MANAGER_ONLY_ENDPOINTS)
def test_operators_do_not_read_the_outbox_or_runs(operator_api, endpoint):
    assert operator_api.get(f"/api/v1/{endpoint}/").status_code == 403


def test_operators_read_the_sending_rules_but_cannot_change_them(operator_api):
    response = operator_api.get("/api/v1/frequency-policy/")
    assert response.status_code == 200
    assert "caps" in response.json()
    assert operator_api.put("/api/v1/frequency-policy/", {"preset": "daily_1"}, format="json").status_code == 403
