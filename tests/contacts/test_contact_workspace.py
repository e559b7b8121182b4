"""The contact page as a workspace: the profile form, follow-up notes, tasks, communities, consistent referral
figures, and scores on a fresh install."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analytics.models import ContactScore
from campaigns.followups import follow_up_task_add
from campaigns.models import FollowUpTask
from communities.models import Community, Membership
from contacts.models import Contact, Touchpoint
from contacts.notes import contact_note_add
from contacts.services import contact_create, contact_merge, contact_update, purchase_record
from tests.factories import ChannelFactory, CommunityFactory, ContactFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"
HTMX = {"HTTP_HX_REQUEST": "true"}


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def detail(contact) -> str:
    return reverse("contacts:detail", args=[contact.pk])


def profile_data(contact, **changes) -> dict:
    values = {
        "name": contact.name,
        "phone": contact.phone or "",
        "email": contact.email,
        "gender": contact.gender,
        "birthday": contact.birthday.isoformat() if contact.birthday else "",
        "region": contact.region,
        "city": contact.city,
        "occupation": contact.occupation,
        "channel": contact.channel_id or "",
        "intent_level": contact.intent_level,
        "owner": contact.owner_id or "",
        **changes,
    }
    return {f"profile-{key}": value for key, value in values.items()}


# --- The profile ------------------------------------------------------------------------------------


def test_the_profile_form_saves_through_contact_update(operator):
    contact = ContactFactory(owner=operator, name="陈小姐", region="上海")
    response = logged_in(operator).post(
        reverse("contacts:profile_edit", args=[contact.pk]),
        profile_data(
            contact, name="陈静", city="徐汇", phone="138 0013 8000", intent_level="high", birthday="1990-03-08"
        ),
    )
    assert response.status_code == 302 and response["Location"].endswith("#profile")
    contact.refresh_from_db()
    assert (contact.name, contact.city, contact.intent_level) == ("陈静", "徐汇", "high")
    assert contact.phone == "+8613800138000" and contact.birthday.isoformat() == "1990-03-08"


def test_profile_errors_are_shown_by_field_and_nothing_is_saved(operator):
    taken = ContactFactory(owner=operator, phone="+8613900000001")
    contact = ContactFactory(owner=operator, name="原名")
    response = logged_in(operator).post(
        reverse("contacts:profile_edit", args=[contact.pk]),
        profile_data(contact, name="新名字", phone="13900000001", email="not-an-email", birthday="2999-01-01"),
        **HTMX,
    )
    assert response.status_code == 200
    form = response.context["profile_form"]
    assert {"email", "birthday"} <= set(form.errors)
    html = response.content.decode()
    assert response.context["profile_open"] and 'data-testid="profile-edit" open' in html
    contact.refresh_from_db()
    assert contact.name == "原名"
    # Valid otherwise, the phone is refused by the service and lands on its field.
    response = logged_in(operator).post(
        reverse("contacts:profile_edit", args=[contact.pk]), profile_data(contact, name="新名字", phone="13900000001")
    )
    assert set(response.context["profile_form"].errors) == {"phone"}
    contact.refresh_from_db()
    assert contact.name == "原名" and taken.phone == "+8613900000001"


def test_operators_get_no_owner_field_and_cannot_give_a_contact_away(operator, other_operator):
    contact = ContactFactory(owner=operator)
    client = logged_in(operator)
    assert "owner" not in client.get(detail(contact)).context["profile_form"].fields
    client.post(reverse("contacts:profile_edit", args=[contact.pk]), profile_data(contact, owner=other_operator.pk))
    contact.refresh_from_db()
    assert contact.owner == operator


def test_managers_change_the_owner_from_the_profile_form(manager, operator, other_operator):
    contact = ContactFactory(owner=operator)
    response = logged_in(manager).post(
        reverse("contacts:profile_edit", args=[contact.pk]), profile_data(contact, owner=other_operator.pk)
    )
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.owner == other_operator


def test_an_unchanged_profile_writes_nothing(operator):
    contact = ContactFactory(owner=operator, channel=ChannelFactory())
    before = Contact.objects.get(pk=contact.pk).updated_at
    response = logged_in(operator).post(reverse("contacts:profile_edit", args=[contact.pk]), profile_data(contact))
    assert response.status_code == 302
    assert Contact.objects.get(pk=contact.pk).updated_at == before


# --- Notes -----------------------------------------------------------------------------------------


def test_a_note_lands_on_the_timeline(operator):
    contact = ContactFactory(owner=operator)
    client = logged_in(operator)
    response = client.post(
        reverse("contacts:note_create", args=[contact.pk]), {"note-text": "客户下周一回来再联系", "note-medium": "chat"}
    )
    assert response.status_code == 302
    note = Touchpoint.objects.get(contact=contact)
    assert (note.kind, note.medium, note.staff, note.metadata) == (
        "note",
        "chat",
        operator,
        {"text": "客户下周一回来再联系"},
    )
    contact.refresh_from_db()
    assert contact.last_interaction_at is None  # staff's record, not the contact engaging
    html = client.get(detail(contact)).content.decode()
    assert "客户下周一回来再联系" in html and 'data-kind="note"' in html


def test_an_empty_or_oversized_note_is_refused_on_its_field(operator):
    contact = ContactFactory(owner=operator)
    client = logged_in(operator)
    for text in ("   ", "长" * 2001):
        response = client.post(
            reverse("contacts:note_create", args=[contact.pk]), {"note-text": text, "note-medium": "wecom"}
        )
        assert response.status_code == 200 and "text" in response.context["note_form"].errors
    assert not Touchpoint.objects.exists()


def test_the_note_service_refuses_bad_input(operator):
    contact = ContactFactory(owner=operator)
    with pytest.raises(ValidationError) as error:
        contact_note_add(contact=contact, actor=operator, text="ok\x00", medium="fax")
    assert set(error.value.message_dict) == {"text", "medium"}
    assert not Touchpoint.objects.exists()


# --- Tasks on the contact page ----------------------------------------------------------------------


def test_a_task_made_on_the_contact_page_is_the_contacts(operator):
    contact = ContactFactory(owner=operator)
    client = logged_in(operator)
    response = client.post(
        reverse("contacts:task_create", args=[contact.pk]),
        {"task-title": "寄试用装", "task-due_at": "2031-01-02T10:00", "task-note": "敏感肌"},
        **HTMX,
    )
    assert response.status_code == 302
    task = FollowUpTask.objects.get()
    assert (task.contact, task.assignee, task.note) == (contact, operator, "敏感肌")
    page = client.get(detail(contact))
    assert [t.pk for t in page.context["open_tasks"]] == [task.pk]
    assert "寄试用装" in page.content.decode()


def test_task_errors_on_the_contact_page_are_shown_by_field(operator):
    contact = ContactFactory(owner=operator)
    response = logged_in(operator).post(
        reverse("contacts:task_create", args=[contact.pk]), {"task-title": "", "task-due_at": "soon"}
    )
    assert response.status_code == 200
    assert {"title", "due_at"} <= set(response.context["task_form"].errors)
    assert response.context["task_open"]
    assert not FollowUpTask.objects.exists()


def test_completing_a_task_from_the_contact_page_puts_the_outcome_on_the_timeline(operator):
    contact = ContactFactory(owner=operator)
    task = follow_up_task_add(actor=operator, contact=contact, title="电话回访")
    client = logged_in(operator)
    response = client.post(
        reverse("campaigns:task_done", args=[task.pk]),
        {f"task{task.pk}-outcome": "约好周六到店", f"task{task.pk}-medium": "wecom", "next": detail(contact)},
        **HTMX,
    )
    assert response.status_code == 302 and response["Location"] == detail(contact)
    page = client.get(detail(contact))
    assert page.context["open_tasks"] == []
    html = page.content.decode()
    assert 'data-kind="task_done"' in html and "约好周六到店" in html and "电话回访" in html


# --- Communities -----------------------------------------------------------------------------------


def test_adding_the_contact_to_a_community_the_user_runs(operator):
    contact = ContactFactory(owner=operator)
    mine = CommunityFactory(owner=operator, name="宝妈交流群")
    CommunityFactory(name="别人的群")  # not the operator's: not offered
    CommunityFactory(owner=operator, name="已归档", status=Community.Status.ARCHIVED)
    client = logged_in(operator)
    offered = client.get(detail(contact)).context["join_form"].fields["community"].queryset
    assert list(offered) == [mine]
    response = client.post(reverse("contacts:community_join", args=[contact.pk]), {"join-community": mine.pk})
    assert response.status_code == 302
    membership = Membership.objects.get()
    assert (membership.community, membership.contact, membership.join_source) == (mine, contact, "staff")
    assert client.get(detail(contact)).context["join_form"] is None  # nothing left to join


def test_a_community_the_user_cannot_see_reads_as_unknown(operator, other_operator):
    contact = ContactFactory(owner=operator)
    theirs = CommunityFactory(owner=other_operator)
    response = logged_in(operator).post(
        reverse("contacts:community_join", args=[contact.pk]), {"join-community": theirs.pk}
    )
    assert response.status_code == 302
    assert not Membership.objects.exists()


# --- Scoping and CSRF ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("contacts:profile_edit", {"profile-name": "x", "profile-gender": "unknown", "profile-intent_level": "none"}),
        ("contacts:note_create", {"note-text": "x", "note-medium": "wecom"}),
        ("contacts:task_create", {"task-title": "x"}),
        ("contacts:community_join", {"join-community": "1"}),
    ],
)
def test_another_operators_contact_is_a_404_and_unchanged(operator, other_operator, name, data):
    theirs = ContactFactory(owner=other_operator, name="别人的客户")
    CommunityFactory(owner=operator)
    response = logged_in(operator).post(reverse(name, args=[theirs.pk]), data)
    assert response.status_code == 404
    assert Contact.objects.get(pk=theirs.pk).name == "别人的客户"
    assert not Touchpoint.objects.exists() and not FollowUpTask.objects.exists() and not Membership.objects.exists()


def test_the_workspace_forms_need_the_csrf_token(operator):
    contact = ContactFactory(owner=operator)
    client = Client(enforce_csrf_checks=True)
    client.login(username=operator.username, password=PASSWORD)
    response = client.post(
        reverse("contacts:note_create", args=[contact.pk]), {"note-text": "x", "note-medium": "wecom"}
    )
    assert response.status_code == 403
    assert not Touchpoint.objects.exists()


def test_the_page_uses_htmx_for_its_sections(operator):
    contact = ContactFactory(owner=operator)
    follow_up_task_add(actor=operator, contact=contact, title="回访")
    html = logged_in(operator).get(detail(contact)).content.decode()
    for url in ("profile_edit", "note_create", "task_create"):
        assert f'hx-post="{reverse(f"contacts:{url}", args=[contact.pk])}"' in html
    assert 'hx-target="#followup"' in html and 'hx-select-oob="#messages,#timeline"' in html
    assert "<script>" not in html and "onclick" not in html


# --- Referral figures ------------------------------------------------------------------------------


def test_referral_count_list_and_stored_fact_agree(operator, other_operator):
    referrer = contact_create(name="老客", owner=operator)
    mine = [contact_create(name=f"朋友{i}", owner=operator, referred_by=referrer) for i in range(2)]
    theirs = contact_create(name="同事的客户", owner=other_operator, referred_by=referrer)
    duplicate = contact_create(name="重复", owner=operator, referred_by=referrer)
    contact_merge(primary=mine[0], duplicate=duplicate)  # a merged referral no longer counts
    contact_update(contact=theirs, referred_by=None)  # nor one that was moved away
    other = contact_create(name="又一个", owner=other_operator)
    contact_update(contact=other, referred_by=referrer)
    referrer.refresh_from_db()
    live = Contact.objects.live().filter(referred_by=referrer).count()
    assert referrer.referral_count == live == 3
    page = logged_in(operator).get(detail(referrer))
    assert {r.pk for r in page.context["referrals"]} == {c.pk for c in mine}
    assert page.context["referrals_visible"] == 2 and page.context["referrals_hidden"] == 1
    html = page.content.decode()
    assert 'data-testid="fact-referrals">3<' in html and 'data-testid="referrals-hidden"' in html


# --- Scores ----------------------------------------------------------------------------------------


def test_managers_recompute_scores_from_the_contact_page(manager, settings, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    contact = ContactFactory()
    purchase_record(contact=contact, external_order_id="A-1", purchased_at=contact.acquired_at, amount=100)
    client = logged_in(manager)
    page = client.get(detail(contact))
    assert page.context["can_rescore"] and 'data-testid="not-scored"' in page.content.decode()
    assert client.get(reverse("contacts:scores_refresh", args=[contact.pk])).status_code == 405
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(reverse("contacts:scores_refresh", args=[contact.pk]))
    assert response.status_code == 302 and len(callbacks) == 1
    assert ContactScore.objects.filter(contact=contact).exists()
    assert 'data-testid="score-layer"' in client.get(detail(contact)).content.decode()


def test_operators_cannot_recompute_scores(operator, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    contact = ContactFactory(owner=operator)
    client = logged_in(operator)
    assert not client.get(detail(contact)).context["can_rescore"]
    assert client.post(reverse("contacts:scores_refresh", args=[contact.pk])).status_code == 403
    assert not ContactScore.objects.exists()


def test_the_demo_data_is_scored_and_has_follow_ups_when_it_is_loaded():
    call_command("seed_demo", "--contacts", "80", "--seed", "4", stdout=io.StringIO())
    live = Contact.objects.live().count()
    assert ContactScore.objects.count() == live == 80
    assert FollowUpTask.objects.filter(status="open", reminded_at__isnull=False).exists()
    assert Touchpoint.objects.filter(kind="note").exists() and Touchpoint.objects.filter(kind="task_done").exists()
    assert FollowUpTask.objects.filter(status="done").exclude(outcome="").exists()


# --- Query count -----------------------------------------------------------------------------------


def test_the_contact_page_runs_as_many_queries_for_many_rows_as_for_one(manager, operator):
    contact = ContactFactory(owner=operator)
    client = logged_in(manager)

    def add():
        follow_up_task_add(actor=manager, contact=contact, title=f"回访{FollowUpTask.objects.count()}")
        contact_note_add(contact=contact, actor=manager, text="记录")
        CommunityFactory(owner=operator)
        contact_create(name="朋友", owner=operator, referred_by=contact)

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(detail(contact)).status_code == 200
        return len(captured)

    add()
    one = count()
    for _ in range(4):
        add()
    assert count() == one
