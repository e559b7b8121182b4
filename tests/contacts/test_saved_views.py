"""Saved views of the contact list (我的视图): saved from the list, checked by the list's own filters, one
click away above it, renamed and deleted by their owner only; shared with the team by a manager; the same in
the API (``/api/v1/saved-views/``, the caller's own)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from communities.services import membership_join
from contacts.models import SavedView
from contacts.saved_views import saved_view_create
from tests.factories import CommunityFactory, ContactFactory, TagFactory

PASSWORD = "pass-word-123"
LIST_URL = reverse("contacts:list")
VIEWS_URL = reverse("contacts:saved_views")
API = "/api/v1/saved-views/"


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


@pytest.fixture
def operator_client(operator):
    return logged_in(operator)


# --- Saving from the list -------------------------------------------------------------------------


def test_saving_keeps_the_filters_only_and_opens_the_list_with_the_view(operator, operator_client):
    tag = TagFactory()
    query = f"page=3&search=&stage=lead&tag={tag.pk}&drill-metric=funnel&unknown=1&stage=engaged"
    response = operator_client.post(VIEWS_URL, {"name": " 新线索 ", "query": query}, follow=True)
    view = SavedView.objects.get()
    assert (view.owner, view.name, view.shared) == (operator, "新线索", False)
    assert view.query == f"tag={tag.pk}&stage=lead&stage=engaged"
    assert response.redirect_chain[-1] == (f"{LIST_URL}?{view.query}", 302)
    assert response.context["active_view"] == view
    html = response.content.decode()
    assert 'data-testid="saved-view-link"' in html and 'aria-current="page"' in html
    assert 'data-testid="active-view">新线索<' in html
    assert messages_of(response)[0][0] == "success"


def test_the_list_offers_to_save_its_filters_and_lists_the_views_as_links(operator, operator_client):
    saved_view_create(owner=operator, name="高意向", query="intent_level=high")
    html = operator_client.get(LIST_URL, {"stage": "lead", "page": 2}).content.decode()
    assert 'data-testid="save-view-form"' in html
    assert 'name="query" value="stage=lead"' in html
    assert f'href="{LIST_URL}?intent_level=high"' in html and "高意向" in html
    # Without filters there is nothing to save; on a saved view's own filters the view is named instead.
    assert 'data-testid="save-view-form"' not in operator_client.get(LIST_URL).content.decode()
    on_view = operator_client.get(LIST_URL, {"intent_level": "high"}).content.decode()
    assert 'data-testid="save-view-form"' not in on_view and 'data-testid="active-view"' in on_view


@pytest.mark.parametrize(
    "query", ["", "page=2&search=", "acquired_from=31-31-2020", "stage=astronaut", "id=abc", "predicted_clv_min=x"]
)
def test_a_query_the_list_would_refuse_is_not_saved(query, operator, operator_client):
    response = operator_client.post(VIEWS_URL, {"name": "坏视图", "query": query}, follow=True)
    assert not SavedView.objects.exists()
    assert [level for level, _text in messages_of(response)] == ["error"]


def test_another_operators_community_cannot_be_saved_in_a_view(operator, other_operator, operator_client):
    theirs = CommunityFactory(owner=other_operator)
    mine = CommunityFactory(owner=operator)
    response = operator_client.post(VIEWS_URL, {"name": "群", "query": f"community={theirs.pk}"}, follow=True)
    assert not SavedView.objects.exists() and messages_of(response)[0][0] == "error"
    operator_client.post(VIEWS_URL, {"name": "群", "query": f"community={mine.pk}"})
    assert SavedView.objects.get().query == f"community={mine.pk}"


def test_names_are_unique_per_owner(operator, other_operator, operator_client):
    saved_view_create(owner=operator, name="本周新客", query="stage=lead")
    response = operator_client.post(VIEWS_URL, {"name": "本周新客", "query": "stage=engaged"}, follow=True)
    assert SavedView.objects.count() == 1
    assert messages_of(response)[0][0] == "error" and "本周新客" in messages_of(response)[0][1]
    saved_view_create(owner=other_operator, name="本周新客", query="stage=lead")  # another owner: fine
    assert SavedView.objects.count() == 2


@pytest.mark.parametrize("name", ["", "   ", "x" * 61, "坏\x00名"])
def test_a_bad_name_is_refused(name, operator_client):
    response = operator_client.post(VIEWS_URL, {"name": name, "query": "stage=lead"}, follow=True)
    assert not SavedView.objects.exists() and messages_of(response)[0][0] == "error"


def test_a_view_applies_the_filters_to_the_users_own_contacts(operator, other_operator, operator_client):
    community = CommunityFactory(owner=operator)
    member = ContactFactory(owner=operator)
    ContactFactory(owner=operator)
    membership_join(community=community, contact=member)
    view = saved_view_create(owner=operator, name="群成员", query=f"community={community.pk}")
    response = operator_client.get(f"{LIST_URL}?{view.query}")
    assert [c.pk for c in response.context["contacts"]] == [member.pk]


# --- Own only: rename, delete -----------------------------------------------------------------------


def test_views_are_their_owners_own(operator, other_operator, operator_client):
    mine = saved_view_create(owner=operator, name="我的", query="stage=lead")
    theirs = saved_view_create(owner=other_operator, name="别人的视图", query="stage=lead")
    html = operator_client.get(LIST_URL).content.decode()
    assert "我的" in html and "别人的视图" not in html
    assert "别人的视图" not in operator_client.get(VIEWS_URL).content.decode()
    change = reverse("contacts:saved_view_change", args=[theirs.pk])
    delete = reverse("contacts:saved_view_delete", args=[theirs.pk])
    assert operator_client.post(change, {f"v{theirs.pk}-name": "抢来的"}).status_code == 404
    assert operator_client.post(delete).status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "别人的视图"
    assert SavedView.objects.filter(pk=mine.pk).exists()


def test_the_owner_renames_and_deletes_a_view(operator, operator_client):
    view = saved_view_create(owner=operator, name="旧名", query="stage=lead")
    saved_view_create(owner=operator, name="另一个", query="stage=engaged")
    page = operator_client.get(VIEWS_URL).content.decode()
    assert 'data-testid="my-view-row"' in page and "data-confirm=" in page
    change = reverse("contacts:saved_view_change", args=[view.pk])
    operator_client.post(change, {f"v{view.pk}-name": "新名"})
    view.refresh_from_db()
    assert view.name == "新名" and view.query == "stage=lead"
    response = operator_client.post(change, {f"v{view.pk}-name": "另一个"}, follow=True)  # taken
    view.refresh_from_db()
    assert view.name == "新名" and messages_of(response)[-1][0] == "error"
    operator_client.post(reverse("contacts:saved_view_delete", args=[view.pk]))
    assert not SavedView.objects.filter(pk=view.pk).exists()


def test_saved_view_pages_keep_csrf_and_need_post(operator):
    view = saved_view_create(owner=operator, name="视图", query="stage=lead")
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post(VIEWS_URL, {"name": "x", "query": "stage=lead"}).status_code == 403
    assert client.post(reverse("contacts:saved_view_delete", args=[view.pk])).status_code == 403
    assert client.get(reverse("contacts:saved_view_delete", args=[view.pk])).status_code == 405
    assert SavedView.objects.count() == 1


# --- Sharing with the team --------------------------------------------------------------------------


def test_an_operator_cannot_share_a_view(operator, operator_client):
    response = operator_client.post(VIEWS_URL, {"name": "共享", "query": "stage=lead", "shared": "on"}, follow=True)
    assert not SavedView.objects.exists() and messages_of(response)[0][0] == "error"
    assert 'name="shared"' not in operator_client.get(LIST_URL, {"stage": "lead"}).content.decode()


def test_a_manager_shares_a_view_the_team_applies_to_their_own_contacts(manager, operator, other_operator):
    mine = ContactFactory(owner=operator, region="上海")
    ContactFactory(owner=other_operator, region="上海")
    manager_client = logged_in(manager)
    assert 'name="shared"' in manager_client.get(LIST_URL, {"region": "上海"}).content.decode()
    manager_client.post(VIEWS_URL, {"name": "上海客户", "query": "region=上海", "shared": "on"})
    view = SavedView.objects.get()
    assert view.shared and view.owner == manager

    operator_client = logged_in(operator)
    html = operator_client.get(LIST_URL).content.decode()
    assert "上海客户" in html
    response = operator_client.get(f"{LIST_URL}?{view.query}")
    assert [c.pk for c in response.context["contacts"]] == [mine.pk]
    assert response.context["active_view"] == view
    # Applied, not owned: the operator cannot rename or delete it.
    assert operator_client.post(reverse("contacts:saved_view_delete", args=[view.pk])).status_code == 404
    assert "上海客户" in operator_client.get(VIEWS_URL).content.decode()  # under "shared with the team"

    manager_client.post(reverse("contacts:saved_view_change", args=[view.pk]), {f"v{view.pk}-name": "上海客户"})
    view.refresh_from_db()
    assert not view.shared  # the box was not ticked: unshared
    assert "上海客户" not in logged_in(operator).get(LIST_URL).content.decode()


def test_the_views_bar_costs_one_query_whatever_the_number_of_views(
    operator, operator_client, django_assert_num_queries
):
    saved_view_create(owner=operator, name="一", query="stage=lead")
    operator_client.get(LIST_URL)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        operator_client.get(LIST_URL)
    for i in range(10):
        saved_view_create(owner=operator, name=f"视图{i}", query=f"search=客户{i}")
    with django_assert_num_queries(len(one.captured_queries)):
        operator_client.get(LIST_URL)


# --- The API ------------------------------------------------------------------------------------------


def test_the_api_lists_and_changes_only_the_callers_own_views(operator, other_operator, operator_api):
    mine = saved_view_create(owner=operator, name="我的", query="stage=lead")
    theirs = saved_view_create(owner=other_operator, name="别人的", query="stage=lead")
    shared = saved_view_create(owner=other_operator, name="别人的共享", query="stage=lead")
    SavedView.objects.filter(pk=shared.pk).update(shared=True)
    body = operator_api.get(API).json()
    assert [row["id"] for row in body["results"]] == [mine.pk]
    assert body["results"][0]["contacts_url"].endswith("/api/v1/contacts/?stage=lead")
    for pk in (theirs.pk, shared.pk):
        assert operator_api.get(f"{API}{pk}/").status_code == 404
        assert operator_api.patch(f"{API}{pk}/", {"name": "抢"}).status_code == 404
        assert operator_api.delete(f"{API}{pk}/").status_code == 404
    assert SavedView.objects.count() == 3


def test_the_api_creates_updates_and_deletes_a_view(operator, operator_api):
    tag = TagFactory()
    response = operator_api.post(API, {"name": "标签客户", "query": f"tag={tag.pk}&page=2"})
    assert response.status_code == 201, response.content
    pk = response.json()["id"]
    assert response.json()["query"] == f"tag={tag.pk}"
    assert SavedView.objects.get(pk=pk).owner == operator
    response = operator_api.patch(f"{API}{pk}/", {"name": "改名", "query": "stage=customer"})
    assert response.status_code == 200 and response.json()["query"] == "stage=customer"
    assert operator_api.delete(f"{API}{pk}/").status_code == 204
    assert not SavedView.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "坏", "query": "acquired_from=31-31-2020"}, "query"),
        ({"name": "坏", "query": ""}, "query"),
        ({"name": "", "query": "stage=lead"}, "name"),
        ({"name": "共享", "query": "stage=lead", "shared": True}, "shared"),
    ],
)
def test_the_api_refuses_a_bad_view_naming_the_field(body, field, operator_api):
    response = operator_api.post(API, body, format="json")
    assert response.status_code == 400, response.content
    assert field in {error["field"] for error in response.json()["errors"]}
    assert not SavedView.objects.exists()


def test_the_api_refuses_a_name_taken_by_the_caller(operator, operator_api):
    saved_view_create(owner=operator, name="重名", query="stage=lead")
    response = operator_api.post(API, {"name": "重名", "query": "stage=engaged"})
    assert response.status_code == 400
    assert "name" in {error["field"] for error in response.json()["errors"]}


def test_a_manager_shares_through_the_api(manager_api):
    response = manager_api.post(API, {"name": "团队视图", "query": "stage=lead", "shared": True}, format="json")
    assert response.status_code == 201 and response.json()["shared"] is True
