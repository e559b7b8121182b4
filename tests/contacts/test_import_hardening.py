"""Findings of the security sweep of the CSV import: formulas in the rejected-rows CSV, files mixing
encodings, CSV syntax errors late in a file, and uploaded files kept forever."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone, translation

from contacts import imports
from contacts.imports import ImportFileError, import_csv, rejected_rows_csv
from contacts.models import Contact, ImportJob
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _import(data: bytes, **kwargs):
    return import_csv(kind="contacts", fileobj=io.BytesIO(data), use_copy=False, **kwargs)


def _parse(chunks) -> list[list[str]]:
    return list(csv.reader(io.StringIO("".join(chunks).removeprefix("\ufeff"))))


# --- 1. The rejected-rows CSV: original rows beside their errors, formulas defused -----------------------

FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1"]


@pytest.mark.django_db
def test_the_rejected_rows_csv_carries_each_original_row_with_every_formula_defused():
    rows = [f'{i},123,"{formula}",{formula[:1]}x@example' for i, formula in enumerate(FORMULAS)]
    report = _import(("external_id,phone,name,email\n" + "\n".join(rows) + "\n").encode())

    table = _parse(rejected_rows_csv(kind="contacts", errors=report.errors))

    header, body = table[0], table[1:]
    assert header[:5] == ["line", "field", "message", "external_id", "phone"]
    name = header.index("name")
    phone_errors = [row for row in body if row[1] == "phone"]
    assert [row[name] for row in phone_errors] == ["'" + formula for formula in FORMULAS]
    for row in body:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row


@pytest.mark.django_db
def test_the_rejected_rows_csv_defuses_the_message_and_keeps_cells_beyond_the_header():
    report = _import(b"phone,name\n=1+1,a,=2+2\n")

    table = _parse(rejected_rows_csv(kind="contacts", errors=report.errors))

    assert table[1][:3] == ["2", "row", "This row has 3 cells; the header names 2 columns."]
    assert table[1][-1] == "'=2+2"
    assert table[1][table[0].index("phone")] == "'=1+1"


@pytest.mark.django_db
def test_the_errors_csv_of_the_command_streams_the_same_report(tmp_path):
    """What ``--errors-csv`` and the job download write: one row per problem, the original row beside it."""
    report_errors: list[dict] = []
    _import(b"external_id,phone\nC1,@bad\n", on_error=report_errors.append)

    table = _parse(rejected_rows_csv(kind="contacts", errors=report_errors))

    assert table[1][:5] == ["2", "phone", table[1][2], "C1", "'@bad"]


# --- 2. Files mixing UTF-8 and GBK ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_mostly_utf8_file_rejects_its_gbk_lines_instead_of_garbling_the_rest():
    lines = [f"C{i},1381234567{i},张三{i}".encode() for i in range(5)]
    lines.insert(3, "C9,13812345679,李四".encode("gbk"))
    report = _import(b"external_id,phone,name\n" + b"\n".join(lines) + b"\n")

    assert sorted(Contact.objects.values_list("name", flat=True)) == [f"张三{i}" for i in range(5)]
    assert [(e["line"], e["field"]) for e in report.errors] == [(5, "row")]
    assert "Line 5" in report.errors[0]["message"] and "GBK" in report.errors[0]["message"]
    assert report.errors[0]["row"]["name"] == "李四"  # shown as written, for fixing


@pytest.mark.django_db
def test_a_mostly_gbk_file_rejects_its_utf8_lines_instead_of_garbling_them():
    lines = [f"C{i},1381234567{i},张三{i}".encode("gbk") for i in range(5)]
    lines.append("C9,13812345679,李四".encode())
    report = _import("external_id,phone,name\n".encode("gbk") + b"\n".join(lines) + b"\n")

    assert report.encoding == "gb18030"
    assert sorted(Contact.objects.values_list("name", flat=True)) == [f"张三{i}" for i in range(5)]
    assert [(e["line"], e["field"]) for e in report.errors] == [(7, "row")]
    assert "UTF-8" in report.errors[0]["message"]


@pytest.mark.django_db
def test_a_pure_gbk_file_is_still_read_as_gbk():
    report = _import("external_id,phone,name\nC1,13812345678,张三\n".encode("gbk"))

    assert (report.encoding, report.created, report.error_count) == ("gb18030", 1, 0)
    assert Contact.objects.get().name == "张三"


@pytest.mark.django_db
def test_a_utf8_file_with_bom_and_a_gbk_line_rejects_that_line():
    data = "\ufeffexternal_id,phone,name\nC1,13812345678,张三\n".encode() + "C2,13812345679,李四\n".encode("gbk")
    report = _import(data)

    assert (report.created, [e["line"] for e in report.errors]) == (1, [3])


# --- 3. A CSV syntax error late in a file: nothing is written ---------------------------------------------


@pytest.mark.django_db
def test_a_csv_syntax_error_after_many_batches_writes_nothing():
    rows = "".join(f"C{i},1390000{i:04d}\n" for i in range(50))
    broken = 'C99,13812345678,"' + "x" * 200_000 + "\n"
    with pytest.raises(ImportFileError, match="Line 52 is not valid CSV"):
        _import(("external_id,phone\n" + rows + broken).encode(), batch_size=5)

    assert not Contact.objects.exists()


@pytest.mark.django_db
def test_the_report_counts_the_rows_exactly_before_the_import_starts():
    started = []
    _import(b'external_id,name\nC1,"two\nlines"\n\nC2,x\n', on_start=started.append)

    assert started == [2]


# --- 4. Uploaded files are deleted after the retention period -----------------------------------------------


def _finished_job(user, days_ago: int) -> ImportJob:
    job = ImportJob(kind="contacts", created_by=user, filename="x.csv", status=ImportJob.Status.DONE, message="Done.")
    job.file.save("x.csv", ContentFile(b"phone\n13812345678\n"), save=False)
    job.finished_at = timezone.now() - dt.timedelta(days=days_ago)
    job.save()
    return job


@pytest.mark.django_db
def test_the_sweep_deletes_uploaded_files_after_the_retention_period(
    media, settings, django_capture_on_commit_callbacks
):
    settings.SCRM_IMPORT_RETENTION_DAYS = 30
    user = UserFactory()
    old, recent = _finished_job(user, 31), _finished_job(user, 29)
    old_path, recent_path = old.file.path, recent.file.path

    with django_capture_on_commit_callbacks(execute=True):  # files go once the claim is committed
        assert imports.import_jobs_sweep()["files_deleted"] == 1
    assert imports.import_jobs_sweep()["files_deleted"] == 0  # a second sweep finds nothing

    old.refresh_from_db()
    assert not old.file and "The uploaded file was deleted 30 days after the import." in old.message
    import os

    assert not os.path.exists(old_path) and os.path.exists(recent_path)


@pytest.mark.django_db
def test_queued_and_running_jobs_keep_their_files(media):
    user = UserFactory()
    job = _finished_job(user, 365)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)

    assert imports.import_job_files_delete() == 0


@pytest.mark.django_db
def test_the_job_page_and_rejected_rows_download_work_after_the_file_was_deleted(media, client):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="import_contacts"))
    job = _finished_job(user, 31)
    ImportJob.objects.filter(pk=job.pk).update(errors=[{"line": 2, "field": "phone", "message": "x"}])
    imports.import_job_files_delete()
    client.force_login(user)

    page = client.get(reverse("contacts:import_detail", args=[job.pk]))
    download = client.get(reverse("contacts:import_errors", args=[job.pk]))

    assert page.status_code == 200 and "The uploaded file was deleted" in page.content.decode()
    assert download.status_code == 200
