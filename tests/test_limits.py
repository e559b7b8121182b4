"""No input is a 5xx: NUL and lone surrogates, deep or huge JSON, out-of-range integers and dates, deleting
reference data still in use (``scrm.limits`` and the API's last line). NUL bugs show only on PostgreSQL."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import ChannelFactory, CommunityFactory, ContactFactory, ProductFactory, PurchaseFactory

NUL_RULES = {"op": "and", "rules": [{"field": "region", "operator": "in", "value": ["\u0000"]}]}


@pytest.fixture
def contact(manager):
    return ContactFactory(owner=manager)


def _raw(api, method, url, body):
    return api.generic(method, url, body, content_type="application/json")


@pytest.mark.parametrize(
    "body",
    [
        {"attributes": {"a": "x\u0000"}},
        {"attributes": {"k\u0000": 1}},
        {"attributes": {"a": "x" * 20_000}},
        {"name": "x\u0000"},
        {"birthday": "2999-01-01"},
        {"birthday": "0001-01-01"},
    ],
)
def test_bad_contact_values_are_a_400_naming_the_field(manager_api, contact, body):
    response = manager_api.patch(f"/api/v1/contacts/{contact.pk}/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == next(iter(body))


@pytest.mark.parametrize("raw", ['{"attributes": {"a": "x\\ud800"}}', '{"name": "x\\udfff"}'])
def test_lone_surrogates_are_a_400(manager_api, contact, raw):
    assert _raw(manager_api, "PATCH", f"/api/v1/contacts/{contact.pk}/", raw).status_code == 400


def test_json_nested_thousands_deep_is_a_400(manager_api, contact):
    raw = '{"attributes":' + '{"a":' * 5000 + "1" + "}" * 5000 + "}"
    assert _raw(manager_api, "PATCH", f"/api/v1/contacts/{contact.pk}/", raw).status_code == 400
    raw = '{"attributes":' + '{"a":' * 20 + "1" + "}" * 20 + "}"
    assert _raw(manager_api, "PATCH", f"/api/v1/contacts/{contact.pk}/", raw).status_code == 400


@pytest.mark.parametrize("url", ["/api/v1/segments/", "/api/v1/segments/preview/"])
def test_nul_in_segment_rules_is_a_400(manager_api, url):
    assert manager_api.post(url, {"name": "n", "rules": NUL_RULES}, format="json").status_code == 400


def test_nul_in_touchpoint_metadata_is_a_400(manager_api, contact):
    body = {"contact": contact.pk, "medium": "wecom", "kind": "message_in", "metadata": {"a": "\u0000"}}
    response = manager_api.post("/api/v1/touchpoints/", body, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("purchased_at", "quantity", "field"),
    [
        ("2025-01-01T00:00:00Z", 2**40, "items.0.quantity"),
        ("0001-01-01T00:00:00Z", 1, "purchased_at"),
        ("2100-01-01T00:00:00Z", 1, "purchased_at"),
    ],
)
def test_out_of_range_purchases_are_a_400(manager_api, contact, purchased_at, quantity, field):
    ProductFactory(sku="S1")
    body = {
        "contact": contact.pk,
        "external_order_id": "o1",
        "amount": "1.00",
        "purchased_at": purchased_at,
        "items": [{"product": "S1", "quantity": quantity}],
    }
    response = manager_api.post("/api/v1/purchases/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("query", ["acquired_to=9999-12-31", "acquired_from=0001-01-01"])
def test_dates_past_the_range_in_filters_are_refused_not_overflowed(manager_api, client, manager, query):
    assert manager_api.get(f"/api/v1/contacts/?{query}").status_code == 400
    client.force_login(manager)
    assert client.get(reverse("contacts:list") + "?" + query).status_code == 200


def test_deleting_a_channel_or_product_in_use_is_a_409(manager_api, contact):
    channel = ChannelFactory()
    ContactFactory(channel=channel)
    response = manager_api.delete(f"/api/v1/channels/{channel.pk}/")
    assert response.status_code == 409 and response.json()["type"] == "conflict"
    product = ProductFactory()
    purchase = PurchaseFactory(contact=contact)
    purchase.items.create(product=product, quantity=1, unit_price=1)
    assert manager_api.delete(f"/api/v1/products/{product.pk}/").status_code == 409


def test_an_operator_cannot_unset_or_give_away_a_contacts_owner(operator_api, operator, other_operator):
    contact = ContactFactory(owner=operator)
    url = f"/api/v1/contacts/{contact.pk}/"
    assert operator_api.patch(url, {"owner": None}, format="json").status_code == 400
    assert operator_api.patch(url, {"owner": other_operator.pk}, format="json").status_code == 400
    contact.refresh_from_db()
    assert contact.owner == operator


def test_a_manager_may_reassign_or_unassign_a_contact(manager_api, operator):
    contact = ContactFactory(owner=operator)
    assert manager_api.patch(f"/api/v1/contacts/{contact.pk}/", {"owner": None}, format="json").status_code == 200


def test_an_operator_cannot_unset_a_communitys_owner(operator_api, operator, other_operator):
    community = CommunityFactory(owner=operator)
    url = f"/api/v1/communities/{community.pk}/"
    assert operator_api.patch(url, {"owner": None}, format="json").status_code == 400
    assert operator_api.patch(url, {"owner": other_operator.pk}, format="json").status_code == 400
    community.refresh_from_db()
    assert community.owner == operator


def test_a_touchpoint_cannot_name_another_operators_community(operator_api, operator, other_operator):
    contact = ContactFactory(owner=operator)
    theirs = CommunityFactory(owner=other_operator)
    body = {"contact": contact.pk, "medium": "wecom", "kind": "message_in", "community": theirs.pk}
    response = operator_api.post("/api/v1/touchpoints/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "field": "community",
        "code": "does_not_exist",
        "message": response.json()["errors"][0]["message"],
    }
