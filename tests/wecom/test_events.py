"""The event handlers of the callback inbox: what an add, a delete, an edit or a failed transfer does to
contacts, follows, tags, the timeline and the welcome ledger — and that repeated, concurrent or
out-of-order events leave the same end state."""

from __future__ import annotations

import datetime as dt
import hashlib
import time

import pytest

from campaigns.models import Delivery, FollowUpTask
from contacts.models import Contact, ContactTag, Touchpoint
from tests.campaigns.factories import MessageTemplateFactory
from tests.factories import ChannelFactory, ContactFactory, TagFactory
from tests.wecom.fakes import FakeClient
from wecom import events
from wecom.client import WeComError
from wecom.models import CallbackEvent, FollowRelationship, LiveCode, LiveCodeStaff, StaffAccount

pytestmark = pytest.mark.django_db
NOW = int(time.time())


def event(change_type: str, *, at: int = NOW, event_name="change_external_contact", **fields) -> CallbackEvent:
    payload = {
        "ToUserName": "ww-test",
        "CreateTime": str(at),
        "Event": event_name,
        "ChangeType": change_type,
        **fields,
    }
    message = repr(sorted(payload.items()))
    return CallbackEvent.objects.create(
        key=hashlib.sha256(message.encode()).hexdigest(),
        event=event_name,
        change_type=change_type,
        userid=fields.get("UserID", ""),
        external_userid=fields.get("ExternalUserID", ""),
        payload=payload,
        message=message,
        event_at=dt.datetime.fromtimestamp(at, tz=dt.UTC),
    )


def add(userid="manager", ext="wmA", *, at=NOW, state="", welcome="") -> CallbackEvent:
    fields = {"UserID": userid, "ExternalUserID": ext}
    if state:
        fields["State"] = state
    if welcome:
        fields["WelcomeCode"] = welcome
    return event("add_external_contact", at=at, **fields)


def process(ev: CallbackEvent, client) -> str:
    return events.callback_process(event_id=ev.pk, client=client)


@pytest.fixture
def client():
    return FakeClient()


@pytest.fixture
def staff(manager):
    return StaffAccount.objects.create(userid="manager", user=manager, name="店长")


@pytest.fixture
def live_code(staff):
    code = LiveCode.objects.create(
        name="抖音直播间",
        channel=ChannelFactory(name="抖音"),
        state="lcDOUYIN",
        config_id="cfg-1",
        welcome_template=MessageTemplateFactory(body="你好 {name}，我是你的专属顾问 {owner}"),
        welcome_attachments=[{"msgtype": "link", "link": {"title": "新人券", "url": "https://example.com/c"}}],
        wecom_users=["manager"],
    )
    LiveCodeStaff.objects.create(live_code=code, staff=staff)
    code.tags.set([TagFactory(name="直播引流")])
    return code


def test_an_add_through_a_live_code_makes_the_whole_contact(client, staff, live_code, manager):
    client.customer("wmA", name="王小美", unionid="uni-1", follows=[{"userid": "manager", "remark": "直播间"}])
    assert process(add(state="lcDOUYIN", welcome="W1"), client) == "done"

    contact = Contact.objects.get()
    assert (contact.name, contact.wecom_external_userid, contact.wechat_unionid) == ("王小美", "wmA", "uni-1")
    assert contact.owner == manager
    assert contact.channel == live_code.channel
    assert contact.gender == Contact.Gender.FEMALE
    assert list(contact.tag_links.values_list("tag__name", "source")) == [("直播引流", ContactTag.Source.LIVE_CODE)]
    follow = FollowRelationship.objects.get()
    assert (follow.contact, follow.staff, follow.live_code, follow.remark, follow.deleted_at) == (
        contact,
        staff,
        live_code,
        "直播间",
        None,
    )
    touch = Touchpoint.objects.get()
    assert (touch.kind, touch.medium, touch.staff) == (Touchpoint.Kind.ADD_FRIEND, "wecom", manager)
    contact.refresh_from_db()
    assert contact.stage == Contact.Stage.ENGAGED

    owner = f"{manager.last_name}{manager.first_name}" or manager.username
    assert client.welcomes == [("W1", f"你好 王小美，我是你的专属顾问 {owner}", live_code.welcome_attachments)]
    delivery = Delivery.objects.get()
    assert (delivery.welcome_code, delivery.status, delivery.is_marketing, delivery.contact) == (
        "W1",
        Delivery.Status.SENT,
        False,
        contact,
    )


