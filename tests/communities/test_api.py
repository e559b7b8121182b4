from __future__ import annotations

import pytest

from communities.models import Membership
from tests.factories import CommunityFactory, ContactFactory

pytestmark = pytest.mark.django_db


def test_operator_sees_only_communities_they_own_or_administer(operator, operator_api, other_operator):
    owned = CommunityFactory(owner=operator)
    administered = CommunityFactory(owner=other_operator)
    administered.admins.add(operator)
    hidden = CommunityFactory(owner=other_operator)
    ids = {row["id"] for row in operator_api.get("/api/v1/communities/").json()["results"]}
    assert ids == {owned.pk, administered.pk}
    assert operator_api.get(f"/api/v1/communities/{hidden.pk}/").status_code == 404


def test_operator_creates_a_community_they_run(operator, operator_api):
    response = operator_api.post("/api/v1/communities/", {"name": "宝妈交流群", "kind": "interest"})
    assert response.status_code == 201, response.content
    assert response.json()["owner"] == operator.pk and response.json()["member_count"] == 0


def test_join_is_201_then_200_and_leave_closes_it(operator, operator_api):
    community, contact = CommunityFactory(owner=operator), ContactFactory(owner=operator)
    payload = {"community": community.pk, "contact": contact.pk, "role": "koc"}
    first = operator_api.post("/api/v1/memberships/", payload)
    again = operator_api.post("/api/v1/memberships/", payload)
    assert (first.status_code, again.status_code) == (201, 200), first.content
    left = operator_api.post(f"/api/v1/memberships/{first.json()['id']}/leave/", {})
    assert left.status_code == 200 and left.json()["is_active"] is False
    assert operator_api.get(f"/api/v1/communities/{community.pk}/").json()["member_count"] == 0


def test_operator_cannot_add_someone_elses_contact_to_their_community(operator, operator_api, other_operator):
    community = CommunityFactory(owner=operator)
    response = operator_api.post(
        "/api/v1/memberships/", {"community": community.pk, "contact": ContactFactory(owner=other_operator).pk}
    )
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"contact"}
    assert not Membership.objects.exists()


def test_joining_a_full_community_is_a_400_naming_community(manager_api):
    community = CommunityFactory(capacity=1)
    manager_api.post("/api/v1/memberships/", {"community": community.pk, "contact": ContactFactory().pk})
    response = manager_api.post("/api/v1/memberships/", {"community": community.pk, "contact": ContactFactory().pk})
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"community"}


def test_membership_filters_by_community_and_active(manager_api):
    community = CommunityFactory()
    contacts = ContactFactory.create_batch(2)
    for contact in contacts:
        manager_api.post("/api/v1/memberships/", {"community": community.pk, "contact": contact.pk})
    first = Membership.objects.filter(contact=contacts[0]).get()
    manager_api.post(f"/api/v1/memberships/{first.pk}/leave/", {})
    response = manager_api.get(f"/api/v1/memberships/?community={community.pk}&active=true")
    assert [row["contact"] for row in response.json()["results"]] == [contacts[1].pk]
