"""The contact list operators live in: filters with chips, saved views (我的视图), report drill-down, and bulk
actions on the ticked rows or on every contact matching the filters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from analytics.forms import DRILL_PREFIX, DrillDownForm

from .. import selectors
from ..exports import export_job_create, export_queryset
from ..forms import BulkActionForm, BulkTagForm, DashboardContactFilterSet, SavedViewForm, user_label
from ..models import Contact, ContactTag, ExportJob
from ..saved_views import (
    saved_view_create,
    saved_view_delete,
    saved_view_query_normalize,
    saved_view_update,
    saved_views_for,
    saved_views_owned,
)
from ..services import contacts_bulk_tag, contacts_bulk_untag, contacts_reassign
from .common import PAGE_SIZE, _form_errors, _safe_next, _without_page

# Ids per service call when a bulk action walks many contacts (keyset over the primary key): the services
# take id lists, and SQLite caps the parameters of one statement.
BULK_CHUNK = 5000
# "All matching" runs in the request, in one transaction: beyond this many contacts it asks for narrower
# filters rather than hold a web worker (and its locks) for minutes.
ALL_MATCHING_MAX = 100_000

# --- The list -------------------------------------------------------------------------------------


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


def _saved_views_context(request: HttpRequest, filterset) -> dict:
    user = request.user
    current = saved_view_query_normalize(request.GET, filter_names=list(filterset.filters))
    views = list(saved_views_for(user))
    active = next((view for view in views if view.query == current), None) if current else None
    return {
        "saved_views": views,
        "active_view": active,
        "current_view_query": current,
        "saved_view_form": SavedViewForm(auto_id="id_view_%s"),
        "can_share_views": user.has_perm("contacts.share_savedview"),
    }


@login_required
@permission_required("contacts.view_contact", raise_exception=True)
def contact_list(request: HttpRequest) -> HttpResponse:
    drill, queryset = _drill_down(request, selectors.contact_list(request.user))
    filterset = DashboardContactFilterSet(request.GET, queryset=queryset, request=request)
    page_obj = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    contacts = list(page_obj.object_list)
    user = request.user
    bulk_form = BulkActionForm(user=user)
    return render(
        request,
        "contacts/contact_list.html",
        {
            "filterset": filterset,
            "chips": filterset.chips(reverse("contacts:list")),
            "page_obj": page_obj,
            "contacts": contacts,
            "bulk_form": bulk_form if bulk_form.is_offered else None,
            "can_export": user.has_perm("contacts.export_contacts"),
            "export_query": _without_page(request.GET),
            "can_import": user.has_perm("contacts.import_contacts"),
            "shows_owner": filterset.shows_owner,
            **_saved_views_context(request, filterset),
            **_drill_context(request, drill, filterset, page_obj),
        },
    )


# --- Bulk actions ---------------------------------------------------------------------------------


@dataclass
class BulkTarget:
    """The contacts a bulk action works on, already scoped to the user: the ticked rows the user may see,
    or every contact matching the list's filters (and drill-down)."""

    contacts: QuerySet[Contact]
    count: int
    skipped: int  # ticked ids that are not (or no longer) in the user's list: left out

    def id_chunks(self) -> Iterator[list[int]]:
        """The contacts' ids in ascending chunks of ``BULK_CHUNK`` (one query per chunk)."""
        last = 0
        while True:
            ids = list(self.contacts.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:BULK_CHUNK])
            if not ids:
                return
            yield ids
            if len(ids) < BULK_CHUNK:
                return
            last = ids[-1]


def _list_params(query: str) -> list[tuple[str, str]]:
    data = QueryDict(query or "")
    return [(key, value) for key, values in data.lists() if key != "page" for value in values]


def _bulk_target(user, form: BulkActionForm) -> BulkTarget:
    data = form.cleaned_data
    if data["scope"] == BulkActionForm.ALL:
        # The list's own queryset for these parameters (filters, drill-down), as the export builds it.
        contacts = export_queryset(user=user, source=ExportJob.Source.DASHBOARD, params=_list_params(data["query"]))
        count = contacts.count()
        if not count:
            raise ValidationError(_("No contacts match these filters."))
        if count > ALL_MATCHING_MAX and data["action"] != BulkActionForm.EXPORT:
            raise ValidationError(
                _(
                    "A bulk action changes at most %(max)s contacts at once, and these filters match %(count)s. "
                    "Narrow the filters (for example by acquisition date) and repeat."
                )
                % {"max": ALL_MATCHING_MAX, "count": count}
            )
        return BulkTarget(contacts=contacts, count=count, skipped=0)
    ids = data["contact_ids"]
    contacts = Contact.objects.live().visible_to(user).filter(pk__in=ids)
    count = contacts.count()
    if not count:
        raise ValidationError(_("None of the ticked contacts is in your list any more."))
    return BulkTarget(contacts=contacts, count=count, skipped=len(ids) - count)


