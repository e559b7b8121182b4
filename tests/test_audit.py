"""The audit trail (scrm/audit.py): sign-ins, views, exports, changes, consent, merges, handovers and
erasures are recorded with who, when, from where and how; the trail is append-only, holds no customer's
personal data, and admins read and export it."""

from __future__ import annotations

import csv
import io

import pytest
from auditlog.models import LogEntry
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import translation
from rest_framework.test import APIClient

from contacts import services
from contacts.imports import import_csv
from contacts.models import Contact
from scrm.authentication import api_token_create
from scrm.models import AuditEvent
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action


_BEFORE = {"id": 0}


@pytest.fixture(autouse=True)
def _english(settings):
    settings.AXES_ENABLED = True
    # Session-wide fixtures (the analytics reference data) may have left events: only this test's count.
    _BEFORE["id"] = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    with translation.override("en"):
        yield


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, id__gt=_BEFORE["id"]).order_by("id"))


def _token_client(user, scopes=("read", "write")) -> APIClient:
    _, key = api_token_create(user=user, name="t", scopes=list(scopes))
    client = APIClient(REMOTE_ADDR="203.0.113.9")
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_sign_ins_failures_and_sign_outs_are_recorded(operator):
    operator.set_password("right-password-1")
    operator.save()
    client = Client(REMOTE_ADDR="198.51.100.7")
    client.post(reverse("login"), {"username": "operator", "password": "wrong"})
    client.post(reverse("login"), {"username": "operator", "password": "right-password-1"})
    client.post(reverse("logout"))

    (failed,) = _events(Action.LOGIN_FAILED)
    assert (failed.actor, failed.actor_name, failed.ip, failed.via) == (None, "operator", "198.51.100.7", "web")
    assert "wrong" not in str(failed.detail)  # the password tried is never kept
    (login,) = _events(Action.LOGIN)
    assert (login.actor, login.ip) == (operator, "198.51.100.7")
    assert [event.actor for event in _events(Action.LOGOUT)] == [operator]


def test_viewing_a_contact_on_the_page_and_through_the_api_is_recorded(operator):
    contact = ContactFactory(owner=operator, name="张三")
    client = Client(REMOTE_ADDR="198.51.100.7")
    client.force_login(operator)
    assert client.get(reverse("contacts:detail", args=[contact.pk])).status_code == 200
    assert _token_client(operator).get(f"/api/v1/contacts/{contact.pk}/").status_code == 200

    page, api = _events(Action.CONTACT_VIEWED)
    assert (page.actor, page.target_type, page.target_id, page.via) == (
        operator,
        "contacts.contact",
        str(contact.pk),
        "web",
    )
    assert (api.actor, api.via, api.ip) == (operator, "api", "203.0.113.9")
    # No personal data in the trail: the contact is named by id only.
    assert "张三" not in str(AuditEvent.objects.values_list("actor_name", "detail", "target_id"))


def test_a_field_change_through_the_api_names_the_tokens_user(operator):
    contact = ContactFactory(owner=operator, occupation="老师")
    response = _token_client(operator).patch(f"/api/v1/contacts/{contact.pk}/", {"occupation": "医生"}, format="json")
    assert response.status_code == 200
    entry = LogEntry.objects.get_for_object(contact).filter(action=LogEntry.Action.UPDATE).get()
    assert entry.actor == operator  # DRF authenticated after the middleware; the token named the actor
    assert entry.changes_dict["occupation"] == ["老师", "医生"]
    assert entry.remote_addr == "203.0.113.9"


def test_consent_changes_are_kept_with_time_actor_and_source(operator):
    contact = ContactFactory(owner=operator)
    client = _token_client(operator)
    assert client.post(f"/api/v1/contacts/{contact.pk}/consent/", {"source": "门店扫码"}).status_code == 200
    assert client.post(f"/api/v1/contacts/{contact.pk}/opt-out/").status_code == 200
    assert client.post(f"/api/v1/contacts/{contact.pk}/opt-out/").status_code == 200  # idempotent: no new event

    given, opted_out = _events(Action.CONSENT_CHANGED)
    assert (given.actor, given.target_id, given.detail) == (
        operator,
        str(contact.pk),
        {"consent": "given", "source": "api"},
    )
    assert opted_out.detail == {"consent": "opted_out", "source": "api"}
    assert given.at <= opted_out.at


def test_an_import_records_each_consent_it_gives_or_withdraws(operator):
    kept = ContactFactory(owner=operator, phone="+8613800000001", marketing_consent=True)
    text = "phone,name,marketing_consent\n13800000001,甲,false\n13800000002,乙,true\n13800000003,丙,false\n"
    report = import_csv(kind="contacts", fileobj=io.BytesIO(text.encode()), actor=operator)
    assert report.error_count == 0
    new = Contact.objects.get(phone="+8613800000002")
    events = {(e.target_id, e.detail["consent"]) for e in _events(Action.CONSENT_CHANGED)}
    assert events == {(str(kept.pk), "withdrawn"), (str(new.pk), "given")}
    assert {(e.actor_id, e.via, e.detail["source"]) for e in _events(Action.CONSENT_CHANGED)} == {
        (operator.pk, "import", "import")
    }