def test_the_same_event_processed_again_changes_nothing_and_sends_no_second_welcome(client, staff, live_code):
    client.customer("wmA", follows=[{"userid": "manager"}])
    ev = add(state="lcDOUYIN", welcome="W1")
    process(ev, client)
    # As if the sweeper handed the row out again after a lost acknowledgement.
    CallbackEvent.objects.filter(pk=ev.pk).update(status="pending")
    process(ev, client)
    # And WeCom's next add of the same follow (another CreateTime, same WelcomeCode would never happen; a new one may).
    process(add(at=NOW + 1, state="lcDOUYIN", welcome="W1"), client)
    assert Contact.objects.count() == 1
    assert FollowRelationship.objects.count() == 1
    assert Touchpoint.objects.count() == 1
    assert ContactTag.objects.count() == 1
    assert len(client.welcomes) == 1
    assert Delivery.objects.count() == 1


def test_a_customer_followed_by_two_staff_is_one_contact_with_two_follows(client, staff, other_operator):
    StaffAccount.objects.create(userid="sales2", user=other_operator)
    client.customer("wmA", follows=[{"userid": "manager"}, {"userid": "sales2"}])
    process(add("manager", "wmA"), client)
    process(add("sales2", "wmA", at=NOW + 5), client)
    contact = Contact.objects.get()
    assert contact.owner.username == "manager"  # the first follow's staff member owns it
    assert set(contact.wecom_follows.values_list("staff__userid", flat=True)) == {"manager", "sales2"}


@pytest.mark.parametrize("match", ["unionid", "phone"])
def test_an_existing_contact_is_matched_by_unionid_then_phone_and_gains_the_external_userid(client, staff, match):
    existing = ContactFactory(name="老客户", wechat_unionid="uni-9", phone="+8613800138000", owner=None)
    client.customer(
        "wmB",
        unionid="uni-9" if match == "unionid" else "",
        follows=[{"userid": "manager", "remark_mobiles": ["13800138000"] if match == "phone" else []}],
    )
    process(add("manager", "wmB"), client)
    assert Contact.objects.count() == 1
    existing.refresh_from_db()
    assert existing.wecom_external_userid == "wmB"
    assert existing.name == "老客户"  # what operators wrote is kept
    assert existing.owner == staff.user


def test_an_unknown_staff_member_gets_an_unmapped_account_and_nothing_is_lost(client):
    client.customer("wmC", follows=[{"userid": "newhire"}])
    assert process(add("newhire", "wmC"), client) == "done"
    account = StaffAccount.objects.get(userid="newhire")
    assert account.user is None
    assert Contact.objects.get().owner is None
    assert FollowRelationship.objects.get().staff == account


def test_the_customer_deleting_the_staff_member_ends_the_follow_and_alerts_the_owner(client, staff, manager):
    client.customer("wmA", name="王小美", follows=[{"userid": "manager"}])
    process(add(), client)
    assert process(event("del_follow_user", at=NOW + 60, UserID="manager", ExternalUserID="wmA"), client) == "done"
    follow = FollowRelationship.objects.get()
    assert follow.ended_by == FollowRelationship.EndedBy.CUSTOMER
    assert follow.deleted_at == dt.datetime.fromtimestamp(NOW + 60, tz=dt.UTC)
    assert Touchpoint.objects.filter(kind=Touchpoint.Kind.DELETE_FRIEND).count() == 1
    task = FollowUpTask.objects.get()
    assert task.assignee == manager
    assert "王小美" in task.title


def test_staff_deleting_the_customer_is_recorded_without_an_alert(client, staff):
    client.customer("wmA", follows=[{"userid": "manager"}])
    process(add(), client)
    process(event("del_external_contact", at=NOW + 60, UserID="manager", ExternalUserID="wmA"), client)
    assert FollowRelationship.objects.get().ended_by == FollowRelationship.EndedBy.STAFF
    assert Touchpoint.objects.filter(kind=Touchpoint.Kind.REMOVED).count() == 1
    assert not FollowUpTask.objects.exists()


def test_a_delete_that_arrives_before_its_add_leaves_the_same_end_state(client, staff, live_code):
    client.customer("wmA", follows=[{"userid": "manager"}])
    delete = event("del_follow_user", at=NOW + 60, UserID="manager", ExternalUserID="wmA")
    assert process(delete, client) == "done"  # nothing to end yet
    process(add(state="lcDOUYIN", welcome="W1"), client)
    follow = FollowRelationship.objects.get()
    assert follow.ended_by == FollowRelationship.EndedBy.CUSTOMER
    assert follow.deleted_at == dt.datetime.fromtimestamp(NOW + 60, tz=dt.UTC)
    assert client.welcomes == []  # the customer is already gone: no welcome into the void


