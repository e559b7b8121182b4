"""The contact list operators live in: each filter and its chip, search by every key, bulk actions on the
ticked rows and on everything matching, and phone masking in exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from analytics.models import ContactScore, Layer
from communities.models import Community, Membership
from communities.services import membership_join
from contacts.exports import export_job_create, export_job_run
from contacts.models import Contact, ContactTag, ExportJob, Touchpoint
from tests.factories import ChannelFactory, CommunityFactory, ContactFactory, TagFactory, TagGroupFactory, UserFactory

PASSWORD = "pass-word-123"
LIST_URL = reverse("contacts:list")
BULK_URL = reverse("contacts:bulk")


def logged_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def row_ids(response) -> list[int]:
    return sorted(c.pk for c in response.context["contacts"])


def chips(response) -> list[tuple[str, str, str]]:
    return [(chip.name, chip.value, chip.remove_url) for chip in response.context["chips"]]


def query_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture(autouse=True)
def _exports_in_a_temporary_folder(settings, tmp_path):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def operator_client(operator):
    return logged_in(operator)


@pytest.fixture
def manager_client(manager):
    return logged_in(manager)


# --- Filters and their chips ----------------------------------------------------------------------


def test_multi_value_filters_are_plain_checkboxes_that_work_without_javascript(operator, operator_client):
    group = TagGroupFactory(name="意向度")
    strong, weak = TagFactory(group=group, name="强意向"), TagFactory(group=group, name="弱意向")
    html = operator_client.get(LIST_URL, {"tag": strong.pk, "stage": "lead"}).content.decode()
    assert f'<input type="checkbox" name="tag" value="{strong.pk}" checked>' in html
    assert f'<input type="checkbox" name="tag" value="{weak.pk}">' in html
    assert '<input type="checkbox" name="stage" value="lead" checked>' in html
    assert (
        "data-picker" in html and "<select multiple" not in html.split('data-testid="filters"')[1].split("</form>")[0]
    )
    assert 'src="/static/js/list.js"' in html


def test_tags_match_any_of_the_chosen_and_each_value_gets_a_chip(operator, operator_client):
    group = TagGroupFactory(name="兴趣")
    skin, baby, other = (TagFactory(group=group, name=n) for n in ("护肤", "母婴", "运动"))
    a, b, c = (ContactFactory(owner=operator) for _ in range(3))
    ContactTag.objects.create(contact=a, tag=skin)
    ContactTag.objects.create(contact=b, tag=baby)
    ContactTag.objects.create(contact=c, tag=other)
    response = operator_client.get(LIST_URL, {"tag": [skin.pk, baby.pk], "page": 2})
    assert row_ids(operator_client.get(LIST_URL, {"tag": [skin.pk, baby.pk]})) == sorted([a.pk, b.pk])
    shown = chips(response)
    assert [(name, value) for name, value, _url in shown] == [("tag", "兴趣 · 护肤"), ("tag", "兴趣 · 母婴")]
    # Each chip's link is the same list without that value, on its first page.
    assert query_of(shown[0][2]) == [("tag", str(baby.pk))]
    assert row_ids(operator_client.get(shown[0][2])) == [b.pk]
    html = response.content.decode()
    assert 'data-testid="filter-chip"' in html and "兴趣 · 母婴" in html


@pytest.mark.parametrize(
    "name, values, expected_chip",
    [
        ("stage", ["engaged"], None),  # the community join below engages the contact
        ("intent_level", ["high"], "高"),
        ("layer", ["core"], None),
        ("channel", None, "抖音"),
        ("community", None, "宝妈群"),
        ("acquired_from", None, None),
        ("acquired_to", None, None),
        ("predicted_clv_min", ["500"], "500"),
        ("search", ["张三"], "张三"),
    ],
)
def test_each_filter_narrows_the_list_and_shows_a_removable_chip(
    name, values, expected_chip, operator, operator_client
):
    douyin = ChannelFactory(name="抖音")
    community = CommunityFactory(owner=operator, name="宝妈群")
    match = ContactFactory(
        owner=operator,
        name="张三",
        intent_level=Contact.IntentLevel.HIGH,
        channel=douyin,
        acquired_at=timezone.now() - dt.timedelta(days=3),
    )
    other = ContactFactory(owner=operator, name="李四", acquired_at=timezone.now() - dt.timedelta(days=40))
    membership_join(community=community, contact=match)
    now = timezone.now()
    ContactScore.objects.create(
        contact=match, layer=Layer.CORE, predicted_clv=Decimal("800"), as_of=dt.date.today(), computed_at=now
    )
    ContactScore.objects.create(
        contact=other, layer=Layer.DORMANT, predicted_clv=Decimal("10"), as_of=dt.date.today(), computed_at=now
    )
    cutoff = (timezone.localdate() - dt.timedelta(days=10)).isoformat()
    values = (
        values
        or {
            "channel": [str(douyin.pk)],
            "community": [str(community.pk)],
            "acquired_from": [cutoff],
            "acquired_to": [cutoff],
        }[name]
    )
    response = operator_client.get(LIST_URL, {name: values})
    assert response.status_code == 200
    assert row_ids(response) == ([other.pk] if name == "acquired_to" else [match.pk])
    (chip,) = response.context["chips"]
    assert chip.name == name
    if expected_chip:
        assert expected_chip in chip.value
    assert row_ids(operator_client.get(chip.remove_url)) == sorted([match.pk, other.pk])


def test_owner_filter_takes_several_staff_for_managers_only(manager_client, operator, other_operator, operator_client):
    third = UserFactory(username="operator3", role="operator")
    mine = ContactFactory(owner=operator)
    theirs = ContactFactory(owner=other_operator)
    ContactFactory(owner=third)
    response = manager_client.get(LIST_URL, {"owner": [operator.pk, other_operator.pk]})
    assert row_ids(response) == sorted([mine.pk, theirs.pk])
    assert [chip.name for chip in response.context["chips"]] == ["owner", "owner"]
    # An operator has no owner filter, no owner chip, and a forged one cannot widen the list.
    response = operator_client.get(LIST_URL, {"owner": [other_operator.pk]})
    assert row_ids(response) == [mine.pk]
    assert response.context["chips"] == []
    assert b'name="owner"' not in response.content


def test_community_choices_are_the_users_own_and_anothers_id_is_refused(operator, other_operator, operator_client):
    mine = CommunityFactory(owner=operator, name="我的群")
    CommunityFactory(owner=other_operator, name="别人的群")
    member = ContactFactory(owner=operator)
    membership_join(community=mine, contact=member)
    ContactFactory(owner=operator)
    html = operator_client.get(LIST_URL).content.decode()
    assert "我的群" in html and "别人的群" not in html
    theirs = Community.objects.get(name="别人的群")
    response = operator_client.get(LIST_URL, {"community": [mine.pk, theirs.pk]})
    assert "community" in response.context["filterset"].form.errors


def test_communities_match_members_of_any_of_them(operator, operator_client):
    first, second = CommunityFactory(owner=operator), CommunityFactory(owner=operator)
    a, b = ContactFactory(owner=operator), ContactFactory(owner=operator)
    ContactFactory(owner=operator)
    membership_join(community=first, contact=a)
    membership_join(community=second, contact=b)
    assert row_ids(operator_client.get(LIST_URL, {"community": [first.pk, second.pk]})) == sorted([a.pk, b.pk])


def test_the_ids_filter_of_ticked_rows_has_one_chip(operator, operator_client):
    a, b = ContactFactory(owner=operator), ContactFactory(owner=operator)
    ContactFactory(owner=operator)
    response = operator_client.get(LIST_URL, {"id": f"{a.pk},{b.pk}"})
    assert row_ids(response) == sorted([a.pk, b.pk])
    ((name, value, _url),) = chips(response)
    assert name == "id" and value.startswith("2")


def test_filters_without_a_field_on_the_page_get_a_chip_and_survive_the_form(operator, operator_client):
    shanghai = ContactFactory(owner=operator, region="上海")
    ContactFactory(owner=operator, region="北京")
    response = operator_client.get(LIST_URL, {"region": "上海", "stage": "lead"})
    assert row_ids(response) == [shanghai.pk]
    assert [chip.name for chip in response.context["chips"]] == ["stage", "region"]
    assert '<input type="hidden" name="region" value="上海">' in response.content.decode()


def test_the_api_takes_several_owners_communities_and_ids(manager_api, operator, other_operator):
    mine, theirs = ContactFactory(owner=operator), ContactFactory(owner=other_operator)
    ContactFactory(owner=None)
    first, second = CommunityFactory(), CommunityFactory()
    membership_join(community=first, contact=mine)
    membership_join(community=second, contact=theirs)

    def ids(params):
        response = manager_api.get("/api/v1/contacts/", params)
        assert response.status_code == 200, response.content
        return sorted(row["id"] for row in response.json()["results"])

    assert ids({"owner": [operator.pk, other_operator.pk]}) == sorted([mine.pk, theirs.pk])
    assert ids({"community": [first.pk, second.pk]}) == sorted([mine.pk, theirs.pk])
    assert ids({"id": f"{mine.pk},{theirs.pk}"}) == sorted([mine.pk, theirs.pk])
    assert manager_api.get("/api/v1/contacts/", {"id": "1,x"}).status_code == 400


def test_clearing_all_filters_is_one_link(operator, operator_client):
    ContactFactory(owner=operator)
    html = operator_client.get(LIST_URL, {"stage": "lead", "search": "x"}).content.decode()
    assert 'data-testid="filter-chips"' in html and f'class="chips-clear" href="{LIST_URL}"' in html
    assert 'data-testid="filter-chips"' not in operator_client.get(LIST_URL).content.decode()


def test_list_query_count_does_not_grow_with_rows_or_filters(manager, manager_client, django_assert_max_num_queries):
    tags = [TagFactory(group=TagGroupFactory(name=f"组{i}")) for i in range(3)]
    community = CommunityFactory(owner=manager)
    params = {
        "tag": [t.pk for t in tags],
        "stage": ["lead", "engaged"],
        "community": [community.pk],
        "owner": [manager.pk],
        "search": "客户",
    }

    def add_contacts(n):
        for _ in range(n):
            contact = ContactFactory(owner=manager, name="客户", channel=ChannelFactory())
            for tag in tags:
                ContactTag.objects.create(contact=contact, tag=tag)
            Membership.objects.create(community=community, contact=contact, joined_at=timezone.now())

    add_contacts(3)
    with django_assert_max_num_queries(30) as few:
        manager_client.get(LIST_URL, params)
    add_contacts(47)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = manager_client.get(LIST_URL, params)
    assert len(row_ids(response)) == 50


# --- Search ---------------------------------------------------------------------------------------


@pytest.fixture
def searchable(operator):
    return {
        "zhang": ContactFactory(owner=operator, name="张三", phone="+8613900001111", external_id="ERP-001"),
        "li": ContactFactory(owner=operator, name="李四", phone="+8613700002222", wecom_external_userid="wmABCdef"),
        "wang": ContactFactory(owner=operator, name="王五", phone="+8613600005678", wechat_unionid="oUnion-42"),
        "erp": ContactFactory(owner=operator, name="ERP-001号客户", phone="+8613500003333"),
    }


SEARCHES = [
    ("张", ["zhang"]),  # name, as before
    ("0002222", ["li"]),  # part of a phone, as before
    ("5678", ["wang"]),  # the last four digits (手机尾号)
    ("1111", ["zhang"]),
    ("139 0000 1111", ["zhang"]),  # the whole number in any spelling: exact
    ("ERP-001", ["zhang"]),  # external id, exact: a name containing it is not an exact hit
    ("ERP-00", ["erp"]),  # not an id: the name still matches
    ("wmABCdef", ["li"]),  # WeCom external_userid, exact
    ("wmABC", []),  # …and only exact
    ("oUnion-42", ["wang"]),  # WeChat unionid, exact
]


@pytest.mark.parametrize("text, expected", SEARCHES)
def test_the_list_searches_every_key(text, expected, searchable, operator_client):
    assert row_ids(operator_client.get(LIST_URL, {"search": text})) == sorted(searchable[k].pk for k in expected)


@pytest.mark.parametrize("text, expected", SEARCHES)
def test_the_api_search_behaves_the_same(text, expected, searchable, operator_api):
    response = operator_api.get("/api/v1/contacts/", {"search": text})
    assert response.status_code == 200
    assert sorted(row["id"] for row in response.json()["results"]) == sorted(searchable[k].pk for k in expected)


def test_search_by_a_key_never_reaches_another_operators_contact(operator, other_operator, operator_client):
    ContactFactory(owner=other_operator, name="别人的", external_id="ERP-999", phone="+8613811112222")
    assert row_ids(operator_client.get(LIST_URL, {"search": "ERP-999"})) == []
    assert row_ids(operator_client.get(LIST_URL, {"search": "2222"})) == []


def test_four_digits_match_the_end_of_the_phone_only(operator, operator_client):
    tail = ContactFactory(owner=operator, name="甲", phone="+8613912341234")
    ContactFactory(owner=operator, name="乙", phone="+8613912349999")
    assert row_ids(operator_client.get(LIST_URL, {"search": "1234"})) == [tail.pk]


# --- Bulk actions ---------------------------------------------------------------------------------


@pytest.fixture
def books(operator, other_operator):
    """Three of the operator's contacts, one that stays out of the filter, and one of a colleague's."""
    group = TagGroupFactory(name="活动")
    return {
        "mine": [ContactFactory(owner=operator, region="上海") for _ in range(3)],
        "outside": ContactFactory(owner=operator, region="北京"),
        "theirs": ContactFactory(owner=other_operator, region="上海"),
        "tag": TagFactory(group=group, name="618大促"),
        "tag2": TagFactory(group=group, name="双11"),
    }


def post_bulk(client, **data):
    data.setdefault("next", f"{LIST_URL}?region=上海")
    return client.post(BULK_URL, data, follow=True)


def tagged(tag) -> set[int]:
    return set(ContactTag.objects.filter(tag=tag).values_list("contact_id", flat=True))


def test_bulk_tag_of_ticked_rows_tags_them_and_says_how_many(operator, operator_client, books):
    ids = [c.pk for c in books["mine"][:2]]
    response = post_bulk(operator_client, action="tag", scope="selected", contact_ids=ids, tags=[books["tag"].pk])
    assert tagged(books["tag"]) == set(ids)
    assert response.redirect_chain[-1] == (f"{LIST_URL}?region=%E4%B8%8A%E6%B5%B7", 302)
    (message,) = messages_of(response)
    assert "2" in message and "618大促" in message
    link = ContactTag.objects.filter(tag=books["tag"]).first()
    assert link.tagged_by == operator and link.source == ContactTag.Source.MANUAL


def test_bulk_action_on_all_matching_asks_first_with_the_count_then_runs(operator, operator_client, books):
    data = {"action": "tag", "scope": "all", "query": "region=上海", "tags": [books["tag"].pk], "next": LIST_URL}
    confirm = operator_client.post(BULK_URL, data)
    assert confirm.status_code == 200
    assert confirm.context["target"].count == 3  # the colleague's contact in 上海 is not in the operator's list
    html = confirm.content.decode()
    assert 'data-testid="bulk-confirm-count">3<' in html and "618大促" in html
    assert not tagged(books["tag"])  # nothing written before the confirmation
    response = operator_client.post(BULK_URL, {**data, "confirmed": "1"}, follow=True)
    assert tagged(books["tag"]) == {c.pk for c in books["mine"]}
    assert any("3" in m for m in messages_of(response))


def test_bulk_untag_of_ticked_rows_and_of_all_matching(operator, operator_client, books):
    for contact in [*books["mine"], books["outside"], books["theirs"]]:
        ContactTag.objects.create(contact=contact, tag=books["tag"])
    post_bulk(
        operator_client, action="untag", scope="selected", contact_ids=[books["mine"][0].pk], tags=[books["tag"].pk]
    )
    assert books["mine"][0].pk not in tagged(books["tag"])
    post_bulk(operator_client, action="untag", scope="all", query="region=上海", tags=[books["tag"].pk], confirmed="1")
    assert tagged(books["tag"]) == {books["outside"].pk, books["theirs"].pk}


def test_bulk_assign_is_for_managers_on_ticked_rows_and_all_matching(manager, operator, other_operator, books):
    client = logged_in(manager)
    new_owner = UserFactory(username="接手的同事", role="operator")
    response = post_bulk(
        client, action="assign", scope="selected", contact_ids=[books["mine"][0].pk], owner=new_owner.pk
    )
    assert Contact.objects.get(pk=books["mine"][0].pk).owner == new_owner
    assert any("1" in m for m in messages_of(response))
    post_bulk(client, action="assign", scope="all", query=f"owner={operator.pk}", owner=new_owner.pk, confirmed="1")
    assert set(Contact.objects.filter(owner=new_owner).values_list("pk", flat=True)) == {
        *(c.pk for c in books["mine"]),
        books["outside"].pk,
    }
    assert Contact.objects.get(pk=books["theirs"].pk).owner == other_operator


def test_an_operator_cannot_assign_owners_in_bulk(operator, operator_client, other_operator, books):
    html = operator_client.get(LIST_URL).content.decode()
    assert 'value="assign"' not in html
    response = post_bulk(
        operator_client, action="assign", scope="selected", contact_ids=[books["mine"][0].pk], owner=other_operator.pk
    )
    assert Contact.objects.get(pk=books["mine"][0].pk).owner == operator
    assert [m.level_tag for m in response.context["messages"]] == ["error"]


def test_bulk_add_to_community_joins_set_based_with_touchpoints_and_engagement(operator, operator_client, books):
    community = CommunityFactory(owner=operator, name="618福利群")
    already = books["mine"][0]
    membership_join(community=community, contact=already)
    response = post_bulk(operator_client, action="community", scope="all", query="region=上海", community=community.pk)
    assert response.context["target"].count == 3  # the confirmation
    response = post_bulk(
        operator_client, action="community", scope="all", query="region=上海", community=community.pk, confirmed="1"
    )
    members = set(
        Membership.objects.filter(community=community, left_at__isnull=True).values_list("contact", flat=True)
    )
    assert members == {c.pk for c in books["mine"]}
    joins = Touchpoint.objects.filter(community=community, kind=Touchpoint.Kind.JOIN_GROUP)
    assert sorted(joins.values_list("contact_id", flat=True)) == sorted(c.pk for c in books["mine"])  # one each
    for contact in Contact.objects.filter(pk__in=members):
        assert contact.stage == Contact.Stage.ENGAGED and contact.last_interaction_at is not None
    text = " ".join(messages_of(response))
    assert "2" in text and "1" in text  # two joined, one was already in
    assert not Membership.objects.filter(contact=books["theirs"]).exists()


def test_bulk_add_to_community_of_ticked_rows(operator, operator_client, books):
    community = CommunityFactory(owner=operator)
    post_bulk(
        operator_client, action="community", scope="selected", contact_ids=[books["outside"].pk], community=community.pk
    )
    assert list(Membership.objects.filter(community=community).values_list("contact", flat=True)) == [
        books["outside"].pk
    ]


def test_a_full_community_takes_nobody_and_says_so(operator, operator_client, books):
    community = CommunityFactory(owner=operator, capacity=2)
    response = post_bulk(
        operator_client, action="community", scope="all", query="region=上海", community=community.pk, confirmed="1"
    )
    assert not Membership.objects.filter(community=community).exists()
    assert not Touchpoint.objects.filter(community=community).exists()
    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    assert "2" in messages_of(response)[0] and "3" in messages_of(response)[0]


def test_another_operators_or_an_archived_community_is_refused(operator, other_operator, operator_client, books):
    theirs = CommunityFactory(owner=other_operator)
    archived = CommunityFactory(owner=operator, status=Community.Status.ARCHIVED)
    for community in (theirs, archived):
        response = post_bulk(
            operator_client,
            action="community",
            scope="selected",
            contact_ids=[books["mine"][0].pk],
            community=community.pk,
        )
        assert [m.level_tag for m in response.context["messages"]] == ["error"]
    assert not Membership.objects.exists()


def test_bulk_follow_up_tasks_for_ticked_rows_and_all_matching(operator, operator_client, books):
    from campaigns.models import FollowUpTask

    due = (timezone.localtime() + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = post_bulk(
        operator_client, action="task", scope="selected", contact_ids=[books["mine"][0].pk], title="回访", due_at=due
    )
    assert list(FollowUpTask.objects.values_list("contact_id", "assignee_id", "title")) == [
        (books["mine"][0].pk, operator.pk, "回访")
    ]
    assert any("1" in m for m in messages_of(response))
    post_bulk(operator_client, action="task", scope="all", query="region=上海", title="618 提醒", confirmed="1")
    assert set(FollowUpTask.objects.filter(title="618 提醒").values_list("contact_id", flat=True)) == {
        c.pk for c in books["mine"]
    }
    assert not FollowUpTask.objects.filter(contact=books["theirs"]).exists()


def test_bulk_export_of_ticked_rows_and_of_all_matching(
    operator, operator_client, books, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(
            BULK_URL,
            {"action": "export", "scope": "selected", "contact_ids": [books["mine"][0].pk, books["theirs"].pk]},
        )
    job = ExportJob.objects.get()
    assert response["Location"] == reverse("contacts:export_detail", args=[job.pk])
    assert job.params == [
        ["id", f"{min(books['mine'][0].pk, books['theirs'].pk)},{max(books['mine'][0].pk, books['theirs'].pk)}"]
    ]
    assert [row["name"] for row in _csv(job)] == [books["mine"][0].name]  # the colleague's is not in the file
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(BULK_URL, {"action": "export", "scope": "all", "query": "region=上海&page=2"})
    job = ExportJob.objects.latest("pk")
    assert job.params == [["region", "上海"]]
    assert sorted(row["name"] for row in _csv(job)) == sorted(c.name for c in books["mine"])


def test_ticked_ids_outside_the_list_are_left_out_and_counted(operator, operator_client, books):
    response = post_bulk(
        operator_client,
        action="tag",
        scope="selected",
        contact_ids=[books["mine"][0].pk, books["theirs"].pk, 987654],
        tags=[books["tag"].pk],
    )
    assert tagged(books["tag"]) == {books["mine"][0].pk}
    (message,) = messages_of(response)
    assert "1" in message and "2" in message  # one tagged, two left out
    assert str(books["theirs"].pk) not in message


def test_only_foreign_ids_write_nothing_and_say_so(operator_client, books):
    response = post_bulk(
        operator_client, action="tag", scope="selected", contact_ids=[books["theirs"].pk], tags=[books["tag"].pk]
    )
    assert not ContactTag.objects.exists()
    assert [m.level_tag for m in response.context["messages"]] == ["error"]


@pytest.mark.parametrize(
    "data",
    [
        {"action": "tag", "scope": "selected", "contact_ids": ["{mine}"]},  # no tag
        {"action": "tag", "scope": "selected", "tags": ["{tag}"]},  # nothing ticked
        {"action": "tag", "scope": "all", "query": "acquired_from=31-31-2020", "tags": ["{tag}"], "confirmed": "1"},
        {"action": "tag", "scope": "all", "query": "region=火星", "tags": ["{tag}"], "confirmed": "1"},  # no match
        {"action": "task", "scope": "selected", "contact_ids": ["{mine}"], "title": ""},
        {"action": "task", "scope": "selected", "contact_ids": ["{mine}"], "title": "x" * 201},
        {"action": "community", "scope": "selected", "contact_ids": ["{mine}"]},
        {"action": "explode", "scope": "selected", "contact_ids": ["{mine}"]},
        {"action": "tag", "scope": "selected", "contact_ids": ["abc"], "tags": ["{tag}"]},
    ],
)
def test_bad_input_is_an_error_and_writes_nothing(data, operator_client, books):
    from campaigns.models import FollowUpTask

    values = {
        key: [str(books["mine"][0].pk) if v == "{mine}" else str(books["tag"].pk) if v == "{tag}" else v for v in value]
        if isinstance(value, list)
        else value
        for key, value in data.items()
    }
    response = post_bulk(operator_client, **values)
    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    assert not ContactTag.objects.exists() and not FollowUpTask.objects.exists() and not Membership.objects.exists()


def test_an_exclusive_group_clash_on_all_matching_writes_nothing(operator, operator_client, books):
    group = TagGroupFactory(name="意向度", exclusive=True)
    strong, weak = TagFactory(group=group, name="强"), TagFactory(group=group, name="弱")
    response = post_bulk(
        operator_client, action="tag", scope="all", query="region=上海", tags=[strong.pk, weak.pk], confirmed="1"
    )
    assert not ContactTag.objects.exists()
    assert [m.level_tag for m in response.context["messages"]] == ["error"]


def test_bulk_actions_keep_csrf(operator, books):
    client = logged_in(operator, enforce_csrf_checks=True)
    data = {"action": "tag", "scope": "selected", "contact_ids": [books["mine"][0].pk], "tags": [books["tag"].pk]}
    assert client.post(BULK_URL, data).status_code == 403
    assert not ContactTag.objects.exists()


def test_bulk_needs_post(operator_client):
    assert operator_client.get(BULK_URL).status_code == 405


def _bulk_data(action: str, ctx: dict) -> dict:
    return {
        "tag": {"tags": [ctx["tag"].pk]},
        "untag": {"tags": [ctx["tag"].pk]},
        "assign": {"owner": ctx["owner"].pk},
        "community": {"community": ctx["community"].pk},
        "task": {"title": "回访"},
    }[action]


@pytest.mark.parametrize("action", ["tag", "untag", "assign", "community", "task"])
@pytest.mark.parametrize("scope", ["selected", "all"])
def test_bulk_query_count_does_not_grow_with_the_contacts(action, scope, manager, django_assert_max_num_queries):
    client = logged_in(manager)
    ctx = {
        "tag": TagFactory(),
        "owner": UserFactory(username="新负责人", role="operator"),
        "community": CommunityFactory(owner=manager, capacity=1000),
    }
    channel = ChannelFactory()
    counts = []
    for n, region in ((3, "杭州"), (40, "苏州")):
        contacts = [ContactFactory(owner=manager, region=region, channel=channel) for _ in range(n)]
        if action == "untag":
            for contact in contacts:
                ContactTag.objects.create(contact=contact, tag=ctx["tag"])
        data = {"action": action, "scope": scope, "confirmed": "1", "next": LIST_URL, **_bulk_data(action, ctx)}
        if scope == "all":
            data["query"] = f"region={region}"
        else:
            data["contact_ids"] = [c.pk for c in contacts]
        with django_assert_max_num_queries(60) as captured:
            response = client.post(BULK_URL, data)
        assert response.status_code == 302
        counts.append(len(captured.captured_queries))
    assert counts[1] == counts[0], counts


# --- Phone masking in exports ----------------------------------------------------------------------


def _csv(job: ExportJob) -> list[dict]:
    job.refresh_from_db()
    assert job.status == ExportJob.Status.DONE, job.message
    return list(csv.DictReader(io.StringIO(job.file.open("rb").read().decode("utf-8-sig"))))


def test_an_operator_exports_masked_phones_like_the_list_shows(operator, operator_client):
    ContactFactory(owner=operator, name="王小丫", phone="+8613812345678")
    job = export_job_create(user=operator, source=ExportJob.Source.DASHBOARD, params=[])
    export_job_run(job_id=job.pk)
    assert [row["phone"] for row in _csv(job)] == ["138****5678"]
    assert "138****5678" in operator_client.get(LIST_URL).content.decode()
    job.refresh_from_db()
    assert "masked" in job.message or "隐藏" in job.message


def test_holders_of_the_permission_export_full_phones(operator):
    operator.user_permissions.add(Permission.objects.get(codename="export_full_phones"))
    ContactFactory(owner=operator, phone="+8613812345678")
    job = export_job_create(user=operator, source=ExportJob.Source.API, params=[])
    export_job_run(job_id=job.pk)
    assert [row["phone"] for row in _csv(job)] == ["+8613812345678"]
    job.refresh_from_db()
    assert "complete" in job.message or "完整" in job.message


def test_managers_and_admins_hold_the_permission_through_their_role(manager, admin_user, operator, integrator):
    assert manager.has_perm("contacts.export_full_phones")
    assert admin_user.has_perm("contacts.export_full_phones")
    assert not operator.has_perm("contacts.export_full_phones")
    assert not integrator.has_perm("contacts.export_full_phones")


def test_masking_follows_the_permission_when_the_file_is_written(operator):
    """The permission is read when the worker writes the file: one taken away while the job waited in the
    queue is honoured."""
    permission = Permission.objects.get(codename="export_full_phones")
    operator.user_permissions.add(permission)
    ContactFactory(owner=operator, phone="+8613812345678")
    job = export_job_create(user=operator, source=ExportJob.Source.DASHBOARD, params=[])
    operator.user_permissions.remove(permission)
    export_job_run(job_id=job.pk)
    assert [row["phone"] for row in _csv(job)] == ["138****5678"]
