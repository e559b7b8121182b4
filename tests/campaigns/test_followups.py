"""Follow-up tasks (跟进任务) as a daily tool: the set-based service, reminders, completing with an outcome,
the task list's views and form, and the tasks API."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns import followups
from campaigns.followups import (
    follow_up_reminders_mark,
    follow_up_task_add,
    follow_up_task_finish,
    follow_up_tasks_create,
)
from campaigns.models import FollowUpTask
from campaigns.tasks import follow_up_reminders_tick
from contacts.models import Contact, Touchpoint
from contacts.services import contact_erase
from scrm import roles
from tests.factories import ContactFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def error_fields(response) -> set:
    body = response.json()
    return {error["field"] for error in body["errors"]}


def _in(hours: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(hours=hours)


# --- follow_up_tasks_create: the set-based service -------------------------------------------------


def test_bulk_create_makes_one_open_task_per_contact_for_its_owner(manager, operator, other_operator):
    mine = [ContactFactory(owner=operator) for _ in range(3)]
    theirs = ContactFactory(owner=other_operator)
    unowned = ContactFactory(owner=None)
    due = _in(24)
    ids = [c.pk for c in [*mine, theirs, unowned]]
    created = follow_up_tasks_create(actor=manager, contact_ids=ids, title=" 回访 ", due_at=due, note="问问使用感受")
    assert created == 5
    tasks = {t.contact_id: t for t in FollowUpTask.objects.all()}
    assert {tasks[c.pk].assignee_id for c in mine} == {operator.pk}
    assert tasks[theirs.pk].assignee_id == other_operator.pk
    assert tasks[unowned.pk].assignee_id == manager.pk  # nobody owns it: the manager who asked
    task = tasks[mine[0].pk]
    assert (task.title, task.note, task.status, task.due_at) == ("回访", "问问使用感受", "open", due)
    assert task.created_by == manager and task.outcome == "" and task.remind_at is None


def test_bulk_create_ignores_contacts_the_actor_cannot_see_like_unknown_ids(operator, other_operator):
    mine, theirs = ContactFactory(owner=operator), ContactFactory(owner=other_operator)
    merged = ContactFactory(owner=operator, merged_into=mine)
    created = follow_up_tasks_create(actor=operator, contact_ids=[mine.pk, theirs.pk, merged.pk, 987654], title="回访")
    assert created == 1
    assert list(FollowUpTask.objects.values_list("contact_id", "assignee_id")) == [(mine.pk, operator.pk)]


def test_an_operators_tasks_go_to_themselves_even_with_an_inactive_owner(manager):
    gone = UserFactory(username="left", role=roles.OPERATOR)
    contact = ContactFactory(owner=gone)
    gone.is_active = False
    gone.save()
    assert follow_up_tasks_create(actor=manager, contact_ids=[contact.pk], title="交接回访") == 1
    assert FollowUpTask.objects.get().assignee == manager


def test_bulk_create_takes_an_explicit_assignee_the_actor_may_assign(manager, operator, other_operator):
    contacts = [ContactFactory(owner=operator) for _ in range(2)]
    assert follow_up_tasks_create(actor=manager, contact_ids=[c.pk for c in contacts], title="x", assignee=operator)
    assert set(FollowUpTask.objects.values_list("assignee_id", flat=True)) == {operator.pk}
    # The assignee must see every contact: another operator cannot take operator's contacts.
    with pytest.raises(ValidationError) as error:
        follow_up_tasks_create(actor=manager, contact_ids=[c.pk for c in contacts], title="y", assignee=other_operator)
    assert set(error.value.message_dict) == {"assignee"}
    assert FollowUpTask.objects.count() == 2


def test_an_operator_cannot_assign_tasks_to_someone_else(operator, other_operator):
    contact = ContactFactory(owner=operator)
    with pytest.raises(ValidationError) as error:
        follow_up_tasks_create(actor=operator, contact_ids=[contact.pk], title="x", assignee=other_operator)
    assert set(error.value.message_dict) == {"assignee"}
    assert follow_up_tasks_create(actor=operator, contact_ids=[contact.pk], title="x", assignee=operator) == 1


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "长" * 201}, "title"),
        ({"title": "bad\x00"}, "title"),
        ({"due_at": dt.datetime(1800, 1, 1, tzinfo=dt.UTC)}, "due_at"),
        ({"due_at": "tomorrow"}, "due_at"),
        ({"remind_at": dt.datetime(3001, 1, 1, tzinfo=dt.UTC)}, "remind_at"),
        ({"note": "x" * 10_001}, "note"),
        ({"contact_ids": []}, "contact_ids"),
        ({"contact_ids": ["one"]}, "contact_ids"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(manager, values, field):
    contact = ContactFactory()
    arguments = {"actor": manager, "contact_ids": [contact.pk], "title": "回访", **values}
    with pytest.raises(ValidationError) as error:
        follow_up_tasks_create(**arguments)
    assert field in error.value.message_dict
    assert not FollowUpTask.objects.exists()


def test_a_title_of_200_characters_is_accepted(manager):
    contact = ContactFactory()
    assert follow_up_tasks_create(actor=manager, contact_ids=[contact.pk], title="长" * 200) == 1


def test_bulk_create_is_safe_to_retry(manager):
    contacts = [ContactFactory() for _ in range(3)]
    due = _in(5)
    assert (
        follow_up_tasks_create(actor=manager, contact_ids=[c.pk for c in contacts[:2]], title="回访", due_at=due) == 2
    )
    assert follow_up_tasks_create(actor=manager, contact_ids=[c.pk for c in contacts], title="回访", due_at=due) == 1
    assert FollowUpTask.objects.count() == 3
    # Another title, or another due time, is another task.
    assert follow_up_tasks_create(actor=manager, contact_ids=[contacts[0].pk], title="回访", due_at=_in(9)) == 1


@pytest.mark.parametrize("actor_name", ["manager", "operator"])
def test_bulk_create_runs_as_many_queries_for_many_contacts_as_for_one(request, actor_name):
    actor = request.getfixturevalue(actor_name)
    owner = actor if actor_name == "operator" else UserFactory(role=roles.OPERATOR)

    def queries(n: int) -> int:
        ids = [ContactFactory(owner=owner).pk for _ in range(n)]
        actor_fresh = type(actor).objects.get(pk=actor.pk)  # no permission cache carried over
        with CaptureQueriesContext(connection) as captured:
            assert follow_up_tasks_create(actor=actor_fresh, contact_ids=ids, title=f"回访{n}") == n
        return len(captured)

    assert queries(1) == queries(40)


# --- follow_up_task_add: one task ----------------------------------------------------------------


def test_one_task_goes_to_the_contacts_owner_and_repeating_it_returns_the_same(manager, operator):
    contact = ContactFactory(owner=operator)
    due = _in(3)
    task = follow_up_task_add(actor=manager, contact=contact, title="回访", due_at=due, remind_at=_in(2))
    assert task.assignee == operator and task.created_by == manager
    assert follow_up_task_add(actor=manager, contact=contact, title="回访", due_at=due).pk == task.pk
    assert FollowUpTask.objects.count() == 1


def test_one_task_about_a_hidden_contact_reads_as_unknown(operator, other_operator):
    theirs = ContactFactory(owner=other_operator)
    with pytest.raises(ValidationError) as error:
        follow_up_task_add(actor=operator, contact=theirs, title="回访")
    assert set(error.value.message_dict) == {"contact"}
    assert not FollowUpTask.objects.exists()


# --- Completing with an outcome --------------------------------------------------------------------


def test_completing_records_the_outcome_and_a_task_done_touchpoint(operator):
    contact = ContactFactory(owner=operator)
    task = follow_up_task_add(actor=operator, contact=contact, title="电话回访")
    task = follow_up_task_finish(task=task, user=operator, outcome=" 约好下周再买两盒 ", medium="chat")
    assert (task.status, task.outcome, task.completed_by) == ("done", "约好下周再买两盒", operator)
    touchpoint = Touchpoint.objects.get(contact=contact)
    assert (touchpoint.kind, touchpoint.medium, touchpoint.staff) == ("task_done", "chat", operator)
    assert touchpoint.metadata == {"task": task.pk, "title": "电话回访", "outcome": "约好下周再买两盒"}
    # Staff's own record: the contact did not engage.
    contact.refresh_from_db()
    assert contact.last_interaction_at is None and contact.stage == Contact.Stage.LEAD


def test_completing_twice_keeps_the_first_outcome_and_records_once(operator):
    task = follow_up_task_add(actor=operator, contact=ContactFactory(owner=operator), title="回访")
    follow_up_task_finish(task=task, user=operator, outcome="第一次")
    follow_up_task_finish(task=task, user=operator, outcome="第二次")
    task.refresh_from_db()
    assert task.outcome == "第一次"
    assert Touchpoint.objects.filter(kind="task_done").count() == 1


def test_only_the_assignee_or_a_manager_completes(operator, other_operator, manager):
    task = follow_up_task_add(actor=operator, contact=ContactFactory(owner=operator), title="回访")
    with pytest.raises(PermissionDenied):
        follow_up_task_finish(task=task, user=other_operator, outcome="x")
    assert FollowUpTask.objects.get(pk=task.pk).status == "open" and not Touchpoint.objects.exists()
    assert follow_up_task_finish(task=task, user=manager, outcome="主管代办").completed_by == manager


@pytest.mark.parametrize(("values", "field"), [({"outcome": "x" * 10_001}, "outcome"), ({"medium": "fax"}, "medium")])
def test_a_bad_outcome_is_refused_and_the_task_stays_open(operator, values, field):
    task = follow_up_task_add(actor=operator, contact=ContactFactory(owner=operator), title="回访")
    with pytest.raises(ValidationError) as error:
        follow_up_task_finish(task=task, user=operator, **values)
    assert set(error.value.message_dict) == {field}
    assert FollowUpTask.objects.get(pk=task.pk).status == "open" and not Touchpoint.objects.exists()


def test_erasing_the_contact_scrubs_the_outcome(operator, settings):
    contact = ContactFactory(owner=operator)
    task = follow_up_task_add(actor=operator, contact=contact, title="回访")
    follow_up_task_finish(task=task, user=operator, outcome="她住在静安区")
    contact_erase(contact=contact)
    task.refresh_from_db()
    assert task.outcome == "" and Touchpoint.objects.get(contact=contact).metadata == {}


# --- Reminders ---------------------------------------------------------------------------------------


def test_the_reminder_tick_marks_passed_reminders_once(operator):
    contact = ContactFactory(owner=operator)
    due = follow_up_task_add(actor=operator, contact=contact, title="已到提醒", remind_at=_in(-1))
    later = follow_up_task_add(actor=operator, contact=contact, title="稍后提醒", remind_at=_in(2))
    follow_up_task_add(actor=operator, contact=contact, title="不提醒")
    done = follow_up_task_add(actor=operator, contact=contact, title="已完成", remind_at=_in(-2))
    follow_up_task_finish(task=done, user=operator)
    assert follow_up_reminders_tick.apply().get() == 1
    due.refresh_from_db()
    first = due.reminded_at
    assert first is not None
    assert follow_up_reminders_mark() == 0  # beat firing twice changes nothing
    due.refresh_from_db()
    assert due.reminded_at == first
    assert FollowUpTask.objects.get(pk=later.pk).reminded_at is None
    assert follow_up_reminders_mark(now=_in(3)) == 1


def test_reminders_head_my_tasks(operator, other_operator):
    contact = ContactFactory(owner=operator)
    task = follow_up_task_add(actor=operator, contact=contact, title="提醒我回访", remind_at=_in(-1))
    follow_up_task_add(
        actor=other_operator, contact=ContactFactory(owner=other_operator), title="别人的", remind_at=_in(-1)
    )
    follow_up_reminders_mark()
    response = logged_in(operator).get(reverse("campaigns:task_list"))
    assert [t.pk for t in response.context["reminders"]] == [task.pk]
    html = response.content.decode()
    assert 'data-testid="task-reminders"' in html and html.index("提醒我回访") < html.index('data-testid="task-row"')


# --- The task list: views and counts -----------------------------------------------------------------


@pytest.fixture
def day_of_tasks(operator, other_operator):
    mine = ContactFactory(owner=operator)
    start, end = followups.business_day()
    now = timezone.now()
    rows = {
        "today": follow_up_task_add(
            actor=operator, contact=mine, title="今天", due_at=max(start, now) + (end - max(start, now)) / 2
        ),
        "overdue": follow_up_task_add(actor=operator, contact=mine, title="逾期", due_at=start - dt.timedelta(hours=3)),
        "later": follow_up_task_add(actor=operator, contact=mine, title="下周", due_at=end + dt.timedelta(days=6)),
        "nodue": follow_up_task_add(actor=operator, contact=mine, title="没截止"),
        "theirs": follow_up_task_add(
            actor=other_operator,
            contact=ContactFactory(owner=other_operator),
            title="同事的",
            due_at=start - dt.timedelta(hours=2),
        ),
    }
    return rows


def _titles(response) -> set[str]:
    return {t.title for t in response.context["tasks"]}


def test_operators_views_and_counts(operator, day_of_tasks):
    client = logged_in(operator)
    response = client.get(reverse("campaigns:task_list"))
    assert response.context["view"] == "mine"
    assert _titles(response) == {"今天", "逾期", "下周", "没截止"}
    counts = {v["key"]: v["count"] for v in response.context["views"]}
    assert counts == {"mine": 4, "today": 1, "overdue": 1}
    assert response.context["by_staff"] is None
    assert _titles(client.get(reverse("campaigns:task_list"), {"view": "today"})) == {"今天"}
    assert _titles(client.get(reverse("campaigns:task_list"), {"view": "overdue"})) == {"逾期"}
    # "everyone's" is not an operator's view: it falls back to their own.
    assert _titles(client.get(reverse("campaigns:task_list"), {"view": "all"})) == {"今天", "逾期", "下周", "没截止"}


def test_managers_see_open_tasks_by_staff_member(manager, operator, other_operator, day_of_tasks):
    client = logged_in(manager)
    response = client.get(reverse("campaigns:task_list"))
    assert response.context["view"] == "all" and len(response.context["tasks"]) == 5
    by_staff = {row["assignee"]: row for row in response.context["by_staff"]}
    assert (by_staff[operator.pk]["open"], by_staff[operator.pk]["today"], by_staff[operator.pk]["overdue"]) == (
        4,
        1,
        1,
    )
    assert (by_staff[other_operator.pk]["open"], by_staff[other_operator.pk]["overdue"]) == (1, 1)
    overdue = client.get(reverse("campaigns:task_list"), {"view": "overdue", "assignee": other_operator.pk})
    assert _titles(overdue) == {"同事的"}
    # The manager's own views hold their own tasks (none here).
    assert _titles(client.get(reverse("campaigns:task_list"), {"view": "mine"})) == set()


def test_the_task_list_runs_as_many_queries_for_many_tasks_as_for_one(manager, operator):
    client = logged_in(manager)

    def add():
        contact = ContactFactory(owner=operator)
        task = follow_up_task_add(actor=manager, contact=contact, title="回访", due_at=_in(-1), remind_at=_in(-2))
        done = follow_up_task_add(actor=manager, contact=contact, title="已完成")
        follow_up_task_finish(task=done, user=manager, outcome="好")
        FollowUpTask.objects.filter(pk=task.pk).update(assignee=manager)
        follow_up_reminders_mark()

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("campaigns:task_list"), {"status": "all"}).status_code == 200
        return len(captured)

    add()
    one = count()
    for _ in range(5):
        add()
    assert count() == one


# --- The task list: creating and completing ----------------------------------------------------------


def test_creating_a_task_on_the_task_list(operator):
    contact = ContactFactory(owner=operator, name="陈小姐")
    client = logged_in(operator)
    page = client.get(reverse("campaigns:task_list"))
    assert "assignee" not in page.context["create_form"].fields
    response = client.post(
        reverse("campaigns:task_create"),
        {"contact": contact.pk, "title": "回访陈小姐", "due_at": "2031-05-06T10:30", "remind_at": "2031-05-06T09:00"},
    )
    assert response.status_code == 302
    task = FollowUpTask.objects.get()
    assert (task.assignee, task.contact, task.created_by) == (operator, contact, operator)
    assert timezone.localtime(task.due_at).strftime("%Y-%m-%d %H:%M") == "2031-05-06 10:30"
    assert timezone.localtime(task.remind_at).strftime("%H:%M") == "09:00"


def test_task_form_errors_are_shown_on_their_fields_and_nothing_is_written(operator, other_operator):
    theirs = ContactFactory(owner=other_operator)
    response = logged_in(operator).post(
        reverse("campaigns:task_create"), {"contact": theirs.pk, "title": "", "due_at": "not a date"}
    )
    assert response.status_code == 200
    form = response.context["create_form"]
    assert {"contact", "title", "due_at"} <= set(form.errors)
    assert response.context["create_open"] and 'id="new-task"' in response.content.decode()
    assert not FollowUpTask.objects.exists()


def test_managers_assign_tasks_from_the_form(manager, operator):
    contact = ContactFactory(owner=operator)
    response = logged_in(manager).post(
        reverse("campaigns:task_create"), {"contact": contact.pk, "title": "回访", "assignee": operator.pk}
    )
    assert response.status_code == 302
    assert FollowUpTask.objects.get().assignee == operator


def test_the_contact_search_offers_only_visible_contacts(operator, other_operator):
    ContactFactory(owner=operator, name="王芳", phone="+8613800001234")
    ContactFactory(owner=other_operator, name="王丽", phone="+8613800005678")
    response = logged_in(operator).get(reverse("campaigns:task_contact_options"), {"q": "王"})
    html = response.content.decode()
    assert "王芳 · 1234" in html and "王丽" not in html
    assert "8613800001234" not in html  # never the whole number


def test_completing_from_the_task_list_with_an_outcome(operator):
    contact = ContactFactory(owner=operator)
    task = follow_up_task_add(actor=operator, contact=contact, title="回访")
    response = logged_in(operator).post(
        reverse("campaigns:task_done", args=[task.pk]),
        {
            f"task{task.pk}-outcome": "客户已下单",
            f"task{task.pk}-medium": "offline",
            "next": "/campaigns/tasks/?view=today",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/campaigns/tasks/?view=today"
    task.refresh_from_db()
    assert (task.status, task.outcome) == ("done", "客户已下单")
    assert Touchpoint.objects.get(contact=contact, kind="task_done").medium == "offline"


def test_a_colleagues_task_cannot_be_completed(operator, other_operator):
    task = follow_up_task_add(actor=other_operator, contact=ContactFactory(owner=other_operator), title="回访")
    assert logged_in(operator).post(reverse("campaigns:task_done", args=[task.pk])).status_code == 404
    assert FollowUpTask.objects.get(pk=task.pk).status == "open"


# --- API -----------------------------------------------------------------------------------------------


def test_api_create_defaults_to_the_owner_and_takes_a_reminder(manager_api, operator):
    contact = ContactFactory(owner=operator)
    body = {"contact": contact.pk, "title": "回访", "due_at": _in(24).isoformat(), "remind_at": _in(20).isoformat()}
    response = manager_api.post("/api/v1/tasks/", body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["assignee"] == operator.pk and data["remind_at"] and data["reminded_at"] is None
    assert data["outcome"] == "" and data["status"] == "open"
    again = manager_api.post("/api/v1/tasks/", body, format="json")
    assert again.json()["id"] == data["id"] and FollowUpTask.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "长" * 201}, "title"),
        ({"due_at": "1800-01-01T00:00:00Z"}, "due_at"),
        ({"remind_at": "3001-01-01T00:00:00Z"}, "remind_at"),
    ],
)
def test_api_create_refuses_bad_input_naming_the_field(operator_api, operator, body, field):
    contact = ContactFactory(owner=operator)
    response = operator_api.post("/api/v1/tasks/", {"contact": contact.pk, "title": "回访", **body}, format="json")
    assert response.status_code == 400 and error_fields(response) == {field}
    assert not FollowUpTask.objects.exists()


def test_api_complete_takes_an_outcome(operator_api, operator):
    contact = ContactFactory(owner=operator)
    task = follow_up_task_add(actor=operator, contact=contact, title="回访")
    response = operator_api.post(
        f"/api/v1/tasks/{task.pk}/complete/", {"outcome": "已约到店", "medium": "offline"}, format="json"
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["status"], data["outcome"], data["completed_by"]) == ("done", "已约到店", operator.pk)
    assert Touchpoint.objects.get(contact=contact).metadata["outcome"] == "已约到店"
    bad = operator_api.post(f"/api/v1/tasks/{task.pk}/complete/", {"medium": "fax"}, format="json")
    assert bad.status_code == 400 and error_fields(bad) == {"medium"}


def test_api_complete_of_another_operators_task_is_a_404(operator_api, other_operator):
    task = follow_up_task_add(actor=other_operator, contact=ContactFactory(owner=other_operator), title="回访")
    assert operator_api.post(f"/api/v1/tasks/{task.pk}/complete/", {"outcome": "x"}, format="json").status_code == 404
    assert FollowUpTask.objects.get(pk=task.pk).outcome == ""
