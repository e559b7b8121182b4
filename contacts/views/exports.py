"""Contact exports: queue one from the list, follow it, download the file."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from scrm.audit import Action, audit

from ..exports import export_job_create
from ..models import ExportJob


@require_POST
@login_required
@permission_required("contacts.export_contacts", raise_exception=True)
def contact_export(request: HttpRequest) -> HttpResponse:
    """Queue an export of the list's filtered contacts (the filters come as the list's query string in
    ``query``) and go to its page, which shows the progress and the file when it is ready."""
    query = QueryDict(request.POST.get("query", ""))
    try:
        job = export_job_create(
            user=request.user,
            source=ExportJob.Source.DASHBOARD,
            params=[(key, value) for key, values in query.lists() for value in values],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(reverse("contacts:list") + (f"?{query.urlencode()}" if query else ""))
    return redirect("contacts:export_detail", pk=job.pk)


def _export_context(request: HttpRequest, pk: int) -> dict:
    job = get_object_or_404(ExportJob.objects.visible_to(request.user), pk=pk)
    return {
        "job": job,
        "list_url": reverse("contacts:list") + (f"?{_params_query(job.params)}" if job.params else ""),
        "retention_days": settings.SCRM_EXPORT_RETENTION_DAYS,
    }


def _params_query(params: list) -> str:
    query = QueryDict(mutable=True)
    for key, value in params:
        query.appendlist(key, value)
    return query.urlencode()


@login_required
@permission_required("contacts.export_contacts", raise_exception=True)
def export_list(request: HttpRequest) -> HttpResponse:
    jobs = ExportJob.objects.visible_to(request.user)[:50]
    return render(request, "contacts/export_list.html", {"jobs": jobs})


@login_required
@permission_required("contacts.export_contacts", raise_exception=True)
def export_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "contacts/export_detail.html", _export_context(request, pk))


@login_required
@permission_required("contacts.export_contacts", raise_exception=True)
def export_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress block alone, polled by htmx every second until the export has finished."""
    return render(request, "contacts/partials/export_progress.html", _export_context(request, pk))


@login_required
@permission_required("contacts.export_contacts", raise_exception=True)
def export_download(request: HttpRequest, pk: int) -> FileResponse:
    """The finished export's file (only its creator reaches it; 404 before it is done or after it expired)."""
    job = get_object_or_404(ExportJob.objects.visible_to(request.user).filter(status=ExportJob.Status.DONE), pk=pk)
    if not job.file:
        raise Http404
    audit(Action.EXPORT_DOWNLOADED, actor=request.user, target=job, count=job.written_rows)
    return FileResponse(job.file.open("rb"), as_attachment=True, filename=job.filename, content_type="text/csv")