def test_an_old_add_arriving_after_a_newer_delete_does_not_bring_the_follow_back(client, staff):
    client.customer("wmA", follows=[{"userid": "manager"}])
    process(add(at=NOW), client)
    process(event("del_follow_user", at=NOW + 60, UserID="manager", ExternalUserID="wmA"), client)
    process(add(at=NOW + 30), client)  # WeCom's retry of an earlier add, late
    assert FollowRelationship.objects.get().deleted_at is not None
    # A real re-add later starts it again.
    process(add(at=NOW + 120), client)
    assert FollowRelationship.objects.get().deleted_at is None


def test_an_edit_updates_the_staff_members_remark(client, staff):
    client.customer("wmA", follows=[{"userid": "manager", "remark": "old"}])
    process(add(), client)
    client.customer("wmA", follows=[{"userid": "manager", "remark": "VIP 王姐"}])
    process(event("edit_external_contact", at=NOW + 5, UserID="manager", ExternalUserID="wmA"), client)
    assert FollowRelationship.objects.get().remark == "VIP 王姐"


def test_a_failed_transfer_alerts_the_owner(client, staff, manager):
    ContactFactory(name="李雷", wecom_external_userid="wmT", owner=manager)
    process(event("transfer_fail", UserID="x", ExternalUserID="wmT", FailReason="customer_refused"), client)
    assert "customer_refused" in FollowUpTask.objects.get().title


def test_an_opted_out_contact_gets_no_welcome_and_the_ledger_says_why(client, staff, live_code):
    ContactFactory(wecom_external_userid="wmA", opted_out_at=dt.datetime.now(dt.UTC))
    client.customer("wmA", follows=[{"userid": "manager"}])
    process(add(state="lcDOUYIN", welcome="W1"), client)
    assert client.welcomes == []
    assert Delivery.objects.get().reason == Delivery.Reason.OPTED_OUT


def test_wecom_busy_puts_the_event_back_and_a_later_attempt_completes_it(client, staff):
    client.customer("wmA", follows=[{"userid": "manager"}])
    client.fail_next = WeComError("api freq out of limit", errcode=45009, kind="busy")
    ev = add()
    assert process(ev, client) == "pending"
    assert not Contact.objects.exists()  # nothing half-written
    assert process(ev, client) == "done"
    assert Contact.objects.count() == 1


def test_an_id_wecom_no_longer_knows_is_ignored_with_the_reason(client, staff):
    ev = add(ext="wmGONE")
    assert process(ev, client) == "ignored"
    ev.refresh_from_db()
    assert "84061" in ev.error or "invalid" in ev.error
    assert not Contact.objects.exists()


def test_an_event_we_do_not_act_on_is_ignored(client):
    ev = event("unknown_change", UserID="a", ExternalUserID="b")
    assert process(ev, client) == "ignored"


def test_a_row_another_worker_holds_is_skipped(client, staff):
    ev = add()
    CallbackEvent.objects.filter(pk=ev.pk).update(status="processing")
    assert process(ev, client) == "skipped"


def test_a_member_at_their_daily_cap_is_taken_off_the_code_for_the_backup(client, staff, live_code, operator):
    backup = StaffAccount.objects.create(userid="backup", user=operator)
    LiveCode.objects.filter(pk=live_code.pk).update(backup_staff=backup)
    LiveCodeStaff.objects.filter(live_code=live_code).update(daily_cap=1)
    client.customer("wmA", follows=[{"userid": "manager"}])
    process(add(state="lcDOUYIN"), client)
    assert client.way_updates == [("cfg-1", {"user": ["backup"]})]


def test_a_row_the_sweeper_gave_to_another_worker_is_left_to_that_worker(client, staff, monkeypatch):
    from wecom import inbox

    client.customer("wmA", follows=[{"userid": "manager"}])
    ev = add()
    slow = inbox.callback_event_claim(event_id=ev.pk)
    # The sweeper decides the slow worker died and hands the row out again; a second worker claims it.
    CallbackEvent.objects.filter(pk=ev.pk).update(status="pending")
    assert process(ev, client) == "done"
    # The slow worker wakes up: its claim is stale, so the handler does not run again.
    monkeypatch.setattr(events, "callback_event_claim", lambda event_id: slow)

    def ran_twice(*args):
        raise AssertionError("the handler ran on a row another worker had finished")

    monkeypatch.setattr("wecom.adds.contacts_page_apply", ran_twice)
    assert process(ev, client) == "skipped"
    ev.refresh_from_db()
    assert ev.status == "done"


