"""Follow-up tasks (跟进任务): the list of one's own (managers: everyone's, by assignee) and completing one."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import selectors, services
from ..filtersets import FollowUpTaskFilterSet
from ..forms import fit_task_filters
from ..models import FollowUpTask
from .common import error_text, paginate, safe_next


@login_required
@permission_required("campaigns.view_followuptask", raise_exception=True)
def task_list(request: HttpRequest) -> HttpResponse:
    """The logged-in operator's follow-up tasks (跟进任务); managers see everyone's and filter by assignee."""
    shows_assignee = FollowUpTask.objects.sees_all(request.user)
    filterset = FollowUpTaskFilterSet(request.GET, queryset=selectors.task_list(request.user), request=request)
    filter_form = fit_task_filters(filterset.form, shows_assignee=shows_assignee)
    page_obj = paginate(request, filterset.qs)
    return render(
        request,
        "campaigns/task_list.html",
        {
            "filter_form": filter_form,
            "page_obj": page_obj,
            "tasks": page_obj.object_list,
            "shows_assignee": shows_assignee,
            "can_change": request.user.has_perm("campaigns.change_followuptask"),
        },
    )


@require_POST
@login_required
@permission_required("campaigns.change_followuptask", raise_exception=True)
def task_done(request: HttpRequest, pk: int) -> HttpResponse:
    task = get_object_or_404(selectors.task_list(request.user), pk=pk)
    try:
        task = services.follow_up_task_complete(task=task, user=request.user)
    except ValidationError as exc:
        messages.error(request, error_text(exc))
    else:
        messages.success(request, _("Done: “%(title)s”.") % {"title": task.title})
    return redirect(safe_next(request, reverse("campaigns:task_list")))
