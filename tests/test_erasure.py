"""PIPL erasure leaves the person nowhere: a marker planted in every field that can hold something about
them is searched for in every text and JSON column of every table after the erasure."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.apps import apps
from django.db import models
from django.db.models.functions import Cast
from django.utils import timezone

from campaigns.models import AutomationRun, Delivery, FollowUpTask, MessageTemplate, OutboxMessage
from contacts import services
from contacts.models import Contact
from tests.factories import ContactFactory, PurchaseFactory, TagFactory, TouchpointFactory
from wecom.models import CallbackEvent, FollowRelationship, StaffAccount

pytestmark = pytest.mark.django_db

MARKER = "ZQXMARKER"


def _plant(manager) -> Contact:
    contact = ContactFactory(
        owner=manager,
        name=f"王{MARKER}",
        phone="+8613800138000",
        email=f"{MARKER.lower()}@example.com",
        external_id=f"ext-{MARKER}",
        wecom_external_userid=f"wm{MARKER}",
        wechat_unionid=f"un{MARKER}",
        region=f"区{MARKER}",
        city=f"市{MARKER}",
        occupation=f"职{MARKER}",
        attributes={"note": MARKER, "nested": {"deep": [MARKER]}},
        birthday=dt.date(1990, 1, 1),
        marketing_consent=True,
        consent_source=f"src{MARKER}",
    )
    contact.tag_links.create(tag=TagFactory(name="vip"))
    TouchpointFactory(contact=contact, metadata={"said": MARKER})
    PurchaseFactory(contact=contact, source=f"s{MARKER}"[:32])
    template = MessageTemplate.objects.create(name="t", body="{name}")
    task = FollowUpTask.objects.create(assignee=manager, contact=contact, title=f"回访{MARKER}", note=MARKER)
    run = AutomationRun.objects.create(
        automation=_automation(template), contact=contact, key="k", due_at=timezone.now(), error=MARKER
    )
    delivery = Delivery.objects.create(
        automation_run=run, contact=contact, medium="wecom", template=template, error=MARKER
    )
    OutboxMessage.objects.create(
        delivery=delivery, contact=contact, medium="wecom", subject=MARKER, body=f"你好{MARKER}"
    )
    # A one-off message a staff member wrote on the contact's page.
    Delivery.objects.create(
        one_off_key="form-key-1", contact=contact, medium="email", subject=MARKER, body=f"您好{MARKER}"
    )
    staff = StaffAccount.objects.create(userid="s1", user=manager)
    FollowRelationship.objects.create(
        contact=contact, staff=staff, external_userid=f"wm{MARKER}", remark=MARKER, description=MARKER
    )
    CallbackEvent.objects.create(
        key=hashlib.sha256(MARKER.encode()).hexdigest(),
        event="change_external_contact",
        change_type="add_external_contact",
        userid="s1",
        external_userid=f"wm{MARKER}",
        payload={"ExternalUserID": f"wm{MARKER}"},
        message=f"<xml>{MARKER}</xml>",
        status="done",
    )
    services.contact_update(contact=contact, actor=manager, occupation=f"新职{MARKER}")  # a change history entry
    services.contact_consent_give(contact=contact, source=f"src{MARKER}", actor=manager)
    # Files: an uploaded import that named the person (with a rejected row's original cells) and an export.
    from django.core.files.base import ContentFile

    from contacts.exports import export_job_create, export_job_run
    from contacts.models import ExportJob, ImportJob

    upload = ImportJob(kind="contacts", status="done", created_by=manager, finished_at=timezone.now())
    upload.errors = [{"line": 2, "field": "email", "message": "bad", "row": {"name": MARKER}}]
    upload.file.save("people.csv", ContentFile(f"name,phone\n王{MARKER},13800138000\n".encode()), save=True)
    export = export_job_create(user=manager, source=ExportJob.Source.API, params=[])
    export_job_run(job_id=export.pk)
    assert task.pk
    return contact


def _automation(template):
    from campaigns.models import Automation

    return Automation.objects.create(name="a", trigger="contact_created", action="send_template", template=template)


def _places_holding(marker: str) -> list[str]:
    """Every (model.field) whose text, or JSON as text, contains ``marker``."""
    found = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, models.JSONField):
                rows = model._default_manager.annotate(_t=Cast(field.name, models.TextField())).filter(
                    _t__contains=marker
                )
            elif isinstance(field, models.CharField | models.TextField):
                rows = model._default_manager.filter(**{f"{field.name}__contains": marker})
            else:
                continue
            if rows.exists():
                found.append(f"{model._meta.label}.{field.name}")
    return found


def _files_holding(root, marker: str) -> list[str]:
    return [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and marker.encode() in path.read_bytes()
    ]


def test_erasure_leaves_the_marker_in_no_table_and_no_file(
    manager, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    contact = _plant(manager)
    assert len(_places_holding(MARKER)) >= 15  # the search does find the planted marker
    assert "auditlog.LogEntry.changes" in _places_holding(MARKER)  # the change history held it too
    assert len(_files_holding(settings.MEDIA_ROOT, MARKER)) == 2  # the upload and the export
    with django_capture_on_commit_callbacks(execute=True):
        services.contact_erase(contact=contact, actor=manager)
    assert _places_holding(MARKER) == []
    assert _files_holding(settings.MEDIA_ROOT, MARKER) == []
    contact.refresh_from_db()
    assert contact.erased_at is not None
    assert contact.purchases.count() == 1  # history stays, anonymous


def test_the_personal_data_export_holds_every_section_and_is_scoped(manager, operator, other_operator):
    from django.test import Client
    from rest_framework.test import APIClient

    contact = _plant(operator)
    api = APIClient()
    api.force_authenticate(operator)
    data = api.get(f"/api/v1/contacts/{contact.pk}/personal-data/").json()
    assert data["profile"][0]["name"] == f"王{MARKER}"
    assert data["profile"][0]["attributes"]["nested"]["deep"] == [MARKER]
    for section in ("tags", "touchpoints", "purchases", "messages", "follow_up_tasks", "wecom_follows"):
        assert data[section], section
    assert MARKER in data["messages"][0]["outbox_message__body"]
    csv_response = api.get(f"/api/v1/contacts/{contact.pk}/personal-data/", {"as": "csv"})
    body = b"".join(csv_response.streaming_content).decode("utf-8-sig")
    assert body.startswith("section,row,field,value") and MARKER in body
    page = Client()
    page.force_login(operator)
    assert page.get(f"/contacts/{contact.pk}/personal-data/").json()["contact_id"] == contact.pk
    # Another operator's contact is "not found", on the page and in the API.
    stranger = APIClient()
    stranger.force_authenticate(other_operator)
    assert stranger.get(f"/api/v1/contacts/{contact.pk}/personal-data/").status_code == 404
    outsider = Client()
    outsider.force_login(other_operator)
    assert outsider.get(f"/contacts/{contact.pk}/personal-data/").status_code == 404
