"""The Celery wiring with a real worker process: an import uploaded through the API is run by the
worker, not inline. PostgreSQL only (the worker must share the test database)."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from contacts.models import Contact, ImportJob

pytestmark = pytest.mark.postgres

CSV = "external_id,phone,name\nW-1,13800138001,王芳\nW-2,12345,坏号码\nW-3,13800138003,李娜\n"


def _wait_for(job_id: int, timeout: float = 60) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ImportJob.objects.get(pk=job_id)
        if job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED):
            return job
        time.sleep(0.3)
    raise AssertionError(f"import {job_id} still {job.status} after {timeout}s")


def test_an_uploaded_import_is_run_by_a_real_worker(celery_worker_process, manager):
    worker = celery_worker_process()
    client = APIClient()
    client.force_authenticate(manager)
    upload = SimpleUploadedFile("contacts.csv", CSV.encode(), content_type="text/csv")
    response = client.post("/api/v1/contacts/import/", {"file": upload, "kind": "contacts"}, format="multipart")
    assert response.status_code == 202, response.content
    job = _wait_for(response.json()["id"])
    assert worker.poll() is None, "worker died"
    assert job.status == ImportJob.Status.DONE, job.message
    assert (job.created_count, job.error_count) == (2, 1)
    assert job.errors[0]["line"] == 3 and job.errors[0]["field"] == "phone"
    assert set(Contact.objects.values_list("external_id", flat=True)) == {"W-1", "W-3"}