def _bulk_tag(user, form: BulkActionForm, target: BulkTarget) -> str:
    tags = list(form.cleaned_data["tags"])
    for ids in target.id_chunks():
        contacts_bulk_tag(actor=user, contact_ids=ids, tags=tags, source=ContactTag.Source.MANUAL)
    return ngettext(
        "Tagged %(count)d contact with %(tags)s.", "Tagged %(count)d contacts with %(tags)s.", target.count
    ) % {"count": target.count, "tags": "、".join(tag.name for tag in tags)}


def _bulk_untag(user, form: BulkActionForm, target: BulkTarget) -> str:
    tags = list(form.cleaned_data["tags"])
    removed = 0
    for ids in target.id_chunks():
        removed += contacts_bulk_untag(actor=user, contact_ids=ids, tags=tags)
    return ngettext(
        "Removed %(tags)s from the %(count)d contact: %(removed)d tag taken off.",
        "Removed %(tags)s from the %(count)d contacts: %(removed)d tags taken off.",
        target.count,
    ) % {"count": target.count, "tags": "、".join(tag.name for tag in tags), "removed": removed}


def _bulk_assign(user, form: BulkActionForm, target: BulkTarget) -> str:
    owner = form.cleaned_data["owner"]
    moved = contacts_reassign(
        contacts=Contact.objects.filter(pk__in=target.contacts.order_by().values("pk")), owner=owner, actor=user
    )
    message = ngettext(
        "Assigned %(count)d contact to %(owner)s.", "Assigned %(count)d contacts to %(owner)s.", moved
    ) % {"count": moved, "owner": user_label(owner)}
    if moved < target.count:
        message += " " + ngettext(
            "%(count)d was already theirs.", "%(count)d were already theirs.", target.count - moved
        ) % {"count": target.count - moved}
    return message


def _bulk_community(user, form: BulkActionForm, target: BulkTarget) -> str:
    from communities.bulk import memberships_bulk_join

    community = form.cleaned_data["community"]
    result = memberships_bulk_join(community=community, contacts=target.contacts, actor=user)
    message = ngettext(
        "Added %(count)d contact to %(community)s.", "Added %(count)d contacts to %(community)s.", result.joined
    ) % {"count": result.joined, "community": community.name}
    if result.already:
        message += " " + ngettext(
            "%(count)d was a member already.", "%(count)d were members already.", result.already
        ) % {"count": result.already}
    return message


def _bulk_task(user, form: BulkActionForm, target: BulkTarget) -> str:
    from campaigns.followups import follow_up_tasks_create

    data = form.cleaned_data
    created = 0
    for ids in target.id_chunks():
        created += follow_up_tasks_create(
            actor=user,
            contact_ids=ids,
            title=data["title"],
            due_at=data.get("due_at"),
            note=data.get("note") or "",
            assignee=data.get("assignee"),
        )
    message = ngettext(
        "Created %(count)d follow-up task “%(title)s”.", "Created %(count)d follow-up tasks “%(title)s”.", created
    ) % {"count": created, "title": data["title"].strip()}
    if created < target.count:
        message += " " + ngettext(
            "%(count)d contact already had this open task.",
            "%(count)d contacts already had this open task.",
            target.count - created,
        ) % {"count": target.count - created}
    return message


BULK_ACTIONS: dict[str, Callable[..., str]] = {
    BulkActionForm.TAG: _bulk_tag,
    BulkActionForm.UNTAG: _bulk_untag,
    BulkActionForm.ASSIGN: _bulk_assign,
    BulkActionForm.COMMUNITY: _bulk_community,
    BulkActionForm.TASK: _bulk_task,
}


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _bulk_export(request: HttpRequest, form: BulkActionForm, target: BulkTarget, back: str) -> HttpResponse:
    """The export job of the list (``contacts:export``): the list's filters for "all matching", the ticked
    rows' ids (the ``id`` filter) otherwise."""
    data = form.cleaned_data
    if data["scope"] == BulkActionForm.ALL:
        params = _list_params(data["query"])
    else:
        params = [("id", ",".join(str(pk) for pk in data["contact_ids"]))]
    try:
        job = export_job_create(user=request.user, source=ExportJob.Source.DASHBOARD, params=params)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return redirect(back)
    return redirect("contacts:export_detail", pk=job.pk)


