"""The workbench (工作台, ``/``) and the operators' own report figures.

A small shop, every figure worked out by hand: the clock is fixed at Wednesday 12 March 2025, 15:00 in
Shanghai, so "this week" is Monday 10 – Wednesday 12 March and "the same days of last week" Monday 3 –
Wednesday 5 March. The operator's contacts are ``a…``, their colleague's ``b…``: nothing of the
colleague's may ever count for the operator.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analytics import metrics
from analytics.workbench import queries, team
from analytics.workbench.week import WorkWeek
from campaigns.models import Broadcast, Delivery, FollowUpTask, MessageTemplate
from campaigns.services import follow_up_task_create
from communities.services import membership_join
from contacts.models import ImportJob
from contacts.services import contact_create, purchase_record, purchase_refund, touchpoint_record
from scrm import roles
from tests.factories import ChannelSpendFactory, CommunityFactory, ProductFactory, UserFactory
from wecom.models import CallbackEvent, FollowRelationship, StaffAccount, SyncRun

TZ = zoneinfo.ZoneInfo(settings.TIME_ZONE)
NOW = dt.datetime(2025, 3, 12, 15, 0, tzinfo=TZ)
PASSWORD = "pass-word-123"


def at(month: int, day: int, hour: int = 10, minute: int = 0, year: int = 2025) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=TZ)


@pytest.fixture
def clock(monkeypatch):
    """The workbench sees NOW as the present."""
    real_at = WorkWeek.at.__func__
    monkeypatch.setattr(WorkWeek, "at", classmethod(lambda cls, now=None: real_at(cls, now or NOW)))
    return WorkWeek.at()


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _contact(name, owner, acquired_at, **values):
    return contact_create(name=name, owner=owner, acquired_at=acquired_at, **values)


def _buy(contact, order, when, amount, product=None):
    items = [{"product": product}] if product is not None else []
    purchase, _created = purchase_record(
        contact=contact, external_order_id=order, purchased_at=when, amount=Decimal(amount), items=items
    )
    return purchase


def _follow(contact, staff, n, *, deleted_at=None, ended_by=""):
    return FollowRelationship.objects.create(
        contact=contact,
        staff=staff,
        external_userid=f"wm-{n}",
        added_at=contact.acquired_at,
        deleted_at=deleted_at,
        ended_by=ended_by,
    )


@pytest.fixture
def shop(clock, operator, other_operator, manager):
    """The operator's week, hand-counted:

    adds: this week a1 (Mon), a2 (today) = 2, today 1; the same days of last week a3 (Tue 4th) = 1 (a4, on
    Friday the 7th, is last week but not the same days);
    conversions: a1 (first paid purchase Tue 11th) = 1; last week a5 (Tue 4th) = 1 (a3's first purchase is
    on Thursday the 6th);
    revenue: 100 + 30 (a1) = 130, a5's 80 of today was refunded; last week 50 (a5);
    losses: a2 deleted the operator on Tue 11th = 1; last week a3 removed on Wed 5th = 1.
    """
    a1 = _contact("甲一", operator, at(3, 10, 9))
    a2 = _contact("甲二", operator, at(3, 12, 8))
    a3 = _contact("甲三", operator, at(3, 4))
    a4 = _contact("甲四", operator, at(3, 7))
    a5 = _contact("甲五", operator, at(1, 5), birthday=dt.date(1990, 3, 14))
    b1 = _contact("乙一", other_operator, at(3, 11))
    b2 = _contact("乙二", other_operator, at(3, 4), birthday=dt.date(1991, 3, 13))

    cycle_product = ProductFactory(name="益生菌", repurchase_cycle_days=7)
    _buy(a1, "A1-1", at(3, 11), "100.00")
    _buy(a1, "A1-2", at(3, 12, 11), "30.00")
    _buy(a5, "A5-1", at(3, 4, 12), "50.00", product=cycle_product)  # due again Tue 11th
    purchase_refund(purchase=_buy(a5, "A5-2", at(3, 12, 9), "80.00", product=cycle_product))
    _buy(a3, "A3-1", at(3, 6), "70.00")
    _buy(b1, "B1-1", at(3, 11), "999.00", product=cycle_product)
    _buy(b2, "B2-1", at(3, 5), "999.00", product=cycle_product)  # the colleague's: due Wed 12th

    staff_a = StaffAccount.objects.create(userid="op-a", user=operator, name="小李")
    staff_b = StaffAccount.objects.create(userid="op-b", user=other_operator, name="小王")
    _follow(a1, staff_a, 1)
    _follow(a2, staff_a, 2, deleted_at=at(3, 11, 20), ended_by=FollowRelationship.EndedBy.CUSTOMER)
    _follow(a3, staff_a, 3, deleted_at=at(3, 5), ended_by=FollowRelationship.EndedBy.STAFF)
    _follow(b1, staff_b, 4, deleted_at=at(3, 11), ended_by=FollowRelationship.EndedBy.CUSTOMER)

    def task(contact, assignee, title, due_at):
        return follow_up_task_create(assignee=assignee, contact=contact, title=title, due_at=due_at)

    overdue = task(a1, operator, "回访甲一", at(3, 11))
    overdue_today = task(a3, operator, "回访甲三", at(3, 12, 9))
    later_today = task(a2, operator, "欢迎甲二", at(3, 12, 18))
    task(a4, operator, "明天再说", at(3, 13))
    done = task(a5, operator, "已经做了", at(3, 10))
    FollowUpTask.objects.filter(pk=done.pk).update(status=FollowUpTask.Status.DONE, done_at=at(3, 10, 11))
    task(b1, other_operator, "同事的任务", at(3, 11))

    template = MessageTemplate.objects.create(name="上新", body="{name} 您好")
    theirs = Broadcast.objects.create(
        name="经理的群发", template=template, created_by=manager, status=Broadcast.Status.SENT
    )
    mine = Broadcast.objects.create(name="我的群发", template=template, created_by=operator, status="sent")
    for broadcast, contact, sent_at in (
        (theirs, a1, at(3, 11)),
        (theirs, a2, at(3, 11, 11)),
        (theirs, b1, at(3, 11)),
        (mine, a5, at(3, 12, 9)),
        (mine, a3, at(2, 20)),  # more than a week ago: no longer listed
    ):
        Delivery.objects.create(
            broadcast=broadcast,
            contact=contact,
            template=template,
            medium="wecom",
            status=Delivery.Status.SENT,
            sent_at=sent_at,
            gateway="wecom",
            gateway_state="awaiting_confirmation",
        )
    return {
        "a1": a1,
        "a2": a2,
        "a3": a3,
        "a4": a4,
        "a5": a5,
        "b1": b1,
        "b2": b2,
        "tasks": {"overdue": overdue, "overdue_today": overdue_today, "later_today": later_today},
        "broadcasts": {"theirs": theirs, "mine": mine},
        "product": cycle_product,
    }


# --- The calendar -----------------------------------------------------------------------------------


def test_the_week_runs_from_monday_in_the_business_time_zone():
    # 23:30 on Sunday 16 March in Shanghai is still that Sunday, although it is Sunday 15:30 UTC.
    week = WorkWeek.at(dt.datetime(2025, 3, 16, 15, 30, tzinfo=dt.UTC))
    assert (week.today, week.monday, week.sunday) == (dt.date(2025, 3, 16), dt.date(2025, 3, 10), dt.date(2025, 3, 16))
    monday = WorkWeek.at(dt.datetime(2025, 3, 16, 16, 30, tzinfo=dt.UTC))
    assert (monday.today, monday.monday) == (dt.date(2025, 3, 17), dt.date(2025, 3, 17))
    assert (monday.last_monday, monday.last_same_day) == (dt.date(2025, 3, 10), dt.date(2025, 3, 10))


# --- The operator's figures -------------------------------------------------------------------------


def test_the_operators_figures_of_this_week_against_the_same_days_of_last_week(shop, operator, clock):
    figures = queries.staff_figures(operator, clock, owner_id=operator.pk)[operator.pk]
    assert figures == queries.Figures(
        adds=2,
        adds_last=1,
        adds_today=1,
        conversions=1,
        conversions_last=1,
        revenue=Decimal("130.00"),
        revenue_last=Decimal("50.00"),
        losses=1,
        losses_last=1,
    )


def test_the_figures_are_the_reports_own(shop, operator, clock):
    for period, (adds, conversions, revenue) in (
        (clock.this_week(operator), (2, 1, Decimal("130.00"))),
        (clock.last_week(operator), (1, 1, Decimal("50.00"))),
    ):
        kpis = metrics.kpis(period)
        assert (kpis.leads, kpis.new_customers, kpis.revenue) == (adds, conversions, revenue)


def test_a_refunded_purchase_is_no_revenue(shop, operator, clock):
    before = queries.staff_figures(operator, clock, owner_id=operator.pk)[operator.pk].revenue
    purchase_refund(purchase=shop["a1"].purchases.get(external_order_id="A1-2"))
    after = queries.staff_figures(operator, clock, owner_id=operator.pk)[operator.pk]
    assert (before, after.revenue, after.conversions) == (Decimal("130.00"), Decimal("100.00"), 1)


def test_another_operators_contacts_never_count(shop, operator, other_operator, clock):
    mine = queries.staff_figures(operator, clock)
    assert set(mine) == {operator.pk}, "an operator's figures hold only their own contacts"
    # Naming the colleague as owner finds nothing: the scope is what the operator may see.
    assert queries.staff_figures(operator, clock, owner_id=other_operator.pk) == {}
    theirs = queries.staff_figures(other_operator, clock, owner_id=other_operator.pk)[other_operator.pk]
    assert (theirs.adds, theirs.revenue, theirs.losses) == (1, Decimal("999.00"), 1)


def test_the_manager_sees_each_staff_members_figures_and_the_team_total(shop, manager, operator, other_operator, clock):
    rows, total = team.team_table(manager, clock)
    by_user = {row.user_id: row for row in rows}
    assert by_user[operator.pk].figures == queries.staff_figures(operator, clock, owner_id=operator.pk)[operator.pk]
    assert (by_user[operator.pk].overdue, by_user[operator.pk].later_today) == (2, 1)
    colleague = by_user[other_operator.pk]
    assert (colleague.figures.adds, colleague.figures.adds_last, colleague.overdue) == (1, 1, 1)
    assert manager.pk in by_user and by_user[manager.pk].figures == queries.Figures()
    assert (total.adds, total.revenue, total.losses, total.conversions) == (3, Decimal("1129.00"), 2, 2)


# --- The operator's blocks --------------------------------------------------------------------------


def test_tasks_due_today_and_overdue_are_the_assignees_open_ones(shop, operator, clock):
    block = queries.tasks_due(operator, clock, assignee_id=operator.pk)
    assert (block.overdue, block.later_today) == (2, 1)
    tasks = shop["tasks"]
    assert [task.pk for task in block.rows] == [
        tasks["overdue"].pk,
        tasks["overdue_today"].pk,
        tasks["later_today"].pk,
    ]


def test_customers_due_to_buy_again_follow_the_repurchase_trigger(shop, operator, clock):
    block = queries.repurchase_due(operator, clock, owner_id=operator.pk)
    # a5 bought the 7-day product on Tue 4th: due Tue 11th. The refunded order of today is no repurchase.
    assert (block.customers, block.reminders) == (1, 1)
    (row,) = block.rows
    assert (row["contact_id"], row["product_name"]) == (shop["a5"].pk, "益生菌")
    assert row["due_at"] == at(3, 11, 12)
    # Bought again (paid): no longer due.
    _buy(shop["a5"], "A5-3", at(3, 12, 10), "50.00", product=shop["product"])
    assert queries.repurchase_due(operator, clock, owner_id=operator.pk).customers == 0


@pytest.mark.postgres
def test_the_repurchase_block_gives_up_in_time_and_says_so(shop, operator, clock, monkeypatch):
    monkeypatch.setattr(queries, "REPURCHASE_TIMEOUT_MS", 50)

    def slow(*args, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(1)")

    monkeypatch.setattr(queries, "repurchase_due_rows", slow)
    assert queries.repurchase_due(operator, clock, owner_id=operator.pk).timed_out
    text = client_for(operator).get(reverse("workbench:block", args=["repurchase"]), HTTP_HX_REQUEST="true")
    assert 'data-testid="wb-repurchase-timeout"' in text.content.decode()


def test_a_purchase_due_next_week_is_not_due_this_week(shop, operator, clock):
    later = _contact("甲六", operator, at(1, 6))
    _buy(later, "A6-1", at(3, 10, 8), "50.00", product=shop["product"])  # due Mon 17th
    rows = queries.repurchase_due(operator, clock, owner_id=operator.pk).rows
    assert later.pk not in {row["contact_id"] for row in rows}


def test_birthdays_this_week_in_order_of_the_days(shop, operator, clock):
    also = _contact("甲生日", operator, at(1, 6), birthday=dt.date(1985, 3, 10))
    block = queries.birthdays(operator, clock, owner_id=operator.pk)
    assert [(row["pk"], row["day"]) for row in block.rows] == [
        (also.pk, dt.date(2025, 3, 10)),
        (shop["a5"].pk, dt.date(2025, 3, 14)),
    ]
    assert block.count == 2  # b2's birthday (13th) is the colleague's


def test_people_born_on_29_february_celebrate_on_the_28th_in_other_years(operator):
    leap_born = _contact("闰日", operator, at(1, 6), birthday=dt.date(1992, 2, 29))
    week = WorkWeek.at(dt.datetime(2025, 2, 26, 12, tzinfo=TZ))  # 2025 has no 29 February
    (row,) = queries.birthdays(operator, week, owner_id=operator.pk).rows
    assert (row["pk"], row["day"]) == (leap_born.pk, dt.date(2025, 2, 28))
    leap_year = WorkWeek.at(dt.datetime(2028, 2, 28, 12, tzinfo=TZ))  # 2028 has one
    assert [r["day"] for r in queries.birthdays(operator, leap_year, owner_id=operator.pk).rows] == [
        dt.date(2028, 2, 29)
    ]


def test_friendships_ended_this_week(shop, operator, clock):
    block = queries.friendships_ended(operator, clock, owner_id=operator.pk)
    assert block.count == 1
    (row,) = block.rows
    assert (row["contact_id"], row["ended_by"], row["staff_name"]) == (shop["a2"].pk, "customer", "小李")


def test_contacts_that_went_quiet_this_week(shop, operator, clock):
    spoke = _contact("甲说过话", operator, at(1, 6))
    touchpoint_record(contact=spoke, medium="chat", kind="message_in", occurred_at=at(2, 9))  # 30 days: 11 Mar
    silent = _contact("甲没说话", operator, at(2, 8, 12))  # never interacted: 30 days on 10 Mar
    earlier = _contact("甲早就沉默", operator, at(1, 6))
    touchpoint_record(contact=earlier, medium="chat", kind="message_in", occurred_at=at(2, 1))  # 3 Mar
    block = queries.went_quiet(operator, clock, owner_id=operator.pk)
    assert [row["pk"] for row in block.rows] == [silent.pk, spoke.pk]


def test_a_long_list_is_counted_up_to_a_cap(shop, operator, clock, monkeypatch):
    monkeypatch.setattr(queries, "COUNT_CAP", 2)
    for i in range(4):
        _contact(f"甲沉默{i}", operator, at(2, 8, 12, i))  # never interacted: 30 days on Monday
    block = queries.went_quiet(operator, clock, owner_id=operator.pk, limit=1)
    assert (block.count, block.capped, block.shown_count, len(block.rows)) == (2, True, "2+", 1)
    assert queries.went_quiet(operator, clock, owner_id=operator.pk, limit=8).count == 4


def test_messages_waiting_for_confirmation_per_broadcast(shop, operator, clock):
    rows = queries.awaiting_confirmation(operator, clock, owner_id=operator.pk)
    by_name = {row["broadcast_name"]: row["messages"] for row in rows}
    # The manager's broadcast reached a1 and a2 (b1 is the colleague's); of the operator's own, a3's is a
    # month old.
    assert by_name == {"经理的群发": 2, "我的群发": 1}


# --- The page ---------------------------------------------------------------------------------------


def test_the_operators_page_shows_their_day(shop, operator, clock):
    page = client_for(operator).get("/")
    assert page.status_code == 200
    text = page.content.decode()
    for testid in ("wb-figures", "wb-tasks", "wb-new", "wb-birthdays", "wb-lost", "wb-awaiting", "wb-repurchase"):
        assert f'data-testid="{testid}"' in text, testid
    assert 'data-testid="wb-team"' not in text and 'data-testid="wb-approvals"' not in text
    assert "乙一" not in text and "同事的任务" not in text
    assert re.search(r'data-testid="wb-figure-revenue-value">¥130\.00<', text)
    assert re.search(r'data-testid="wb-tasks-count">3<', text)


def test_each_task_has_a_done_button_that_comes_back_to_the_workbench(shop, operator, clock):
    client = client_for(operator)
    text = client.get("/").content.decode()
    task = shop["tasks"]["overdue"]
    assert f'action="{reverse("campaigns:task_done", args=[task.pk])}"' in text
    response = client.post(reverse("campaigns:task_done", args=[task.pk]), {"next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    task.refresh_from_db()
    assert task.status == FollowUpTask.Status.DONE
    assert re.search(r'data-testid="wb-tasks-count">2<', client.get("/").content.decode())


def test_counts_have_thousands_separators(operator, clock):
    from django.template import Context, Template

    rendered = Template("{% load workbench %}{{ n|thousands }} {% amount m %}").render(
        Context({"n": 1234567, "m": Decimal("12345.6"), "currency_symbol": "¥"})
    )
    assert rendered == "1,234,567 ¥12,345.60"


def test_empty_blocks_say_what_they_mean(operator, clock):
    text = client_for(operator).get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    for testid in ("wb-tasks-empty", "wb-new-empty", "wb-birthdays-empty", "wb-ended-empty", "wb-quiet-empty"):
        assert f'data-testid="{testid}"' in text, testid
    assert "No follow-ups due today" in text


def test_the_slow_blocks_load_after_the_page(shop, operator, clock):
    client = client_for(operator)
    page = client.get("/").content.decode()
    for name, shown in (("repurchase", "甲五"), ("awaiting", "我的群发")):
        url = reverse("workbench:block", args=[name])
        assert f'hx-get="{url}"' in page and f'href="{url}"' in page  # without JavaScript: a link
        partial = _block(client, name)
        assert partial.lstrip().startswith("<section") and shown in partial and "<html" not in partial
        standalone = client.get(url).content.decode()
        assert "<html" in standalone and shown in standalone
    assert client.get(reverse("workbench:block", args=["nothing"])).status_code == 404


def test_an_operators_groups_block_shows_only_the_groups_they_run(attention, operator, other_operator, clock):
    CommunityFactory(owner=other_operator, name="同事的群", capacity=1)
    text = _block(client_for(operator), "groups")
    assert "快满的群" in text and "同事的群" not in text


def test_the_workbench_needs_a_login():
    response = Client().get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_workbench_is_the_landing_page_after_login(operator):
    response = Client().post("/login/", {"username": operator.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    # A page the login was sent from still wins.
    back = Client().post(
        "/login/?next=/contacts/", {"username": operator.username, "password": PASSWORD, "next": "/contacts/"}
    )
    assert back["Location"] == "/contacts/"


def test_workbench_is_the_first_navigation_item_and_active_only_on_itself(operator, clock):
    client = client_for(operator)
    nav = re.search(r'<nav class="mainnav".*?</nav>', client.get("/").content.decode(), re.S).group(0)
    links = re.findall(r'<a href="([^"]+)" class="(active)?"', nav)
    assert links[0] == ("/", "active")
    assert all(active == "" for _href, active in links[1:])
    contacts_nav = re.search(r'<nav class="mainnav".*?</nav>', client.get("/contacts/").content.decode(), re.S).group(0)
    assert re.search(r'<a href="/" class="">', contacts_nav)
    assert re.search(r'<a href="/contacts/" class="active"', contacts_nav)


# --- The links land on the right filtered pages -----------------------------------------------------


def _links(text: str) -> dict[str, str]:
    return {testid: unescape(href) for href, testid in re.findall(r'href="([^"]+)"[^>]*data-testid="([^"]+)"', text)}


def test_the_figure_links_land_on_the_contacts_behind_them(shop, operator, clock):
    client = client_for(operator)
    links = _links(client.get("/").content.decode())
    expectations = {
        "wb-figure-adds": {shop["a1"].pk, shop["a2"].pk},
        "wb-figure-conversions": {shop["a1"].pk},
        "wb-figure-revenue": {shop["a1"].pk},  # a5's purchase of this week was refunded
        "wb-new-today": {shop["a2"].pk},
        "wb-new-week": {shop["a1"].pk, shop["a2"].pk},
    }
    for testid, expected in expectations.items():
        page = client.get(links[testid])
        assert page.status_code == 200, testid
        shown = {contact.pk for contact in page.context["page_obj"].object_list}
        assert shown == expected, testid


def test_the_task_link_lists_the_same_tasks(shop, operator, clock):
    client = client_for(operator)
    url = _links(client.get("/").content.decode())["wb-tasks-all"]
    query = parse_qs(urlsplit(url).query)
    assert query["status"] == ["open"] and query["due_to"] == ["2025-03-12"]
    page = client.get(url)
    shown = {task.pk for task in page.context["page_obj"].object_list}
    assert shown == {task.pk for task in shop["tasks"].values()}


def _block(client, name: str) -> str:
    return client.get(reverse("workbench:block", args=[name]), HTTP_HX_REQUEST="true").content.decode()


def test_a_waiting_broadcast_links_to_its_page_only_when_the_operator_may_open_it(shop, operator, clock):
    text = _block(client_for(operator), "awaiting")
    mine, theirs = shop["broadcasts"]["mine"], shop["broadcasts"]["theirs"]
    assert f'href="{reverse("campaigns:broadcast_detail", args=[mine.pk])}"' in text
    assert f'href="{reverse("campaigns:broadcast_detail", args=[theirs.pk])}"' not in text
    assert "经理的群发" in text


def test_the_team_tables_links_land_on_each_members_contacts(shop, manager, operator, clock):
    client = client_for(manager)
    text = client.get("/").content.decode()
    row = re.search(rf'data-testid="wb-team-row" data-user="{operator.pk}">.*?</tr>', text, re.S).group(0)
    links = _links(row)
    new = client.get(links["wb-team-new"]).context["page_obj"].object_list
    assert {c.pk for c in new} == {shop["a1"].pk, shop["a2"].pk}
    converted = client.get(links["wb-team-conversions"]).context["page_obj"].object_list
    assert {c.pk for c in converted} == {shop["a1"].pk}
    tasks = client.get(links["wb-team-overdue"]).context["page_obj"].object_list
    assert {t.assignee_id for t in tasks} == {operator.pk}


# --- The manager's page -----------------------------------------------------------------------------


@pytest.fixture
def attention(shop, manager, operator, clock):
    """What a manager must look at: a broadcast to approve, a failed import, a failed sync, a failed
    callback, a nearly full group and a quiet one."""
    template = MessageTemplate.objects.get()
    Broadcast.objects.create(
        name="待审批的群发",
        template=template,
        created_by=operator,
        status=Broadcast.Status.PENDING_APPROVAL,
        scheduled_at=at(3, 13),
    )
    job = ImportJob.objects.create(
        kind=ImportJob.Kind.CONTACTS, status=ImportJob.Status.FAILED, filename="坏文件.csv", created_by=operator
    )
    ImportJob.objects.filter(pk=job.pk).update(created_at=at(3, 11))
    run = SyncRun.objects.create(status=SyncRun.Status.FAILED, error="40001 invalid secret")
    SyncRun.objects.filter(pk=run.pk).update(started_at=at(3, 11))
    event = CallbackEvent.objects.create(key="k-1", status=CallbackEvent.Status.FAILED, message="<xml/>")
    CallbackEvent.objects.filter(pk=event.pk).update(received_at=at(3, 12))
    full = CommunityFactory(owner=operator, name="快满的群", capacity=3)
    for contact in (shop["a1"], shop["a2"], shop["a3"]):
        membership_join(community=full, contact=contact, joined_at=at(3, 11))
    quiet = CommunityFactory(owner=operator, name="安静的群")
    membership_join(community=quiet, contact=shop["a4"], joined_at=at(1, 10))
    lively = CommunityFactory(owner=operator, name="活跃的群")
    membership_join(community=lively, contact=shop["a5"], joined_at=at(1, 10))
    touchpoint_record(contact=shop["a5"], medium="group", kind="check_in", occurred_at=at(3, 9), community=lively)
    from communities.models import Community

    Community.objects.filter(pk__in=[quiet.pk, lively.pk]).update(created_at=at(1, 1))
    Community.objects.filter(pk=full.pk).update(created_at=at(3, 10))
    return {"job": job, "full": full, "quiet": quiet, "lively": lively}


def test_the_managers_page_shows_the_team_and_what_needs_attention(attention, manager, operator, clock):
    page = client_for(manager).get("/")
    assert page.status_code == 200
    text = page.content.decode()
    for testid in ("wb-team", "wb-approvals", "wb-imports", "wb-wecom", "wb-groups"):
        assert f'data-testid="{testid}"' in text, testid
    assert "待审批的群发" in text and "坏文件.csv" in text and "40001 invalid secret" in text
    assert f'href="{reverse("contacts:import_detail", args=[attention["job"].pk])}"' in text
    assert f'href="{reverse("campaigns:broadcast_pending")}"' in text
    assert f'href="{reverse("wecom:connection")}"' in text
    assert 'data-testid="wb-callbacks-failed"' in text
    groups = _block(client_for(manager), "groups")
    assert "快满的群" in groups and f'href="{reverse("communities:detail", args=[attention["full"].pk])}"' in groups


def test_groups_needing_attention_are_the_nearly_full_and_the_quiet(attention, manager, clock):
    block = team.groups_needing_attention(manager, clock)
    found = {row["name"]: (row["full_enough"] >= 0, row["quiet"]) for row in block.rows}
    # The full group is too young to be called quiet; the lively one had a check-in this week.
    assert found == {"快满的群": (True, False), "安静的群": (False, True)}


def test_a_manager_has_their_own_day_too(shop, manager, clock):
    own = _contact("经理的客户", manager, at(3, 11))
    text = client_for(manager).get("/?view=mine").content.decode()
    assert 'data-testid="wb-tasks"' in text and 'data-testid="wb-team"' not in text
    assert "经理的客户" in text and "甲一" not in text
    assert own.pk


def test_operators_have_no_team_view(shop, operator, clock):
    text = client_for(operator).get("/?view=team").content.decode()
    assert 'data-testid="wb-team"' not in text and 'data-testid="workbench-views"' not in text


# --- The query count does not grow with the data ----------------------------------------------------


def _grow(operator, other_operator, n: int, start: int = 0) -> None:
    """More of everything the workbench reads, for both operators."""
    template = MessageTemplate.objects.first()
    broadcast = Broadcast.objects.first()
    staff = StaffAccount.objects.get(user=operator)
    product = ProductFactory(repurchase_cycle_days=14)
    for i in range(start, start + n):
        for owner in (operator, other_operator):
            contact = _contact(
                f"增长{owner.pk}-{i}", owner, at(3, 10 + i % 3, 9), birthday=dt.date(1990, 3, 11 + i % 5)
            )
            _buy(contact, f"G{owner.pk}-{i}", at(2, 25 + i % 3), "10.00", product=product)
            follow_up_task_create(assignee=owner, contact=contact, title=f"任务{i}", due_at=at(3, 11))
            Delivery.objects.create(
                broadcast=broadcast,
                contact=contact,
                template=template,
                medium="wecom",
                status="sent",
                sent_at=at(3, 11),
                gateway_state="awaiting_confirmation",
            )
        _follow(contact, staff, 100 + i, deleted_at=at(3, 11), ended_by="customer")
    CommunityFactory(owner=operator, capacity=1)


@pytest.mark.parametrize("who", ["operator", "manager"])
def test_the_number_of_queries_does_not_grow_with_the_data(
    attention, who, operator, other_operator, manager, clock, django_assert_max_num_queries
):
    user = {"operator": operator, "manager": manager}[who]
    client = client_for(user)
    client.get("/")  # sessions, permissions, content types: warmed up
    with CaptureQueriesContext(connection) as small:
        assert client.get("/").status_code == 200
    blocks = ("repurchase", "awaiting") if who == "operator" else ("groups",)
    block_queries = {}
    for name in blocks:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("workbench:block", args=[name]), HTTP_HX_REQUEST="true").status_code == 200
        block_queries[name] = len(captured)
    _grow(operator, other_operator, 12)
    with django_assert_max_num_queries(len(small)):
        assert client.get("/").status_code == 200
    for name in blocks:
        with django_assert_max_num_queries(block_queries[name]):
            client.get(reverse("workbench:block", args=[name]), HTTP_HX_REQUEST="true")


# --- The operators' own report figures --------------------------------------------------------------


@pytest.fixture
def march_spend(shop):
    ChannelSpendFactory(start_date=dt.date(2025, 3, 1), end_date=dt.date(2025, 3, 31), amount=Decimal("3100.00"))


REPORTS = ("overview", "funnel", "cohorts", "channels", "trend", "decomposition", "layers", "communities", "koc")


@pytest.mark.parametrize("name", REPORTS)
def test_operators_open_every_report_with_their_own_figures(shop, operator, name):
    CommunityFactory(owner=operator)
    response = client_for(operator).get(reverse(f"analytics:{name}"))
    assert response.status_code == 200
    text = response.content.decode()
    assert "乙一" not in text
    if response.context.get("ready") and name != "koc":
        assert 'data-testid="own-figures-note"' in text
        assert "owner" not in response.context["form"].fields


def test_an_operators_overview_counts_only_their_contacts_and_no_spend(shop, march_spend, operator):
    params = {"date_from": "2025-03-01", "date_to": "2025-03-12"}
    response = client_for(operator).get(reverse("analytics:overview"), params)
    kpis = response.context["kpis"]
    # Leads of March (to the 12th): a1, a2, a3, a4 — not the colleague's b1, b2.
    assert (kpis.leads, kpis.revenue) == (4, Decimal("250.00"))
    # Spend belongs to channels, not to an operator: nothing built on it is shown.
    assert (kpis.spend, kpis.cac, kpis.cpl, kpis.roi, kpis.ltv_cac) == (None, None, None, None, None)
    assert all(row.spend is None and row.cac is None for row in response.context["channels"])
    assert 'data-testid="spend-note"' in response.content.decode()


def test_an_operator_cannot_widen_the_reports_with_an_owner(shop, operator, other_operator):
    params = {"date_from": "2025-03-01", "date_to": "2025-03-12", "owner": other_operator.pk}
    kpis = client_for(operator).get(reverse("analytics:overview"), params).context["kpis"]
    assert kpis.leads == 4


def test_managers_reports_are_unchanged(shop, march_spend, manager):
    params = {"date_from": "2025-03-01", "date_to": "2025-03-12"}
    response = client_for(manager).get(reverse("analytics:overview"), params)
    kpis = response.context["kpis"]
    assert kpis.leads == 6 and kpis.spend == Decimal("1200.00")
    assert 'data-testid="own-figures-note"' not in response.content.decode()


def test_reports_are_in_the_operators_navigation(operator, clock):
    assert f'href="{reverse("analytics:overview")}"' in client_for(operator).get("/").content.decode()


def test_the_analytics_api_stays_the_teams(operator):
    # The API has no owner pinning: operators keep getting 403 there (docs/reports.md).
    assert client_for(operator).get("/api/v1/analytics/kpis/").status_code == 403


def test_a_user_without_either_permission_gets_403(db):
    nobody = UserFactory(username="nobody", role=roles.INTEGRATOR)
    nobody.groups.clear()
    assert client_for(nobody).get(reverse("analytics:overview")).status_code == 403