def test_follow_flows_count_adds_losses_and_net_adds_per_day_and_channel(client, staff, live_code, manager, operator):
    from wecom.reports import follow_flows

    day = dt.datetime.fromtimestamp(NOW, tz=dt.UTC)
    for ext in ("wm1", "wm2", "wm3"):
        client.customer(ext, follows=[{"userid": "manager", "createtime": NOW}])
        process(add(ext=ext, at=NOW, state="lcDOUYIN"), client)
    process(event("del_follow_user", at=NOW + 10, UserID="manager", ExternalUserID="wm1"), client)
    process(event("del_external_contact", at=NOW + 20, UserID="manager", ExternalUserID="wm2"), client)
    from analytics.metrics.scope import business_timezone

    local_day = day.astimezone(business_timezone()).date()
    rows = follow_flows(user=manager, start=local_day - dt.timedelta(days=1), end=local_day + dt.timedelta(days=1))
    assert [(r["label"], r["adds"], r["lost"], r["removed"], r["net"]) for r in rows] == [("抖音", 3, 1, 1, 1)]
    by_code = follow_flows(user=manager, start=local_day, end=local_day, by="live_code")
    assert by_code[0]["label"] == "抖音直播间"
    assert follow_flows(user=operator, start=local_day, end=local_day) == []  # not their contacts


def test_an_add_processed_after_wecoms_welcome_window_records_why_and_calls_nobody(client, staff, live_code):
    client.customer("wmA", follows=[{"userid": "manager"}])
    ev = add(state="lcDOUYIN", welcome="W1")
    CallbackEvent.objects.filter(pk=ev.pk).update(received_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=25))
    assert process(ev, client) == "done"
    assert client.welcomes == []
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.FAILED
    assert "20-second" in delivery.error


def test_the_sweeper_deletes_finished_callbacks_after_the_retention_but_keeps_failed_ones(client):
    from wecom import inbox

    old = dt.datetime.now(dt.UTC) - inbox.RETENTION - dt.timedelta(days=1)
    done, failed, recent = (event("unknown", at=NOW + i, UserID="u", ExternalUserID=str(i)) for i in range(3))
    CallbackEvent.objects.filter(pk=done.pk).update(status="done", received_at=old)
    CallbackEvent.objects.filter(pk=failed.pk).update(status="failed", received_at=old)
    CallbackEvent.objects.filter(pk=recent.pk).update(status="done")
    assert inbox.callback_events_purge() == 1
    assert set(CallbackEvent.objects.values_list("pk", flat=True)) == {failed.pk, recent.pk}


def test_adds_waiting_in_the_inbox_are_applied_in_one_batch(client, staff, live_code, django_assert_max_num_queries):
    evs = []
    for i in range(30):
        client.customer(f"wm{i}", name=f"顾客{i}", follows=[{"userid": "manager"}])
        evs.append(add(ext=f"wm{i}", at=NOW + i, state="lcDOUYIN", welcome=f"W{i}"))
    with django_assert_max_num_queries(75):  # one batch: a fixed number of statements, not one set per add
        assert process(evs[0], client) == "done"
    assert set(CallbackEvent.objects.values_list("status", flat=True)) == {"done"}
    assert Contact.objects.count() == 30
    assert Touchpoint.objects.filter(kind=Touchpoint.Kind.ADD_FRIEND).count() == 30
    assert ContactTag.objects.filter(tag__name="直播引流").count() == 30
    assert sorted(code for code, _text, _att in client.welcomes) == sorted(f"W{i}" for i in range(30))
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 30
    # Their own tasks come later and find the rows done.
    assert process(evs[1], client) == "skipped"


def test_a_batch_that_fails_as_a_whole_applies_each_add_on_its_own(client, staff, monkeypatch):
    from wecom import adds

    real = adds.contacts_page_apply

    def fails_for_batches(*, items, context):
        if len(items) > 1:
            raise RuntimeError("as if two workers created the same customer at once")
        return real(items=items, context=context)

    monkeypatch.setattr(adds, "contacts_page_apply", fails_for_batches)
    for ext in ("wm1", "wm2", "wm3"):
        client.customer(ext, follows=[{"userid": "manager"}])
    first = add(ext="wm1")
    add(ext="wm2", at=NOW + 1)
    add(ext="wm3", at=NOW + 2)
    assert process(first, client) == "done"
    assert Contact.objects.count() == 3
    assert set(CallbackEvent.objects.values_list("status", flat=True)) == {"done"}