@require_POST
@login_required
@permission_required("contacts.view_contact", raise_exception=True)
def contact_bulk_action(request: HttpRequest) -> HttpResponse:
    """Run one bulk action. "All matching" first shows a confirmation with the number of contacts; the
    action then runs in one transaction (all or nothing) and the list says how many contacts it changed."""
    back = _safe_next(request, reverse("contacts:list"))
    form = BulkActionForm(request.POST, user=request.user)
    if not form.is_offered:
        messages.error(request, _("You may not change contacts in bulk."))
        return redirect(back)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect(back)
    try:
        target = _bulk_target(request.user, form)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return redirect(back)
    action = form.cleaned_data["action"]
    if action == BulkActionForm.EXPORT:
        return _bulk_export(request, form, target, back)
    if form.cleaned_data["scope"] == BulkActionForm.ALL and not form.cleaned_data["confirmed"]:
        filterset = DashboardContactFilterSet(
            QueryDict(form.cleaned_data["query"]), queryset=Contact.objects.none(), request=request
        )
        return render(
            request,
            "contacts/list/bulk_confirm.html",
            {
                "form": form,
                "target": target,
                "description": form.description(),
                "chips": filterset.chips(reverse("contacts:list")),
                "back": back,
            },
        )
    try:
        with transaction.atomic():
            message = BULK_ACTIONS[action](request.user, form, target)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return redirect(back)
    if target.skipped:
        message += " " + ngettext(
            "%(count)d ticked contact is no longer in your list and was left out.",
            "%(count)d ticked contacts are no longer in your list and were left out.",
            target.skipped,
        ) % {"count": target.skipped}
    messages.success(request, message)
    return redirect(back)


@require_POST
@login_required
@permission_required("contacts.change_contact", raise_exception=True)
def contact_bulk_tag(request: HttpRequest) -> HttpResponse:
    """Tag the ticked contacts (the list's first bulk action, kept for links and scripts that post here).
    Every id must be one the user may see, or nothing is written (``services.contacts_bulk_tag``)."""
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


# --- Saved views ----------------------------------------------------------------------------------


def _list_url(query: str) -> str:
    return reverse("contacts:list") + (f"?{query}" if query else "")


@login_required
@permission_required("contacts.view_contact", raise_exception=True)
def saved_view_list(request: HttpRequest) -> HttpResponse:
    """GET: the user's views (rename, share, delete) and the team's. POST: save the list's current filters
    (``query``) under a name, then show the list with the view applied."""
    if request.method == "POST":
        form = SavedViewForm(request.POST)
        query = request.POST.get("query", "")
        if not form.is_valid():
            messages.error(request, _form_errors(form))
            return redirect(_list_url(query))
        try:
            view = saved_view_create(
                owner=request.user,
                name=form.cleaned_data["name"],
                query=form.cleaned_data["query"],
                shared=form.cleaned_data["shared"],
            )
        except ValidationError as exc:
            messages.error(request, _error_text(exc))
            return redirect(_list_url(query))
        messages.success(request, _("Saved the view “%(name)s”.") % {"name": view.name})
        return redirect(_list_url(view.query))
    views = list(saved_views_for(request.user))
    # One filter set reads every view's filters as chips (its choices are loaded once).
    filterset = DashboardContactFilterSet(QueryDict(), queryset=Contact.objects.none(), request=request)
    list_url = reverse("contacts:list")
    rows = [
        {
            "view": view,
            "form": SavedViewForm(initial={"name": view.name, "shared": view.shared}, prefix=f"v{view.pk}"),
            "chips": filterset.chips(list_url, data=QueryDict(view.query)),
        }
        for view in views
    ]
    return render(
        request,
        "contacts/list/saved_views.html",
        {
            "mine": [row for row in rows if row["view"].owner_id == request.user.pk],
            "team": [row for row in rows if row["view"].owner_id != request.user.pk],
            "can_share_views": request.user.has_perm("contacts.share_savedview"),
            "list_url": list_url,
        },
    )


@require_POST
@login_required
@permission_required("contacts.view_contact", raise_exception=True)
def saved_view_change(request: HttpRequest, pk: int) -> HttpResponse:
    """Rename a view, or share or unshare it (the owner only; another's view is a 404)."""
    view = get_object_or_404(saved_views_owned(request.user), pk=pk)
    form = SavedViewForm(request.POST, prefix=f"v{view.pk}")
    back = reverse("contacts:saved_views")
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect(back)
    shared = form.cleaned_data["shared"] if request.user.has_perm("contacts.share_savedview") else None
    try:
        saved_view_update(view=view, actor=request.user, name=form.cleaned_data["name"], shared=shared)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return redirect(back)
    messages.success(request, _("Saved the view “%(name)s”.") % {"name": view.name})
    return redirect(back)


@require_POST
@login_required
@permission_required("contacts.view_contact", raise_exception=True)
def saved_view_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a view (the owner only; another's view is a 404)."""
    view = get_object_or_404(saved_views_owned(request.user), pk=pk)
    saved_view_delete(view=view, actor=request.user)
    messages.success(request, _("Deleted the view “%(name)s”.") % {"name": view.name})
    return redirect(_safe_next(request, reverse("contacts:saved_views")))
