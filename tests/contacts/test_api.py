from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from contacts.models import Contact, Purchase
from scrm.authentication import api_token_create
from tests.factories import (
    ChannelFactory,
    ChannelSpendFactory,
    CommunityFactory,
    ContactFactory,
    MembershipFactory,
    ProductFactory,
    PurchaseFactory,
    TagFactory,
    TouchpointFactory,
)

pytestmark = pytest.mark.django_db


def error_fields(response) -> set:
    body = response.json()
    assert set(body) == {"type", "detail", "errors"}, body
    return {error["field"] for error in body["errors"]}


# --- Permissions and scoping ----------------------------------------------------------------


def test_anonymous_requests_are_refused():
    response = APIClient().get("/api/v1/contacts/")
    assert response.status_code in (401, 403)
    assert response.json()["type"] in ("not_authenticated", "authentication_failed")


def test_integrator_authenticates_with_a_token(integrator):
    _token, key = api_token_create(user=integrator, name="test", scopes=["read"])
    ContactFactory()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = client.get("/api/v1/contacts/")
    assert response.status_code == 200 and response.json()["count"] == 1


def test_operator_gets_404_for_another_operators_contact(operator_api, other_operator):
    theirs = ContactFactory(owner=other_operator)
    assert operator_api.get(f"/api/v1/contacts/{theirs.pk}/").status_code == 404
    assert operator_api.patch(f"/api/v1/contacts/{theirs.pk}/", {"name": "x"}).status_code == 404


def test_operator_cannot_see_purchases_or_touchpoints_of_others(operator, operator_api, other_operator):
    mine, theirs = ContactFactory(owner=operator), ContactFactory(owner=other_operator)
    PurchaseFactory(contact=mine)
    hidden = PurchaseFactory(contact=theirs)
    TouchpointFactory(contact=mine)
    hidden_tp = TouchpointFactory(contact=theirs)
    assert operator_api.get("/api/v1/purchases/").json()["count"] == 1
    assert operator_api.get(f"/api/v1/purchases/{hidden.pk}/").status_code == 404
    assert operator_api.get("/api/v1/touchpoints/").json()["count"] == 1
    assert operator_api.get(f"/api/v1/touchpoints/{hidden_tp.pk}/").status_code == 404


def test_manager_sees_every_contact(manager_api, operator, other_operator):
    ContactFactory(owner=operator)
    ContactFactory(owner=other_operator)
    assert manager_api.get("/api/v1/contacts/").json()["count"] == 2


def test_merged_contacts_are_not_listed(manager_api):
    from contacts.services import contact_merge

    a, b = ContactFactory(), ContactFactory()
    contact_merge(primary=a, duplicate=b)
    assert [row["id"] for row in manager_api.get("/api/v1/contacts/").json()["results"]] == [a.pk]


def test_contacts_are_never_deleted_through_the_api(manager_api):
    contact = ContactFactory()
    assert manager_api.delete(f"/api/v1/contacts/{contact.pk}/").status_code == 405
    assert Contact.objects.filter(pk=contact.pk).exists()


def test_operator_may_not_delete_contacts_or_create_channels(operator, operator_api):
    contact = ContactFactory(owner=operator)
    assert operator_api.delete(f"/api/v1/contacts/{contact.pk}/").status_code == 403
    assert operator_api.post("/api/v1/channels/", {"name": "抖音"}).status_code == 403


def test_operator_cannot_erase_or_hand_over(operator, operator_api, other_operator):
    contact = ContactFactory(owner=operator)
    assert operator_api.post(f"/api/v1/contacts/{contact.pk}/erase/").status_code == 403
    response = operator_api.post("/api/v1/contacts/handover/", {"from_user": other_operator.pk, "to_user": operator.pk})
    assert response.status_code == 403


def test_operator_cannot_assign_a_new_contact_to_someone_else(operator_api, other_operator):
    response = operator_api.post("/api/v1/contacts/", {"name": "A", "phone": "13800138000", "owner": other_operator.pk})
    assert response.status_code == 400
    assert error_fields(response) == {"owner"}
    assert not Contact.objects.exists()


def test_operator_cannot_refer_to_a_contact_they_cannot_see(operator_api, other_operator):
    theirs = ContactFactory(owner=other_operator)
    response = operator_api.post("/api/v1/contacts/", {"name": "A", "phone": "13800138000", "referred_by": theirs.pk})
    assert response.status_code == 400 and error_fields(response) == {"referred_by"}


# --- Contacts -------------------------------------------------------------------------------


