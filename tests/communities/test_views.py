"""Dashboard pages for communities, through Django's test client."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from communities.models import Community
from communities.services import membership_join, membership_leave
from tests.factories import CommunityFactory, ContactFactory, UserFactory

PASSWORD = "pass-word-123"
LIST_URL = reverse("communities:list")


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def operator_client(operator):
    return logged_in(operator)


def test_community_pages_need_login(client, db):
    assert client.get(LIST_URL).status_code == 302
    assert client.get(reverse("communities:detail", args=[1])).status_code == 302


def test_operator_lists_only_the_communities_they_run(operator, other_operator, operator_client):
    owned = CommunityFactory(owner=operator, name="我的群")
    administered = CommunityFactory(owner=other_operator, name="我管理的群")
    administered.admins.add(operator)
    CommunityFactory(owner=other_operator, name="别人的群")
    response = operator_client.get(LIST_URL)
    assert response.status_code == 200
    assert {c.pk for c in response.context["communities"]} == {owned.pk, administered.pk}
    assert "别人的群" not in response.content.decode()


def test_list_shows_type_platform_owner_members_and_status(operator, operator_client):
    community = CommunityFactory(owner=operator, name="会员专享群", kind=Community.Kind.MEMBERS_ONLY, capacity=200)
    for _ in range(3):
        membership_join(community=community, contact=ContactFactory(owner=operator))
    left, _ = membership_join(community=community, contact=ContactFactory(owner=operator))
    membership_leave(membership=left)
    html = operator_client.get(LIST_URL).content.decode()
    assert "会员专享群" in html
    assert "3 / 200" in html
    assert html.count('data-testid="community-row"') == 1


def test_list_filters_by_name(operator, operator_client):
    CommunityFactory(owner=operator, name="宝妈交流群")
    CommunityFactory(owner=operator, name="训练营")
    response = operator_client.get(LIST_URL, {"name": "训练"})
    assert [c.name for c in response.context["communities"]] == ["训练营"]


def test_manager_sees_every_community(manager, operator, other_operator):
    CommunityFactory(owner=operator)
    CommunityFactory(owner=other_operator)
    assert len(logged_in(manager).get(LIST_URL).context["communities"]) == 2


def test_community_page_lists_current_members(operator, other_operator, operator_client):
    community = CommunityFactory(owner=operator, name="复购福利群")
    mine = ContactFactory(owner=operator, name="自己的客户")
    theirs = ContactFactory(owner=other_operator, name="同事的客户")
    gone = ContactFactory(owner=operator, name="已退群")
    membership_join(community=community, contact=mine)
    membership_join(community=community, contact=theirs)
    membership, _ = membership_join(community=community, contact=gone)
    membership_leave(membership=membership, left_at=timezone.now())

    html = operator_client.get(reverse("communities:detail", args=[community.pk])).content.decode()
    assert html.count('data-testid="member-row"') == 2
    assert "自己的客户" in html and "同事的客户" in html
    assert "已退群" not in html
    # Only contacts the operator may open are linked.
    assert reverse("contacts:detail", args=[mine.pk]) in html
    assert reverse("contacts:detail", args=[theirs.pk]) not in html


def test_community_page_of_someone_elses_community_is_not_found(other_operator, operator_client):
    theirs = CommunityFactory(owner=other_operator)
    assert operator_client.get(reverse("communities:detail", args=[theirs.pk])).status_code == 404


def test_community_pages_query_count_does_not_grow(operator, operator_client, django_assert_max_num_queries):
    community = CommunityFactory(owner=operator)
    community.admins.add(UserFactory())

    def add(n):
        for _ in range(n):
            membership_join(community=community, contact=ContactFactory(owner=UserFactory()))
            CommunityFactory(owner=operator).admins.add(UserFactory())

    add(2)
    detail = reverse("communities:detail", args=[community.pk])
    with django_assert_max_num_queries(12) as few_detail:
        operator_client.get(detail)
    with django_assert_max_num_queries(12) as few_list:
        operator_client.get(LIST_URL)
    add(30)
    with django_assert_max_num_queries(len(few_detail.captured_queries)):
        response = operator_client.get(detail)
    assert response.content.decode().count('data-testid="member-row"') == 32
    with django_assert_max_num_queries(len(few_list.captured_queries)):
        response = operator_client.get(LIST_URL)
    assert len(response.context["communities"]) == 33