def test_merges_handovers_reassignments_and_erasures_are_recorded(manager, operator, other_operator):
    primary = ContactFactory(owner=operator)
    duplicate = ContactFactory(owner=operator)
    services.contact_merge(primary=primary, duplicate=duplicate, actor=manager)
    services.contacts_handover(from_user=operator, to_user=other_operator, actor=manager)
    services.contacts_reassign(contacts=Contact.objects.filter(pk=primary.pk), owner=manager, actor=manager)
    services.contact_erase(contact=primary, actor=manager)

    (merge,) = _events(Action.CONTACTS_MERGED)
    assert (merge.actor, merge.target_id, merge.detail) == (manager, str(primary.pk), {"duplicate": duplicate.pk})
    (handover,) = _events(Action.HANDOVER)
    # Two rows moved: the primary and the merged duplicate's pointer row.
    assert (handover.target_id, handover.count, handover.detail["to_user"]) == (str(operator.pk), 2, other_operator.pk)
    (reassign,) = _events(Action.CONTACTS_REASSIGNED)
    assert (reassign.target_id, reassign.count) == (str(manager.pk), 1)
    (erase,) = _events(Action.CONTACT_ERASED)
    assert (erase.actor, erase.target_id) == (manager, str(primary.pk))
    assert erase.via == ""  # outside a request (a service call)


def test_exports_and_their_downloads_are_recorded_without_search_terms(operator, settings, tmp_path):
    from contacts.exports import export_job_create, export_job_run
    from contacts.models import ExportJob

    settings.MEDIA_ROOT = tmp_path
    ContactFactory(owner=operator, name="李四")
    job = export_job_create(user=operator, source=ExportJob.Source.DASHBOARD, params=[["search", "李四"]])
    export_job_run(job_id=job.pk)
    client = Client()
    client.force_login(operator)
    assert client.get(reverse("contacts:export_download", args=[job.pk])).status_code == 200
    (exported,) = _events(Action.CONTACTS_EXPORTED)
    assert exported.detail == {"filters": ["search"]}
    (downloaded,) = _events(Action.EXPORT_DOWNLOADED)
    assert (downloaded.actor, downloaded.count) == (operator, 1)


def test_the_trail_is_append_only(operator):
    event = AuditEvent.objects.create(action=Action.LOGIN, actor=operator, actor_name="operator")
    event.actor_name = "someone else"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(actor_name="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()


@pytest.mark.postgres
def test_postgresql_refuses_to_change_the_trail_even_in_sql(operator):
    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's")
    event = AuditEvent.objects.create(action=Action.LOGIN, actor=operator, actor_name="operator")
    for sql in (
        "UPDATE scrm_auditevent SET actor_name = 'x' WHERE id = %s",
        "DELETE FROM scrm_auditevent WHERE id = %s",
    ):
        with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).actor_name == "operator"


def test_admins_filter_and_export_the_trail_and_managers_cannot_see_it(admin_user, manager, operator):
    AuditEvent.objects.create(action=Action.LOGIN, actor=operator, actor_name="operator")
    AuditEvent.objects.create(action=Action.LOGIN_FAILED, actor_name="=cmd|' /C calc'!A0")
    url = reverse("admin:scrm_auditevent_changelist")
    admin_user.is_staff = True  # the admin role's permissions (not a superuser) are what is tested
    admin_user.save()
    manager.is_staff = True
    manager.save()
    admin = Client()
    admin.force_login(admin_user)
    page = admin.get(url, {"action__exact": "login_failed"})
    assert page.status_code == 200
    assert page.context["cl"].result_count == AuditEvent.objects.filter(action="login_failed").count()
    response = admin.post(
        url,
        {
            "action": "export_csv",
            "_selected_action": list(AuditEvent.objects.filter(id__gt=_BEFORE["id"]).values_list("pk", flat=True)),
        },
    )
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:3] == ["at", "actor", "action"]
    # The admin's own sign-in (force_login sends user_logged_in) is in the trail too.
    assert sorted((row[1], row[2]) for row in rows[1:]) == [
        ("'=cmd|' /C calc'!A0", "login_failed"),  # a formula-looking name is defused
        ("admin", "login"),
        ("operator", "login"),
    ]
    assert _events(Action.AUDIT_EXPORTED)[0].count == 3
    # The admin cannot change or delete a row.
    event = AuditEvent.objects.filter(action=Action.LOGIN).first()
    assert admin.post(reverse("admin:scrm_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    manager_client = Client()
    manager_client.force_login(manager)
    assert manager_client.get(url).status_code == 403
