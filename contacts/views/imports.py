"""CSV import: the upload form, the job's progress and its rejected rows."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from ..forms import ImportForm
from ..imports import CONTACT_COLUMNS, PURCHASE_COLUMNS, import_job_create, rejected_rows_csv
from ..models import ImportJob
from .common import IMPORT_ERRORS_SHOWN

# --- CSV import -----------------------------------------------------------------------------------


@login_required
@permission_required("contacts.import_contacts", raise_exception=True)
def contact_import(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = ImportForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                job = import_job_create(
                    kind=form.cleaned_data["kind"], upload=form.cleaned_data["file"], actor=request.user
                )
            except ValidationError as exc:
                errors = exc.error_dict if hasattr(exc, "error_dict") else {"file": exc.error_list}
                for name, field_errors in errors.items():
                    form.add_error(name if name in form.fields else None, field_errors)
            else:
                return redirect("contacts:import_detail", pk=job.pk)
    else:
        form = ImportForm()
    return render(
        request,
        "contacts/import.html",
        {
            "form": form,
            "contact_columns": CONTACT_COLUMNS.items(),
            "purchase_columns": PURCHASE_COLUMNS.items(),
            "recent_jobs": ImportJob.objects.select_related("created_by").visible_to(request.user)[:20],
        },
    )


def _import_context(job: ImportJob) -> dict:
    finished = job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED)
    errors = job.errors or []
    return {
        "job": job,
        "finished": finished,
        "errors": errors[:IMPORT_ERRORS_SHOWN],
        "errors_hidden": max(0, len(errors) - IMPORT_ERRORS_SHOWN),
    }


@login_required
@permission_required("contacts.import_contacts", raise_exception=True)
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ImportJob.objects.select_related("created_by").visible_to(request.user), pk=pk)
    return render(request, "contacts/import_detail.html", _import_context(job))


@login_required
@permission_required("contacts.import_contacts", raise_exception=True)
def import_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress block alone, polled by htmx every second until the job has finished."""
    job = get_object_or_404(ImportJob.objects.select_related("created_by").visible_to(request.user), pk=pk)
    return render(request, "contacts/partials/import_progress.html", _import_context(job))


@login_required
@permission_required("contacts.import_contacts", raise_exception=True)
def import_errors_csv(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """Every rejected row of an import as CSV, each problem beside the row's original cells (defused
    against spreadsheet formulas); the page shows only the first few hundred."""
    job = get_object_or_404(ImportJob.objects.select_related("created_by").visible_to(request.user), pk=pk)
    response = StreamingHttpResponse(
        rejected_rows_csv(kind=job.kind, errors=job.errors or []), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-rejected.csv"'
    return response
