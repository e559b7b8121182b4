"""Dashboard pages for contacts: the list (filters, bulk tagging, export), a contact's whole relationship
on one page, and CSV import with its progress.

Every read starts from ``contacts.selectors`` so an operator only ever reaches the contacts they own; an
id outside that set is a 404, never a 403 that would confirm the contact exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from analytics.forms import DRILL_PREFIX, DrillDownForm
from analytics.models import ClvFit
from communities.models import Community
from communities.selectors import membership_list
from scrm.audit import Action, audit

from . import selectors
from .exports import export_job_create
from .forms import BulkTagForm, ContactTagForm, DashboardContactFilterSet, ImportForm
from .imports import CONTACT_COLUMNS, PURCHASE_COLUMNS, import_job_create, rejected_rows_csv
from .models import Contact, ContactTag, ExportJob, ImportJob
from .services import contacts_bulk_tag, contacts_tag, contacts_untag

PAGE_SIZE = 50
DETAIL_ROWS = 100  # purchases, touchpoints and referrals shown on a contact page
IMPORT_ERRORS_SHOWN = 500


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        return target
    return fallback


def _without_page(query: QueryDict) -> str:
    kept = query.copy()
    kept.pop("page", None)
    return kept.urlencode()


def _form_errors(form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


# --- List, bulk tagging, export -------------------------------------------------------------------


@dataclass
class DrillDown:
    """The drill-down of a contact list request: its form (with errors when the parameters are bad) and,
    when they are good, the contacts behind the report's number."""

    form: DrillDownForm
    contacts: QuerySet[Contact] | None


def _drill_down(request: HttpRequest, queryset: QuerySet[Contact]) -> tuple[DrillDown | None, QuerySet[Contact]]:
    """Narrow the list to the contacts behind a report's number when the query string has ``drill-…``
    parameters (``analytics.forms.DrillDownForm``). The metric service scopes the contacts to the user like
    every report, and the list's own queryset scopes them again. Invalid parameters leave the list as it is;
    the form carries the errors for the page to show."""
    if not DrillDownForm.present(request.GET):
        return None, queryset
    form = DrillDownForm(request.GET, user=request.user)
    contacts = form.contacts()
    if contacts is not None:
        queryset = queryset.filter(pk__in=contacts.values("pk"))
    return DrillDown(form=form, contacts=contacts), queryset


def _drill_context(request: HttpRequest, drill: DrillDown | None, filterset, page_obj) -> dict:
    if drill is None:
        return {"drill": None}
    kept = request.GET.copy()
    for key in list(kept):
        if key.startswith(f"{DRILL_PREFIX}-") or key == "page":
            del kept[key]
    context = {
        "drill": drill,
        "drill_clear_url": reverse("contacts:list") + (f"?{kept.urlencode()}" if kept else ""),
        "drill_hidden": [
            (key, value)
            for key, values in request.GET.lists()
            if key.startswith(f"{DRILL_PREFIX}-")
            for value in values
        ],
    }
    if drill.contacts is not None:
        context["drill_label"] = drill.form.label()
        # The list's own filters may narrow it further: the banner counts the contacts behind the number.
        context["drill_count"] = drill.contacts.count() if filterset.is_filtered else page_obj.paginator.count
    else:
        context["drill_errors"] = drill.form.error_text()
    return context


@login_required
@permission_required("contacts.view_contact", raise_exception=True)
def contact_list(request: HttpRequest) -> HttpResponse:
    drill, queryset = _drill_down(request, selectors.contact_list(request.user))
    filterset = DashboardContactFilterSet(request.GET, queryset=queryset, request=request)
    page_obj = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    contacts = list(page_obj.object_list)
    user = request.user
    return render(
        request,
        "contacts/contact_list.html",
        {
            "filterset": filterset,
            "page_obj": page_obj,
            "contacts": contacts,
            "bulk_form": BulkTagForm() if user.has_perm("contacts.change_contact") else None,
            "can_export": user.has_perm("contacts.export_contacts"),
            "export_query": _without_page(request.GET),
            "can_import": user.has_perm("contacts.import_contacts"),
            "shows_owner": filterset.shows_owner,
            **_drill_context(request, drill, filterset, page_obj),
        },
    )


@require_POST
@login_required
@permission_required("contacts.change_contact", raise_exception=True)
def contact_bulk_tag(request: HttpRequest) -> HttpResponse:
    back = _safe_next(request, reverse("contacts:list"))
    form = BulkTagForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect(back)
    contact_ids = form.cleaned_data["contact_ids"]
    tags = list(form.cleaned_data["tags"])
    try:
        contacts_bulk_tag(actor=request.user, contact_ids=contact_ids, tags=tags, source=ContactTag.Source.MANUAL)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(back)
    messages.success(
        request,
        ngettext(
            "Tagged %(count)d contact with %(tags)s.",
            "Tagged %(count)d contacts with %(tags)s.",
            len(set(contact_ids)),
        )
        % {"count": len(set(contact_ids)), "tags": "、".join(tag.name for tag in tags)},
    )
    return redirect(back)


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


