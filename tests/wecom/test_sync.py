"""The full WeCom sync (wecom.sync) against the stand-in over real HTTP: contacts, follows and
touchpoints set-based, resumable after a crash, nothing written on a re-sync, busy and invalid answers."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact, ContactTag, Tag, TagGroup, Touchpoint
from tests.factories import ChannelFactory, ContactFactory, UserFactory
from tests.wecom import test_client
from wecom import standin as standin_module
from wecom import sync_contacts
from wecom.models import CorpTagGroupLink, CorpTagLink, FollowRelationship, LiveCode, StaffAccount, SyncRun
from wecom.sync import staff_accounts_sync, sync_run_continue, sync_run_start
from wecom.sync_tags import corp_tags_pull, tags_push

pytestmark = pytest.mark.django_db(transaction=False)
fast_client = test_client.fast_client
wecom_standin = test_client.wecom_standin  # the stand-in fixture
STAFF = ["s0001", "s0002", "s0003", "s0004", "s0005"]


def _sync(**kwargs) -> SyncRun:
    with fast_client() as client:
        return sync_run_continue(run=sync_run_start(), client=client, busy_pause=0.01, **kwargs)


def _seed(standin, customers=2000, shared_every=20):
    standin.seed(staff=5, customers=customers, shared_every=shared_every)
    return standin.state()


def _snapshot() -> dict:
    return {
        "contacts": sorted(
            Contact.objects.values_list(
                "wecom_external_userid", "wechat_unionid", "phone", "owner__username", "acquired_at"
            )
        ),
        "follows": sorted(
            FollowRelationship.objects.values_list("staff__userid", "external_userid", "contact__wecom_external_userid")
        ),
        "touchpoints": sorted(
            Touchpoint.objects.values_list("contact__wecom_external_userid", "kind", "medium", "occurred_at")
        ),
    }


def test_full_sync_creates_every_contact_follow_and_add_friend_touchpoint(wecom_standin):
    users = {u: UserFactory(username=u) for u in STAFF[:3]}
    state = _seed(wecom_standin)
    run = _sync()
    assert run.status == SyncRun.Status.DONE, run.error
    assert Contact.objects.count() == 2000 == run.contacts_created
    assert FollowRelationship.objects.count() == state["follows"] == 2100 == run.customers_seen
    assert Touchpoint.objects.filter(kind=Touchpoint.Kind.ADD_FRIEND, medium="wecom").count() == 2100
    assert StaffAccount.objects.filter(user__isnull=False).count() == 3
    # Customer 0 is followed by s0001 and (every 20th) by s0002: one contact, two follows.
    shared = Contact.objects.get(wecom_external_userid="wmseed000000000000000000")
    follows = list(shared.wecom_follows.order_by("added_at"))
    assert [f.staff.userid for f in follows] == ["s0001", "s0002"]
    assert shared.owner == users[follows[0].staff.userid]
    assert shared.acquired_at == follows[0].added_at
    assert shared.phone == "+8613900000000" and shared.wechat_unionid == "oseed00000000000000000000"
    assert shared.stage == Contact.Stage.ENGAGED and shared.last_interaction_at == follows[1].added_at


def test_resync_of_unchanged_data_writes_nothing(wecom_standin):
    _seed(wecom_standin, customers=600)
    first = _sync()
    assert first.status == SyncRun.Status.DONE
    before = _snapshot()
    with CaptureQueriesContext(connection) as queries:
        second = _sync()
    assert second.status == SyncRun.Status.DONE and second.pk != first.pk
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].split()[0].upper() in ("INSERT", "UPDATE", "DELETE") and "wecom_syncrun" not in q["sql"]
    ]
    assert writes == []
    assert second.contacts_created == 0 and second.follows_written == 0 and second.customers_seen == 630
    assert _snapshot() == before


def test_a_crash_mid_run_resumes_from_the_cursor_with_the_same_end_state(wecom_standin, monkeypatch):
    _seed(wecom_standin, customers=1000)
    original = sync_contacts.contacts_page_apply
    pages = {"n": 0}

    def crash_after_page_4(**kwargs):
        result = original(**kwargs)  # the fifth page's writes happen, then the process "dies"
        pages["n"] += 1
        if pages["n"] == 5:
            raise RuntimeError("worker killed")
        return result

    monkeypatch.setattr(sync_contacts, "contacts_page_apply", crash_after_page_4)
    with pytest.raises(RuntimeError):
        _sync()
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.RUNNING and run.customers_seen == 400 and run.position["cursor"]
    assert FollowRelationship.objects.count() == 400  # page 5 was rolled back with its position
    resumed = _sync()
    assert resumed.pk == run.pk and resumed.status == SyncRun.Status.DONE
    assert resumed.customers_seen == 1050
    crashed_state = _snapshot()
    # The same data synced in one go into an empty database gives the same rows.
    Touchpoint.objects.all().delete()
    FollowRelationship.objects.all().delete()
    Contact.objects.all().delete()
    monkeypatch.setattr(sync_contacts, "contacts_page_apply", original)
    assert _sync().status == SyncRun.Status.DONE
    assert _snapshot() == crashed_state
    assert len(crashed_state["touchpoints"]) == len(crashed_state["follows"]) == 1050


def test_busy_one_call_in_ten_is_backed_off_and_nothing_is_lost(wecom_standin):
    _seed(wecom_standin, customers=2000)
    wecom_standin.busy_every = 10
    run = _sync()
    assert run.status == SyncRun.Status.DONE, run.error
    assert Contact.objects.count() == 2000 and FollowRelationship.objects.count() == 2100
    assert Touchpoint.objects.count() == 2100
    assert wecom_standin.api_calls > wecom_standin.calls["externalcontact/batch/get_by_user"]


def test_wecom_staying_busy_leaves_the_run_running_for_later(wecom_standin):
    _seed(wecom_standin, customers=300)
    wecom_standin.busy_every = 1
    run = _sync()
    assert run.status == SyncRun.Status.RUNNING and "busy" in run.error
    wecom_standin.busy_every = 0
    run = _sync()
    assert run.status == SyncRun.Status.DONE and Contact.objects.count() == 300


def test_a_member_wecom_does_not_know_is_recorded_and_skipped(wecom_standin, monkeypatch):
    _seed(wecom_standin, customers=200)
    # WeCom lists a member that batch/get_by_user and user/get then do not know.
    monkeypatch.setitem(
        standin_module._ROUTES,
        ("GET", "externalcontact/get_follow_user_list"),
        lambda self, **kw: {"errcode": 0, "errmsg": "ok", "follow_user": [*STAFF[:2], "ghost", *STAFF[2:]]},
    )
    run = _sync()
    assert run.status == SyncRun.Status.DONE, run.error
    assert {entry["userid"] for entry in run.skipped} == {"ghost"}
    assert {entry["errcode"] for entry in run.skipped} <= {40003, 60111}
    assert Contact.objects.count() == 200 and FollowRelationship.objects.count() == 210


def test_customers_merge_into_contacts_with_their_unionid_or_phone(wecom_standin):
    by_union = ContactFactory(wechat_unionid="o-union-1", name="", wecom_external_userid=None, owner=None)
    by_phone = ContactFactory(phone="+8613812345678", name="李雷", wecom_external_userid=None, wechat_unionid=None)
    wecom_standin.staff_add("manager")
    union_eid = wecom_standin.customer_add(name="韩梅梅", unionid="o-union-1", gender=2)
    phone_eid = wecom_standin.customer_add(name="Li Lei")
    wecom_standin.follow_add(userid="manager", external_userid=union_eid, createtime=1_600_000_000)
    wecom_standin.follow_add(userid="manager", external_userid=phone_eid, remark_mobiles=["138 1234 5678"])
    manager = UserFactory(username="manager")
    run = _sync()
    assert run.contacts_created == 0 and Contact.objects.count() == 2
    by_union.refresh_from_db()
    by_phone.refresh_from_db()
    assert by_union.wecom_external_userid == union_eid and by_union.name == "韩梅梅"
    assert by_union.owner == manager and by_union.acquired_at == dt.datetime.fromtimestamp(1_600_000_000, tz=dt.UTC)
    assert by_phone.wecom_external_userid == phone_eid and by_phone.name == "李雷"  # a name we had is kept


def test_a_live_codes_state_gives_new_contacts_its_channel(wecom_standin):
    channel = ChannelFactory(name="门店海报")
    LiveCode.objects.create(name="海报码", channel=channel, state="poster-1")
    wecom_standin.staff_add("operator")
    eid = wecom_standin.customer_add(name="扫码客户")
    wecom_standin.follow_add(userid="operator", external_userid=eid, state="poster-1")
    _sync()
    contact = Contact.objects.get(wecom_external_userid=eid)
    assert contact.channel == channel
    assert FollowRelationship.objects.get().live_code.state == "poster-1"


def test_a_follow_ended_after_the_listed_add_is_not_started_again(wecom_standin):
    wecom_standin.staff_add("operator")
    eid = wecom_standin.customer_add(name="流失客户")
    wecom_standin.follow_add(userid="operator", external_userid=eid, createtime=int(time.time()) - 60)
    _sync()
    follow = FollowRelationship.objects.get()
    FollowRelationship.objects.filter(pk=follow.pk).update(
        deleted_at=dt.datetime.now(tz=dt.UTC), ended_by=FollowRelationship.EndedBy.CUSTOMER
    )
    _sync()
    follow.refresh_from_db()
    assert follow.deleted_at is not None and Touchpoint.objects.count() == 1


def test_queries_grow_with_pages_not_with_contacts(wecom_standin, django_assert_max_num_queries):
    _seed(wecom_standin, customers=2000)
    run = sync_run_start()
    with fast_client() as client, django_assert_max_num_queries(25 * 22 + 60):  # 21 pages
        sync_run_continue(run=run, client=client, busy_pause=0.01)
    assert wecom_standin.calls["externalcontact/batch/get_by_user"] == 21


def test_starting_a_sync_while_one_runs_returns_the_running_one(db):
    first = sync_run_start()
    assert sync_run_start() == first
    SyncRun.objects.filter(pk=first.pk).update(status=SyncRun.Status.DONE)
    assert sync_run_start() != first


def test_staff_accounts_link_users_by_username_but_keep_a_managers_mapping(wecom_standin):
    manager, operator, other = UserFactory(username="manager"), UserFactory(username="operator"), UserFactory()
    StaffAccount.objects.create(userid="operator", user=other, name="小王")  # a manager mapped it by hand
    StaffAccount.objects.create(userid="left-the-company")
    with fast_client() as client:
        staff_accounts_sync(userids=["manager", "operator"], client=client)
    accounts = {a.userid: a for a in StaffAccount.objects.all()}
    assert accounts["manager"].user == manager and accounts["manager"].name == "manager"
    assert accounts["operator"].user == other and accounts["operator"].name == "小王"
    assert not accounts["left-the-company"].is_follow_user
    assert operator.pk not in StaffAccount.objects.values_list("user", flat=True)


def test_corp_tags_are_mirrored_and_customers_tags_of_linked_groups_put_on_contacts(wecom_standin):
    group = wecom_standin._add_corp_tag(body={"group_name": "意向度", "tag": [{"name": "强"}, {"name": "弱"}]})[
        "tag_group"
    ]
    strong, weak = (t["id"] for t in group["tag"])
    wecom_standin.staff_add("manager")
    eid = wecom_standin.customer_add(name="有标签的客户")
    wecom_standin.follow_add(userid="manager", external_userid=eid, tag_ids=[strong])
    _sync()
    tag = CorpTagLink.objects.get(wecom_id=strong).tag
    assert (tag.group.name, tag.name) == ("意向度", "强")
    assert list(ContactTag.objects.values_list("tag__name", "source")) == [("强", ContactTag.Source.WECOM)]
    # Renamed and deleted in WeCom: mirrored on the next pull.
    wecom_standin._edit_corp_tag(body={"id": strong, "name": "很强"})
    wecom_standin._del_corp_tag(body={"tag_id": [weak]})
    counts = corp_tags_pull(client=fast_client())
    assert counts == {"tags_renamed": 1, "tags_deleted": 1}
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["很强"]
    assert corp_tags_pull(client=fast_client()) == {}
    wecom_standin._del_corp_tag(body={"group_id": [group["group_id"]]})
    corp_tags_pull(client=fast_client())
    assert not TagGroup.objects.exists() and not CorpTagGroupLink.objects.exists()


def test_tags_push_marks_every_active_follow_of_the_contacts(wecom_standin):
    group = wecom_standin._add_corp_tag(body={"group_name": "会员", "tag": [{"name": "金卡"}]})["tag_group"]
    gold = group["tag"][0]["id"]
    for userid in ("manager", "operator"):
        wecom_standin.staff_add(userid)
    eid = wecom_standin.customer_add(name="两位员工的客户")
    wecom_standin.follow_add(userid="manager", external_userid=eid)
    wecom_standin.follow_add(userid="operator", external_userid=eid)
    _sync()
    contact = Contact.objects.get()
    tag = CorpTagLink.objects.get(wecom_id=gold).tag
    FollowRelationship.objects.create(
        contact=contact, staff=StaffAccount.objects.create(userid="ghost"), external_userid=eid
    )
    outcome = tags_push(contact_ids=[contact.pk], add_tag_ids=[tag.pk], client=fast_client())
    assert outcome["marked"] == 2 and [s["userid"] for s in outcome["skipped"]] == ["ghost"]
    assert all(wecom_standin.follows[u][eid]["tag_id"] == [gold] for u in ("manager", "operator"))
    outcome = tags_push(contact_ids=[contact.pk], remove_tag_ids=[tag.pk], client=fast_client())
    assert wecom_standin.follows["manager"][eid]["tag_id"] == []