def test_one_add_wecom_does_not_know_is_ignored_and_the_rest_of_its_batch_applied(client, staff):
    client.customer("wm1", follows=[{"userid": "manager"}])
    first = add(ext="wm1")
    gone = add(ext="wmGONE", at=NOW + 1)
    assert process(first, client) == "done"
    gone.refresh_from_db()
    assert gone.status == "ignored"
    assert Contact.objects.count() == 1


def test_a_welcome_claimed_but_never_started_expires_with_wecoms_window(client, staff, live_code, monkeypatch):
    from wecom import adds, inbox

    monkeypatch.setattr(adds, "welcomes_send", lambda welcomes, client: None)  # the worker dies after commit
    client.customer("wmA", follows=[{"userid": "manager"}])
    process(add(state="lcDOUYIN", welcome="W1"), client)
    assert Delivery.objects.get().status == Delivery.Status.PENDING
    inbox.callback_events_sweep(now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=21))
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.error.startswith("never sent")
    assert client.welcomes == []


def test_a_drainer_applies_every_waiting_add_batch_after_batch_and_frees_its_slot(client, staff):
    from django.core.cache import cache

    from wecom import adds, inbox

    for i in range(120):
        client.customer(f"wm{i}", follows=[{"userid": "manager"}])
        add(ext=f"wm{i}", at=NOW + i)
    assert cache.add(inbox._slot(0), 1)
    assert adds.adds_drain(slot=0, client=client) == 120
    assert Contact.objects.count() == 120
    assert cache.get(inbox._slot(0)) is None
    assert set(CallbackEvent.objects.values_list("status", flat=True)) == {"done"}


def test_a_delete_older_than_a_re_add_already_applied_leaves_the_follow_active(client, staff):
    client.customer("wmA", follows=[{"userid": "manager"}])
    process(add(at=NOW), client)
    process(add(at=NOW + 120), client)  # the customer deleted and added again; the re-add came first
    process(event("del_follow_user", at=NOW + 60, UserID="manager", ExternalUserID="wmA"), client)
    follow = FollowRelationship.objects.get()
    assert follow.deleted_at is None
    assert follow.event_at == dt.datetime.fromtimestamp(NOW + 120, tz=dt.UTC)


def test_an_old_add_retried_after_a_newer_one_changes_nothing(client, staff, live_code):
    client.customer("wmA", follows=[{"userid": "manager"}])
    process(add(at=NOW + 120, state="lcDOUYIN"), client)
    process(add(at=NOW), client)  # a late retry of an earlier add, without the live code
    follow = FollowRelationship.objects.get()
    assert follow.added_at == dt.datetime.fromtimestamp(NOW + 120, tz=dt.UTC)
    assert follow.live_code == live_code


def test_a_delete_processed_before_its_add_gets_its_timeline_entry_and_alert_once(client, staff, manager):
    client.customer("wmA", name="王小美", follows=[{"userid": "manager"}])
    delete = event("del_follow_user", at=NOW + 60, UserID="manager", ExternalUserID="wmA")
    process(delete, client)
    process(add(at=NOW), client)
    assert Touchpoint.objects.filter(kind=Touchpoint.Kind.DELETE_FRIEND).count() == 1
    assert FollowUpTask.objects.filter(assignee=manager).count() == 1


def test_a_delete_whose_add_is_applied_first_but_processed_after_it_is_recorded_once(client, staff, manager):
    client.customer("wmA", follows=[{"userid": "manager"}])
    delete = event("del_follow_user", at=NOW + 60, UserID="manager", ExternalUserID="wmA")  # waiting
    process(add(at=NOW), client)  # sees the waiting delete: ends the follow, writes the timeline entry
    process(delete, client)
    assert Touchpoint.objects.filter(kind=Touchpoint.Kind.DELETE_FRIEND).count() == 1
    assert FollowUpTask.objects.count() == 1


def test_a_delete_whose_add_is_still_being_applied_waits_for_it(client, staff):
    client.customer("wmA", follows=[{"userid": "manager"}])
    pending_add = add(at=NOW)
    delete = event("del_follow_user", at=NOW + 60, UserID="manager", ExternalUserID="wmA")
    CallbackEvent.objects.filter(pk=pending_add.pk).update(status="processing")  # another worker has it
    assert process(delete, client) == "pending"
    CallbackEvent.objects.filter(pk=pending_add.pk).update(status="pending")
    process(pending_add, client)
    assert FollowRelationship.objects.get().deleted_at is not None
