"""Contact exports as background jobs (contacts.exports.jobs): the list's filters are recorded, a worker
writes the file, the user follows the progress and downloads it; a job is complete or failed, never
silently short; files expire; only the user who asked sees the job."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import time

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from rest_framework.test import APIClient

from contacts.exports import export_job_create, export_job_run, export_jobs_sweep
from contacts.models import Contact, ExportJob
from contacts.services import contact_erase
from scrm.authentication import api_token_create
from tests.factories import ContactFactory, UserFactory


@pytest.fixture(autouse=True)
def _setup(settings, tmp_path):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MEDIA_ROOT = tmp_path / "media"
    with translation.override("en"):
        yield


def _rows(data: bytes) -> list[dict]:
    text = data.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


def _download(client, job_id: int, url: str | None = None) -> list[dict]:
    response = client.get(url or reverse("contacts:export_download", args=[job_id]))
    assert response.status_code == 200, response.status_code
    assert "attachment" in response["Content-Disposition"]
    return _rows(b"".join(response.streaming_content))


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- The API ---------------------------------------------------------------------------------------


def test_the_api_queues_an_export_and_serves_the_file_when_done(manager_api, django_capture_on_commit_callbacks):
    ContactFactory(external_id="A", stage=Contact.Stage.CUSTOMER)
    ContactFactory(external_id="B", stage=Contact.Stage.LEAD)
    ContactFactory(external_id="C", stage=Contact.Stage.REPEAT)

    with django_capture_on_commit_callbacks(execute=True):
        response = manager_api.post("/api/v1/contacts/export/?stage=customer&stage=repeat&page=3")
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert response.json()["status"] == "queued"  # answered before the worker ran

    job = manager_api.get(f"/api/v1/exports/{job_id}/").json()
    assert (job["status"], job["total_rows"], job["written_rows"], job["progress_percent"]) == ("done", 2, 2, 100)
    assert job["params"] == [["stage", "customer"], ["stage", "repeat"]]  # the page is not a filter
    assert job["download_url"].endswith(f"/api/v1/exports/{job_id}/download/")
    rows = _download(manager_api, job_id, job["download_url"])
    assert sorted(row["external_id"] for row in rows) == ["A", "C"]


def test_an_operator_exports_only_their_own_contacts_and_sees_only_their_own_exports(
    operator, operator_api, other_operator, manager_api, django_capture_on_commit_callbacks
):
    ContactFactory(external_id="MINE", owner=operator)
    ContactFactory(external_id="THEIRS", owner=other_operator)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = operator_api.post("/api/v1/contacts/export/").json()["id"]
    assert [row["external_id"] for row in _download(operator_api, job_id, f"/api/v1/exports/{job_id}/download/")] == [
        "MINE"
    ]
    # Bulk personal data: not even a manager reaches another user's export file (404, like an unknown id).
    assert manager_api.get(f"/api/v1/exports/{job_id}/").status_code == 404
    assert manager_api.get(f"/api/v1/exports/{job_id}/download/").status_code == 404
    assert manager_api.get("/api/v1/exports/").json()["count"] == 0
    other = APIClient()
    other.force_authenticate(other_operator)
    assert other.get(f"/api/v1/exports/{job_id}/download/").status_code == 404


def test_a_bad_filter_is_a_400_and_no_job(manager_api):
    response = manager_api.post("/api/v1/contacts/export/?acquired_to=not-a-date", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "acquired_to"
    assert not ExportJob.objects.exists()


def test_the_file_is_404_until_the_export_is_done(manager, manager_api):
    job = export_job_create(user=manager, source=ExportJob.Source.API, params=[])
    assert manager_api.get(f"/api/v1/exports/{job.pk}/download/").status_code == 404
    assert manager_api.get(f"/api/v1/exports/{job.pk}/").json()["download_url"] is None


def test_a_read_only_token_may_export(integrator):
    ContactFactory(external_id="A")
    _, key = api_token_create(user=integrator, name="bi", scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.post("/api/v1/contacts/export/").status_code == 202
    assert client.post("/api/v1/contacts/", {"name": "x"}).status_code == 403  # other writes still need write


def test_exporting_needs_the_export_permission(db):
    from django.contrib.auth.models import Permission

    user = UserFactory(username="viewer")
    user.user_permissions.add(Permission.objects.get(codename="view_contact"))
    api = APIClient()
    api.force_authenticate(user)
    assert api.post("/api/v1/contacts/export/").status_code == 403
    assert api.get("/api/v1/exports/").status_code == 403
    client = _logged_in(user)
    assert client.post(reverse("contacts:export"), {"query": ""}).status_code == 403
    assert client.get(reverse("contacts:exports")).status_code == 403
    assert not ExportJob.objects.exists()


# --- The dashboard ---------------------------------------------------------------------------------


def test_the_list_exports_its_filters_and_drill_down_in_the_background(
    operator, other_operator, django_capture_on_commit_callbacks
):
    ContactFactory(owner=operator, name="线索甲", stage=Contact.Stage.LEAD)
    ContactFactory(owner=operator, name="客户乙", stage=Contact.Stage.CUSTOMER)
    ContactFactory(owner=other_operator, name="别人的客户丙", stage=Contact.Stage.CUSTOMER)
    client = _logged_in(operator)

    page = client.get(reverse("contacts:list"), {"stage": "customer", "page": 1}).content.decode()
    assert 'name="query" value="stage=customer"' in page  # the export form carries the filters, not the page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("contacts:export"), {"query": "stage=customer"})
    job = ExportJob.objects.get()
    assert response["Location"] == reverse("contacts:export_detail", args=[job.pk])
    detail = client.get(response["Location"]).content.decode()
    assert 'data-status="done"' in detail and reverse("contacts:export_download", args=[job.pk]) in detail
    assert [row["name"] for row in _download(client, job.pk)] == ["客户乙"]
    listing = client.get(reverse("contacts:exports")).content.decode()
    assert reverse("contacts:export_download", args=[job.pk]) in listing


def test_the_dashboard_refuses_a_bad_filter_without_a_job(operator):
    client = _logged_in(operator)
    response = client.post(reverse("contacts:export"), {"query": "acquired_from=31-31-2020"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("contacts:list"))
    assert not ExportJob.objects.exists()


def test_the_export_page_is_only_for_its_owner(operator, other_operator, manager):
    job = export_job_create(user=operator, source=ExportJob.Source.DASHBOARD, params=[])
    for user in (other_operator, manager):
        client = _logged_in(user)
        assert client.get(reverse("contacts:export_detail", args=[job.pk])).status_code == 404
        assert client.get(reverse("contacts:export_progress", args=[job.pk])).status_code == 404
    assert _logged_in(operator).get(reverse("contacts:export_progress", args=[job.pk])).status_code == 200


def test_the_dashboard_export_needs_post(operator):
    assert _logged_in(operator).get(reverse("contacts:export")).status_code == 405


# --- Complete or failed, never short ---------------------------------------------------------------


def test_an_export_that_breaks_midway_fails_and_keeps_no_file(manager, monkeypatch, settings):
    ContactFactory.create_batch(5)
    job = export_job_create(user=manager, source=ExportJob.Source.API, params=[])

    def chunks(queryset):
        yield "header\r\n", 0
        yield "row\r\n", 1
        raise OSError("No space left on device")

    monkeypatch.setattr("contacts.exports.jobs.contact_csv_chunks", chunks)
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED
    assert "no file was kept" in job.message and not job.file
    left = [name for _root, _dirs, files in os.walk(settings.MEDIA_ROOT) for name in files]
    assert left == []


def test_a_second_delivery_does_nothing(manager):
    ContactFactory.create_batch(3)
    job = export_job_create(user=manager, source=ExportJob.Source.API, params=[])
    assert export_job_run(job_id=job.pk).status == ExportJob.Status.DONE
    assert export_job_run(job_id=job.pk) is None


def test_rows_are_written_in_chunks_with_progress(manager, monkeypatch):
    ContactFactory.create_batch(7)
    seen = []
    job = export_job_create(user=manager, source=ExportJob.Source.API, params=[])
    from contacts.exports import jobs as jobs_module

    real_chunks = jobs_module.contact_csv_chunks

    def chunks(queryset):
        for text, count in real_chunks(queryset, chunk_size=3):
            yield text, count
            seen.append(ExportJob.objects.get(pk=job.pk).written_rows)

    monkeypatch.setattr(jobs_module, "contact_csv_chunks", chunks)
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert seen == [0, 3, 6, 7]
    assert (job.status, job.total_rows, job.written_rows) == (ExportJob.Status.DONE, 7, 7)
    assert len(_rows(job.file.open("rb").read())) == 7


def test_a_user_who_lost_the_permission_gets_no_file(operator):
    job = export_job_create(user=operator, source=ExportJob.Source.API, params=[])
    operator.is_active = False
    operator.save()
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED and not job.file


# --- Sweeping and expiry ---------------------------------------------------------------------------


def test_the_sweep_fails_lost_jobs_requeues_lost_enqueues_and_expires_old_files(manager, settings):
    ContactFactory(external_id="A")
    settings.SCRM_EXPORT_RETENTION_DAYS = 7
    done = export_job_create(user=manager, source=ExportJob.Source.API, params=[])
    export_job_run(job_id=done.pk)
    done.refresh_from_db()
    path = done.file.path
    lost = export_job_create(user=manager, source=ExportJob.Source.API, params=[])
    ExportJob.objects.filter(pk=lost.pk).update(
        status=ExportJob.Status.RUNNING, started_at=timezone.now() - dt.timedelta(hours=3)
    )
    queued = export_job_create(user=manager, source=ExportJob.Source.API, params=[])
    ExportJob.objects.filter(pk=queued.pk).update(created_at=timezone.now() - dt.timedelta(minutes=30))

    part = os.path.join(os.path.dirname(path), "left-by-a-killed-worker.csv.part")
    open(part, "w").close()

    result = export_jobs_sweep(now=timezone.now() + dt.timedelta(days=8))

    assert result == {"requeued": 1, "failed": 1, "expired": 1, "parts_deleted": 1}
    assert not os.path.exists(part)
    states = dict(ExportJob.objects.values_list("pk", "status"))
    assert states == {done.pk: "expired", lost.pk: "failed", queued.pk: "done"}  # the eager worker ran it
    assert not os.path.exists(path)
    assert _logged_in(manager).get(reverse("contacts:export_download", args=[done.pk])).status_code == 404


def test_erasing_a_contact_deletes_every_finished_export_file(manager, django_capture_on_commit_callbacks):
    person = ContactFactory(name="将被删除的人")
    job = export_job_create(user=manager, source=ExportJob.Source.API, params=[])
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    path = job.file.path
    assert "将被删除的人".encode() in open(path, "rb").read()
    with django_capture_on_commit_callbacks(execute=True):
        contact_erase(contact=person, actor=manager)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.EXPIRED and not job.file
    assert "erased" in job.message
    assert not os.path.exists(path)


# --- A real worker ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_real_worker_writes_the_export(celery_worker_process, settings, tmp_path, manager):
    from contacts.tasks import export_job_process
    from scrm.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.MEDIA_ROOT = tmp_path / "media"  # the worker's MEDIA_ROOT (its SCRM_VAR_DIR is tmp_path)
    app.amqp._producer_pool = None
    ContactFactory.create_batch(25)
    celery_worker_process()

    job = export_job_create(user=manager, source=ExportJob.Source.API, params=[])
    job_id = job.pk
    export_job_process.delay(job_id)  # a duplicate delivery: only one may write the file
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.finished:
            break
        time.sleep(0.2)
    time.sleep(1)
    job.refresh_from_db()
    assert (job.status, job.written_rows) == (ExportJob.Status.DONE, 25), job.message
    assert len(_rows(job.file.open("rb").read())) == 25
    files = [name for _root, _dirs, names in os.walk(settings.MEDIA_ROOT / "exports") for name in names]
    assert len(files) == 1  # the duplicate delivery wrote nothing
