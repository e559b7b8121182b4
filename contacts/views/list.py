"""The contact list: filters, report drill-down, bulk tagging."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from analytics.forms import DRILL_PREFIX, DrillDownForm

from .. import selectors
from ..forms import BulkTagForm, DashboardContactFilterSet
from ..models import Contact, ContactTag
from ..services import contacts_bulk_tag
from .common import PAGE_SIZE, _form_errors, _safe_next, _without_page

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
