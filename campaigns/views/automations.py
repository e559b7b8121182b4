"""Automation (SOP) pages, and the follow-up tasks (跟进任务) they and the staff create."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import automations, content, selectors
from ..forms import (
    ACTION_FIELDS,
    AUTOMATION_ERROR_FIELDS,
    TRIGGER_FIELDS,
    AutomationForm,
    attach_service_errors,
)
from ..models import Automation
from .common import error_text, paginate, safe_next

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


@require_POST
@login_required
@permission_required("campaigns.change_automation", raise_exception=True)
def automation_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    automation = get_object_or_404(selectors.automation_list(request.user), pk=pk)
    active = request.POST.get("active") == "1"
    try:
        automation = automations.automation_set_active(automation=automation, active=active)
    except ValidationError as exc:
        messages.error(request, error_text(exc))
    else:
        if automation.is_active:
            messages.success(request, _("“%(name)s” is on.") % {"name": automation.name})
        else:
            messages.success(request, _("“%(name)s” is off.") % {"name": automation.name})
    return redirect(safe_next(request, reverse("campaigns:automation_list")))


# --- Follow-up tasks ------------------------------------------------------------------------------
