"""The import endpoints of the REST API: POST /api/v1/contacts/import/ queues a job that a
(here: eager) Celery worker runs; GET /api/v1/imports/{id}/ shows its progress and report (exports: test_export_jobs.py)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from contacts.models import Contact, ImportJob, Purchase
from tests.factories import ContactFactory, UserFactory


@pytest.fixture(autouse=True)
def _eager_worker(settings, tmp_path):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MEDIA_ROOT = tmp_path / "media"
    with translation.override("en"):
        yield


def upload(client, text: str, kind: str = "contacts", *, encoding: str = "utf-8", capture=None):
    file = SimpleUploadedFile("客户.csv", text.encode(encoding), content_type="text/csv")
    with capture(execute=True):
        # The eager worker runs inside the request, so the job's messages are in the request's language.
        return client.post(
            "/api/v1/contacts/import/", {"file": file, "kind": kind}, format="multipart", HTTP_ACCEPT_LANGUAGE="en"
        )


def test_an_upload_is_imported_and_its_job_shows_the_counts(manager_api, django_capture_on_commit_callbacks):
    response = upload(
        manager_api,
        "external_id,phone,name\nC001,13812345678,张三\nC002,13812345679,李四\n",
        capture=django_capture_on_commit_callbacks,
    )

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"
    job = manager_api.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert job["status"] == "done"
    assert (job["total_rows"], job["processed_rows"], job["progress_percent"]) == (2, 2, 100)
    assert (job["created_count"], job["updated_count"], job["unchanged_count"], job["error_count"]) == (2, 0, 0, 0)
    assert job["filename"] == "客户.csv"
    assert Contact.objects.count() == 2


def test_a_file_with_bad_rows_gives_the_error_report(manager_api, django_capture_on_commit_callbacks):
    text = "external_id,phone,birthday\nC001,13812345678,1990-01-01\nC002,12345,1990-13-40\n,,\nC001,13812345678,\n"

    response = upload(manager_api, text, capture=django_capture_on_commit_callbacks)

    job = manager_api.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert job["status"] == "done"
    assert (job["created_count"], job["error_count"]) == (1, 2)
    assert [(e["line"], e["field"]) for e in job["errors"]] == [(3, "phone"), (3, "birthday"), (5, "external_id")]
    assert job["errors"][2]["message"] == "Duplicate of line 2."


def test_a_file_with_a_bad_header_fails_with_the_reason(manager_api, django_capture_on_commit_callbacks):
    response = upload(manager_api, "name,nickname\n张三,小张\n", capture=django_capture_on_commit_callbacks)

    job = manager_api.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert job["status"] == "failed"
    assert "Unknown column(s): nickname" in job["message"]
    assert "Required column missing: external_id or phone" in job["message"]
    assert not Contact.objects.exists()


def test_a_gbk_upload_is_imported(manager_api, django_capture_on_commit_callbacks):
    upload(manager_api, "phone,name\n13812345678,张三\n", encoding="gbk", capture=django_capture_on_commit_callbacks)

    assert Contact.objects.get().name == "张三"


def test_purchases_are_uploaded_with_kind_purchases(integrator_api, django_capture_on_commit_callbacks):
    buyer = ContactFactory(external_id="C001")
    text = "external_order_id,contact_external_id,purchased_at,amount\nO-1,C001,2024-03-01 10:00,99.00\n"

    response = upload(integrator_api, text, kind="purchases", capture=django_capture_on_commit_callbacks)

    job = integrator_api.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert (job["status"], job["created_count"]) == ("done", 1)
    buyer.refresh_from_db()
    assert (Purchase.objects.get().contact_id, buyer.stage) == (buyer.pk, Contact.Stage.CUSTOMER)


def test_an_operators_upload_imports_into_their_own_book(
    operator, operator_api, other_operator, django_capture_on_commit_callbacks
):
    ContactFactory(external_id="THEIRS", owner=other_operator)

    response = upload(
        operator_api, "external_id,name\nMINE,我的\nTHEIRS,改\n", capture=django_capture_on_commit_callbacks
    )

    job = operator_api.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert (job["created_count"], job["error_count"]) == (1, 1)
    assert Contact.objects.get(external_id="MINE").owner == operator
    assert Contact.objects.get(external_id="THEIRS").name != "改"


def test_an_operator_cannot_see_someone_elses_import(operator_api, manager_api, django_capture_on_commit_callbacks):
    response = upload(manager_api, "phone\n13812345678\n", capture=django_capture_on_commit_callbacks)

    assert operator_api.get(f"/api/v1/imports/{response.json()['id']}/").status_code == 404


def test_an_upload_without_a_file_or_with_an_unknown_kind_is_refused(manager_api):
    assert manager_api.post("/api/v1/contacts/import/", {"kind": "contacts"}, format="multipart").status_code == 400
    file = SimpleUploadedFile("a.csv", b"phone\n13812345678\n")
    response = manager_api.post("/api/v1/contacts/import/", {"file": file, "kind": "orders"}, format="multipart")
    assert response.status_code == 400
    assert not ImportJob.objects.exists()


def test_a_user_without_the_import_permission_cannot_upload(db):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(UserFactory(username="nobody"))
    file = SimpleUploadedFile("a.csv", b"phone\n13812345678\n")

    assert client.post("/api/v1/contacts/import/", {"file": file}, format="multipart").status_code == 403


@pytest.mark.postgres
def test_a_real_worker_runs_an_uploaded_import_once(celery_worker_process, settings, tmp_path, manager):
    import time

    from contacts.imports import import_job_create
    from contacts.tasks import import_job_process
    from scrm.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.MEDIA_ROOT = tmp_path / "media"  # the worker's MEDIA_ROOT (its SCRM_VAR_DIR is tmp_path)
    # Eager tasks earlier in the session left a producer pool bound to the default broker folder.
    app.amqp._producer_pool = None
    celery_worker_process()
    file = SimpleUploadedFile("a.csv", "phone,name\n13812345678,张三\n13812345679,李四\n".encode())

    job = import_job_create(kind="contacts", upload=file, actor=manager)
    import_job_process.delay(job.pk)  # a duplicate delivery: only one of the two may run the import

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED):
            break
        time.sleep(0.2)
    time.sleep(1)  # give the duplicate delivery time to (not) run
    job.refresh_from_db()
    assert (job.status, job.created_count, job.unchanged_count) == (ImportJob.Status.DONE, 2, 0)
    assert Contact.objects.count() == 2
