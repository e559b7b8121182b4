"""Automation (SOP) pages: the list, the editor, switching one on (with the explicit, previewed “also apply to
the contacts who match now”) or off, and each automation's run history (due, fired, skipped and why, and the
message or task of each run)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET

from .. import automations, content, selectors
from ..filtersets import AutomationRunFilterSet
from ..forms import (
    ACTION_FIELDS,
    AUTOMATION_ERROR_FIELDS,
    TRIGGER_FIELDS,
    AutomationForm,
    attach_service_errors,
)
from ..forms_sending import AutomationActivateForm, fit_run_filters
from ..models import Automation, AutomationRun
from .common import error_text, is_htmx, paginate, safe_next

# --- Automations (SOP) ----------------------------------------------------------------------------


def _automation_form_context(form: AutomationForm, automation: Automation | None) -> dict:
    return {
        "form": form,
        "automation": automation,
        "trigger_fields": {str(k): v for k, v in TRIGGER_FIELDS.items()},
        "action_fields": {str(k): v for k, v in ACTION_FIELDS.items()},
        "placeholders": content.PLACEHOLDERS.items(),
    }


@login_required
@permission_required("campaigns.view_automation", raise_exception=True)
def automation_list(request: HttpRequest) -> HttpResponse:
    page_obj = paginate(request, selectors.automation_list(request.user))
    return render(
        request,
        "campaigns/automation_list.html",
        {
            "page_obj": page_obj,
            "automations": page_obj.object_list,
            "can_add": request.user.has_perm("campaigns.add_automation"),
            "can_change": request.user.has_perm("campaigns.change_automation"),
        },
    )


@login_required
@permission_required("campaigns.add_automation", raise_exception=True)
def automation_create(request: HttpRequest) -> HttpResponse:
    form = AutomationForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            automation = automations.automation_create(created_by=request.user, **form.service_fields())
        except ValidationError as exc:
            attach_service_errors(form, exc, field_map=AUTOMATION_ERROR_FIELDS)
        else:
            messages.success(request, _("Automation “%(name)s” saved.") % {"name": automation.name})
            return redirect("campaigns:automation_list")
    return render(request, "campaigns/automation_form.html", _automation_form_context(form, None))


@login_required
@permission_required("campaigns.change_automation", raise_exception=True)
def automation_edit(request: HttpRequest, pk: int) -> HttpResponse:
    automation = get_object_or_404(selectors.automation_list(request.user), pk=pk)
    form = AutomationForm(request.POST or None, user=request.user, initial=AutomationForm.initial_for(automation))
    if request.method == "POST" and form.is_valid():
        try:
            automation = automations.automation_update(automation=automation, **form.service_fields())
        except ValidationError as exc:
            attach_service_errors(form, exc, field_map=AUTOMATION_ERROR_FIELDS)
        else:
            messages.success(request, _("Automation “%(name)s” saved.") % {"name": automation.name})
            return redirect("campaigns:automation_list")
    return render(request, "campaigns/automation_form.html", _automation_form_context(form, automation))


@login_required
@permission_required("campaigns.change_automation", raise_exception=True)
def automation_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the switch-on panel — how many contacts match the trigger now, and the box to also apply it to
    them (unticked: history is never replayed by accident). POST: switch on (``active=1``) or off."""
    automation = get_object_or_404(selectors.automation_list(request.user), pk=pk)
    if request.method != "POST":
        context = {
            "automation": automation,
            "matching_now": automations.automation_backfill_count(automation) if not automation.is_active else 0,
            "next": safe_next(request, reverse("campaigns:automation_list")),
        }
        template = (
            "campaigns/partials/automation_activate.html" if is_htmx(request) else "campaigns/automation_activate.html"
        )
        return render(request, template, context)
    active = request.POST.get("active") == "1"
    form = AutomationActivateForm(request.POST)
    apply_to_current = active and form.is_valid() and form.cleaned_data["apply_to_current"]
    try:
        automation = automations.automation_set_active(
            automation=automation, active=active, apply_to_current=apply_to_current
        )
    except ValidationError as exc:
        messages.error(request, error_text(exc))
    else:
        if automation.is_active and apply_to_current:
            messages.success(
                request,
                ngettext(
                    "“%(name)s” is on, and applies to %(count)s contact who matches now.",
                    "“%(name)s” is on, and applies to %(count)s contacts who match now.",
                    automation.applied_to_current,
                )
                % {"name": automation.name, "count": automation.applied_to_current},
            )
        elif automation.is_active:
            messages.success(request, _("“%(name)s” is on.") % {"name": automation.name})
        else:
            messages.success(request, _("“%(name)s” is off.") % {"name": automation.name})
    return redirect(safe_next(request, reverse("campaigns:automation_list")))


@require_GET
@login_required
@permission_required("campaigns.view_automation", raise_exception=True)
def automation_runs(request: HttpRequest, pk: int) -> HttpResponse:
    """An automation's runs, newest first: when each was due, what it did (the message and its fate, the
    task) or why it was skipped — for the contacts the user may see."""
    automation = get_object_or_404(selectors.automation_list(request.user), pk=pk)
    runs = selectors.automation_runs(request.user, automation)
    filterset = AutomationRunFilterSet(request.GET, queryset=runs, request=request)
    page_obj = paginate(request, filterset.qs)
    for run in page_obj.object_list:
        run.event_label = _event_label(run)
    counts = selectors.automation_run_counts(request.user, automation)
    return render(
        request,
        "campaigns/automation_runs.html",
        {
            "automation": automation,
            "filter_form": fit_run_filters(filterset.form),
            "page_obj": page_obj,
            "runs": page_obj.object_list,
            "counts": [
                {"status": value, "label": label, "count": counts[value]}
                for value, label in AutomationRun.Status.choices
            ],
            "can_change": request.user.has_perm("campaigns.change_automation"),
        },
    )


# --- Follow-up tasks ------------------------------------------------------------------------------


def _event_label(run: AutomationRun) -> str:
    """The event a run answers, in words, from its key (``purchase:42``, ``birthday:2026``, ``inactive:…``)."""
    kind, _sep, rest = run.key.partition(":")
    if kind == "created":
        return _("Contact created")
    if kind == "purchase":
        return _("Order #%(id)s") % {"id": run.purchase_id or rest}
    if kind == "repurchase":
        return _("Due to buy again (order #%(id)s)") % {"id": run.purchase_id or rest.split(":")[0]}
    if kind == "tag":
        return _("Tagged")
    if kind == "join":
        return _("Joined a community")
    if kind == "birthday":
        return _("Birthday %(year)s") % {"year": rest}
    if kind == "inactive":
        return _("Inactive since %(date)s") % {"date": rest}
    return run.key