# --- One contact ----------------------------------------------------------------------------------


def _tags_by_group(tag_links) -> list[dict]:
    groups: dict[int, dict] = {}
    for link in tag_links:
        group = link.tag.group
        groups.setdefault(group.pk, {"group": group, "links": []})["links"].append(link)
    return sorted(groups.values(), key=lambda g: (g["group"].sort_order, g["group"].name))


def _contact_page_context(request: HttpRequest, contact: Contact) -> dict:
    user = request.user
    tag_links = list(selectors.contact_tag_links(contact))
    memberships = list(membership_list(user).filter(contact=contact).order_by("-joined_at", "-id"))
    linkable_communities = set()
    if memberships:
        linkable_communities = set(
            Community.objects.visible_to(user)
            .filter(pk__in={m.community_id for m in memberships})
            .values_list("pk", flat=True)
        )
    purchases = list(
        selectors.purchase_list(user).filter(contact=contact).order_by("-purchased_at", "-id")[: DETAIL_ROWS + 1]
    )
    touchpoints = list(
        selectors.touchpoint_list(user).filter(contact=contact).order_by("-occurred_at", "-id")[: DETAIL_ROWS + 1]
    )
    referrals = list(
        Contact.objects.live()
        .visible_to(user)
        .filter(referred_by=contact)
        .select_related("owner")
        .order_by("-acquired_at", "-id")[: DETAIL_ROWS + 1]
    )
    referred_by_visible = (
        contact.referred_by_id is not None
        and Contact.objects.live().visible_to(user).filter(pk=contact.referred_by_id).exists()
    )
    can_change = user.has_perm("contacts.change_contact")
    score = getattr(contact, "score", None)  # the nightly ContactScore row, if the contact was scored yet
    clv_fit = ClvFit.objects.filter(status=ClvFit.Status.DONE, as_of=score.as_of).first() if score else None
    return {
        "contact": contact,
        "score": score,
        "clv_horizon_days": clv_fit.horizon_days if clv_fit else None,
        "tag_groups": _tags_by_group(tag_links),
        "tag_count": len(tag_links),
        "memberships": memberships,
        "linkable_communities": linkable_communities,
        "purchases": purchases[:DETAIL_ROWS],
        "more_purchases": len(purchases) > DETAIL_ROWS,
        "touchpoints": touchpoints[:DETAIL_ROWS],
        "more_touchpoints": len(touchpoints) > DETAIL_ROWS,
        "referrals": referrals[:DETAIL_ROWS],
        "more_referrals": len(referrals) > DETAIL_ROWS,
        "referred_by_visible": referred_by_visible,
        "tag_form": ContactTagForm(initial={"action": ContactTagForm.ADD}) if can_change else None,
        "can_change": can_change,
        "detail_rows": DETAIL_ROWS,
        "attributes": sorted((contact.attributes or {}).items()),
    }


@login_required
@permission_required("contacts.view_contact", raise_exception=True)
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    contact = get_object_or_404(selectors.contact_detail(request.user).select_related("score"), pk=pk)
    audit(Action.CONTACT_VIEWED, actor=request.user, target=contact)
    return render(request, "contacts/contact_detail.html", _contact_page_context(request, contact))


@require_POST
@login_required
@permission_required("contacts.change_contact", raise_exception=True)
def contact_tag_change(request: HttpRequest, pk: int) -> HttpResponse:
    """Add a tag to, or remove a tag from, one contact (the small form on the contact page)."""
    contact = get_object_or_404(Contact.objects.live().visible_to(request.user), pk=pk)
    form = ContactTagForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
    else:
        tag = form.cleaned_data["tag"]
        if form.cleaned_data["action"] == ContactTagForm.ADD:
            try:
                contacts_tag(contact_ids=[contact.pk], tags=[tag], actor=request.user, source=ContactTag.Source.MANUAL)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, _("Tag “%(tag)s” added.") % {"tag": tag.name})
        else:
            contacts_untag(contact_ids=[contact.pk], tags=[tag])
            messages.success(request, _("Tag “%(tag)s” removed.") % {"tag": tag.name})
    return redirect(reverse("contacts:detail", args=[contact.pk]) + "#tags")


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


@login_required
@permission_required("contacts.export_contacts", raise_exception=True)
def contact_personal_data(request: HttpRequest, pk: int) -> HttpResponse:
    """Everything held about one person, for their access request: JSON, or ``?as=csv``."""
    from .privacy import personal_data, personal_data_csv

    contact = get_object_or_404(Contact.objects.visible_to(request.user), pk=pk)
    audit(
        Action.PERSONAL_DATA_EXPORTED, actor=request.user, target=contact, detail={"as": request.GET.get("as", "json")}
    )
    if request.GET.get("as") == "csv":
        response = StreamingHttpResponse(personal_data_csv(contact), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="personal-data-{contact.pk}.csv"'
        return response
    response = JsonResponse(personal_data(contact), json_dumps_params={"ensure_ascii": False, "indent": 2})
    response["Content-Disposition"] = f'attachment; filename="personal-data-{contact.pk}.json"'
    return response