def test_create_contact_returns_normalised_phone_owner_and_tags(operator, operator_api):
    tag = TagFactory(name="宝妈")
    response = operator_api.post(
        "/api/v1/contacts/",
        {
            "name": "王芳",
            "phone": "138-0013-8000",
            "tag_ids": [tag.pk],
            "marketing_consent": True,
            "consent_source": "H5",
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["phone"] == "+8613800138000"
    assert body["owner"] == operator.pk
    assert [t["name"] for t in body["tags"]] == ["宝妈"]
    assert body["marketing_consent"] is True and body["consent_at"]
    assert body["stage"] == "lead"


def test_invalid_phone_is_a_400_naming_the_field(manager_api):
    response = manager_api.post("/api/v1/contacts/", {"name": "A", "phone": "12345"})
    assert response.status_code == 400
    assert error_fields(response) == {"phone"}
    assert response.json()["type"] == "validation_error"


def test_duplicate_phone_is_a_400_naming_the_field(manager_api):
    ContactFactory(phone="+8613800138000")
    response = manager_api.post("/api/v1/contacts/", {"name": "A", "phone": "13800138000"})
    assert response.status_code == 400 and error_fields(response) == {"phone"}


def test_duplicate_external_id_is_a_400_naming_the_field(manager_api):
    ContactFactory(external_id="E-1")
    response = manager_api.post("/api/v1/contacts/", {"name": "A", "external_id": "E-1"})
    assert response.status_code == 400 and error_fields(response) == {"external_id"}


def test_update_contact_replaces_its_tags(manager_api):
    contact = ContactFactory()
    old, new = TagFactory(), TagFactory()
    manager_api.post("/api/v1/contacts/bulk-tag/", {"contact_ids": [contact.pk], "tag_ids": [old.pk]})
    response = manager_api.patch(f"/api/v1/contacts/{contact.pk}/", {"tag_ids": [new.pk], "region": "浙江"})
    assert response.status_code == 200, response.content
    assert [t["id"] for t in response.json()["tags"]] == [new.pk]
    assert response.json()["region"] == "浙江"


def test_stage_and_facts_are_read_only(manager_api):
    contact = ContactFactory()
    manager_api.patch(f"/api/v1/contacts/{contact.pk}/", {"stage": "advocate", "total_spent": "999"})
    contact.refresh_from_db()
    assert contact.stage == "lead" and contact.total_spent == 0


def test_filters_by_stage_channel_tag_owner_community_dates_and_search(manager_api, operator):
    channel = ChannelFactory(name="抖音")
    tag = TagFactory()
    target = ContactFactory(
        name="陈静",
        channel=channel,
        owner=operator,
        stage="customer",
        acquired_at=dt.datetime(2026, 5, 3, tzinfo=dt.UTC),
    )
    ContactFactory(name="刘洋", stage="customer")
    ContactFactory(name="杨帆", channel=channel, stage="lead")
    manager_api.post("/api/v1/contacts/bulk-tag/", {"contact_ids": [target.pk], "tag_ids": [tag.pk]})
    community = CommunityFactory()
    MembershipFactory(community=community, contact=target)

    def ids(query):
        response = manager_api.get(f"/api/v1/contacts/?{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids(f"stage=customer&channel={channel.pk}") == [target.pk]
    assert ids(f"tag={tag.pk}") == [target.pk]
    assert ids(f"owner={operator.pk}") == [target.pk]
    assert ids(f"community={community.pk}") == [target.pk]
    assert ids("acquired_from=2026-05-01&acquired_to=2026-05-31") == [target.pk]
    assert ids("search=陈") == [target.pk]
    assert ids(f"search={target.phone[-6:]}") == [target.pk]


def test_unknown_filter_value_is_a_400_naming_the_parameter(manager_api):
    response = manager_api.get("/api/v1/contacts/?stage=vip")
    assert response.status_code == 400 and error_fields(response) == {"stage"}


def test_bulk_tag_rejects_ids_the_operator_cannot_see_and_writes_nothing(operator, operator_api, other_operator):
    mine, theirs = ContactFactory(owner=operator), ContactFactory(owner=other_operator)
    tag = TagFactory()
    response = operator_api.post(
        "/api/v1/contacts/bulk-tag/", {"contact_ids": [mine.pk, theirs.pk], "tag_ids": [tag.pk]}
    )
    assert response.status_code == 400 and error_fields(response) == {"contact_ids"}
    assert not tag.contact_links.exists()


def test_bulk_tag_and_untag_report_how_many_changed(manager_api):
    contacts = ContactFactory.create_batch(3)
    tag = TagFactory()
    payload = {"contact_ids": [c.pk for c in contacts], "tag_ids": [tag.pk]}
    assert manager_api.post("/api/v1/contacts/bulk-tag/", payload).json() == {"changed": 3}
    assert manager_api.post("/api/v1/contacts/bulk-tag/", payload).json() == {"changed": 0}
    assert manager_api.post("/api/v1/contacts/bulk-untag/", payload).json() == {"changed": 3}


def test_merge_action_merges_the_duplicate(manager_api):
    primary, duplicate = ContactFactory(), ContactFactory(external_id="DUP")
    response = manager_api.post(f"/api/v1/contacts/{primary.pk}/merge/", {"duplicate": duplicate.pk})
    assert response.status_code == 200, response.content
    assert response.json()["external_id"] == "DUP"


def test_handover_action_moves_contacts(manager_api, operator, other_operator):
    ContactFactory.create_batch(2, owner=operator)
    response = manager_api.post("/api/v1/contacts/handover/", {"from_user": operator.pk, "to_user": other_operator.pk})
    assert response.status_code == 200 and response.json() == {"contacts": 2, "communities": 0}


def test_reassign_action_moves_the_listed_contacts(manager_api, operator):
    contacts = ContactFactory.create_batch(2)
    response = manager_api.post(
        "/api/v1/contacts/reassign/", {"contact_ids": [c.pk for c in contacts], "owner": operator.pk}
    )
    assert response.json() == {"changed": 2}
    assert Contact.objects.filter(owner=operator).count() == 2


def test_consent_and_opt_out_actions(operator, operator_api):
    contact = ContactFactory(owner=operator, marketing_consent=False)
    body = operator_api.post(f"/api/v1/contacts/{contact.pk}/consent/", {"source": "门店扫码"}).json()
    assert body["marketing_consent"] is True and body["consent_source"] == "门店扫码"
    body = operator_api.post(f"/api/v1/contacts/{contact.pk}/opt-out/").json()
    assert body["marketing_consent"] is False and body["opted_out_at"]


def test_consent_without_source_is_a_400_naming_source(operator, operator_api):
    contact = ContactFactory(owner=operator)
    response = operator_api.post(f"/api/v1/contacts/{contact.pk}/consent/", {})
    assert response.status_code == 400 and error_fields(response) == {"source"}


def test_erase_action_clears_personal_data(manager_api):
    contact = ContactFactory(name="赵敏")
    body = manager_api.post(f"/api/v1/contacts/{contact.pk}/erase/").json()
    assert body["name"] == "" and body["phone"] is None and body["erased_at"]


# --- Purchases ------------------------------------------------------------------------------


def order_payload(contact, **overrides):
    payload = {
        "contact": contact.pk,
        "external_order_id": "TB20260301001",
        "purchased_at": "2026-03-01T10:00:00+08:00",
        "amount": "199.00",
        "source": "tmall",
    }
    payload.update(overrides)
    return payload


def test_purchase_ingestion_is_idempotent_201_then_200(integrator_api):
    contact = ContactFactory()
    product = ProductFactory(sku="MASK-01")
    payload = order_payload(contact, items=[{"product": "MASK-01", "quantity": 2, "unit_price": "99.50"}])
    first = integrator_api.post("/api/v1/purchases/", payload, format="json")
    second = integrator_api.post("/api/v1/purchases/", payload, format="json")
    assert (first.status_code, second.status_code) == (201, 200), first.content
    assert first.json()["id"] == second.json()["id"]
    assert Purchase.objects.count() == 1
    assert first.json()["items"] == [{"product": product.sku, "quantity": 2, "unit_price": "99.50"}]
    contact.refresh_from_db()
    assert contact.purchase_count == 1 and contact.total_spent == Decimal("199.00")


def test_purchase_by_contact_external_id(integrator_api):
    contact = ContactFactory(external_id="MP-77")
    payload = order_payload(contact, contact_external_id="MP-77")
    payload.pop("contact")
    response = integrator_api.post("/api/v1/purchases/", payload, format="json")
    assert response.status_code == 201 and response.json()["contact"] == contact.pk


def test_purchase_with_unknown_contact_external_id_is_a_400(integrator_api):
    payload = order_payload(ContactFactory())
    payload.pop("contact")
    payload["contact_external_id"] = "nobody"
    response = integrator_api.post("/api/v1/purchases/", payload, format="json")
    assert response.status_code == 400 and error_fields(response) == {"contact_external_id"}


def test_purchase_resent_with_a_different_amount_is_a_409_naming_amount(integrator_api):
    contact = ContactFactory()
    integrator_api.post("/api/v1/purchases/", order_payload(contact), format="json")
    response = integrator_api.post("/api/v1/purchases/", order_payload(contact, amount="1.00"), format="json")
    assert response.status_code == 409
    assert response.json()["type"] == "conflict" and error_fields(response) == {"amount"}


def test_purchase_with_unknown_sku_is_a_400_naming_the_item_field(integrator_api):
    response = integrator_api.post(
        "/api/v1/purchases/", order_payload(ContactFactory(), items=[{"product": "NOPE"}]), format="json"
    )
    assert response.status_code == 400
    assert error_fields(response) == {"items.0.product"}
    assert not Purchase.objects.exists()


def test_purchase_missing_fields_names_each_field(integrator_api):
    response = integrator_api.post("/api/v1/purchases/", {"contact": ContactFactory().pk}, format="json")
    assert response.status_code == 400
    assert error_fields(response) >= {"external_order_id", "purchased_at", "amount"}


def test_refund_action_updates_the_facts(integrator_api):
    contact = ContactFactory()
    created = integrator_api.post("/api/v1/purchases/", order_payload(contact), format="json").json()
    response = integrator_api.post(f"/api/v1/purchases/{created['id']}/refund/", {})
    assert response.status_code == 200 and response.json()["status"] == "refunded"
    contact.refresh_from_db()
    assert contact.purchase_count == 0


def test_operator_cannot_record_a_purchase_for_someone_elses_contact(operator_api, other_operator):
    response = operator_api.post(
        "/api/v1/purchases/", order_payload(ContactFactory(owner=other_operator)), format="json"
    )
    assert response.status_code == 400 and error_fields(response) == {"contact"}


# --- Touchpoints and reference data ---------------------------------------------------------


def test_touchpoint_create_records_the_staff_member_and_engages_the_contact(operator, operator_api):
    contact = ContactFactory(owner=operator)
    response = operator_api.post(
        "/api/v1/touchpoints/",
        {"contact": contact.pk, "medium": "wecom", "kind": "message_in", "metadata": {"text": "在吗"}},
    )
    assert response.status_code == 201, response.content
    assert response.json()["staff"] == operator.pk
    contact.refresh_from_db()
    assert contact.stage == "engaged"


def test_touchpoint_with_unknown_kind_is_a_400_naming_kind(operator, operator_api):
    response = operator_api.post(
        "/api/v1/touchpoints/", {"contact": ContactFactory(owner=operator).pk, "medium": "wecom", "kind": "poke"}
    )
    assert response.status_code == 400 and error_fields(response) == {"kind"}


def test_channel_spend_with_end_before_start_is_a_400_naming_end_date(manager_api):
    channel = ChannelFactory()
    response = manager_api.post(
        "/api/v1/channel-spend/",
        {"channel": channel.pk, "start_date": "2026-02-01", "end_date": "2026-01-01", "amount": "10"},
    )
    assert response.status_code == 400 and error_fields(response) == {"end_date"}


def test_product_with_negative_price_is_a_400_naming_price(manager_api):
    response = manager_api.post("/api/v1/products/", {"sku": "X", "name": "X", "price": "-1"})
    assert response.status_code == 400 and error_fields(response) == {"price"}


def test_openapi_schema_and_docs_are_served(manager_api):
    schema = manager_api.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/contacts/bulk-tag/" in schema.content
    docs = manager_api.get("/api/docs/")
    assert docs.status_code == 200 and b"cdn" not in docs.content.lower()


# --- No N+1: query count does not grow with page size -----------------------------------------


def _populate(owner):
    channel = ChannelFactory()
    tags = TagFactory.create_batch(3)
    community = CommunityFactory(owner=owner)
    product = ProductFactory()
    for _ in range(12):
        contact = ContactFactory(owner=owner, channel=channel)
        for tag in tags:
            contact.tag_links.create(tag=tag)
        purchase = PurchaseFactory(contact=contact)
        purchase.items.create(product=product, quantity=1, unit_price=product.price)
        TouchpointFactory(contact=contact, community=community)
        MembershipFactory(community=community, contact=contact)
    ChannelSpendFactory.create_batch(3, channel=channel)


LIST_ENDPOINTS = [
    "contacts",
    "tags",
    "tag-groups",
    "channels",
    "channel-spend",
    "products",
    "purchases",
    "touchpoints",
    "communities",
    "memberships",
    "imports",
]


def test_operator_cannot_read_channel_spend(operator_api):
    assert operator_api.get("/api/v1/channel-spend/").status_code == 403


@pytest.mark.parametrize(
    "role,endpoint",
    [("manager", e) for e in LIST_ENDPOINTS] + [("operator", e) for e in LIST_ENDPOINTS if e != "channel-spend"],
)
def test_list_endpoint_query_count_does_not_grow_with_page_size(endpoint, role, request, django_assert_max_num_queries):
    user = request.getfixturevalue(role)
    _populate(user)
    client = APIClient()
    client.force_authenticate(user)
    with django_assert_max_num_queries(12) as small:
        assert client.get(f"/api/v1/{endpoint}/?page_size=2").status_code == 200
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get(f"/api/v1/{endpoint}/?page_size=50")
        assert response.status_code == 200
