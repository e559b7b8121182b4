"""Follow-up tasks (跟进任务) as a daily tool: the reminders that fired, one's own tasks (all, due today,
overdue), everyone's by staff member for managers, a form to create a task by hand, and completing a
task with its outcome (which goes on the contact's timeline). Writes go through ``campaigns.followups``."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from contacts.models import Touchpoint

from .. import followups, selectors
from ..filtersets import FollowUpTaskFilterSet
from ..forms import attach_service_errors, fit_task_filters
from ..forms_tasks import FollowUpTaskCompleteForm, FollowUpTaskForm, contact_choices
from ..models import FollowUpTask
from .common import error_text, paginate, safe_next

TaskView = followups.TaskView


def _views_for(user) -> list[str]:
    views = [TaskView.MINE, TaskView.TODAY, TaskView.OVERDUE]
    return [*views, TaskView.ALL] if FollowUpTask.objects.sees_all(user) else views


def _task_list_context(request: HttpRequest, *, create_form: FollowUpTaskForm | None = None) -> dict:
    user = request.user
    now = timezone.now()
    sees_all = FollowUpTask.objects.sees_all(user)
    views = _views_for(user)
    view = request.GET.get("view")
    if view not in views:
        view = TaskView.ALL if sees_all else TaskView.MINE
    filterset = FollowUpTaskFilterSet(request.GET, queryset=selectors.task_list(user), request=request)
    filter_form = fit_task_filters(filterset.form, shows_assignee=sees_all and view != TaskView.MINE)
    tasks = filterset.qs.filter(followups.task_view_q(view, user=user, now=now))
    if view in (TaskView.TODAY, TaskView.OVERDUE) and not (sees_all and request.GET.get("assignee")):
        tasks = tasks.filter(assignee=user)
    tasks = tasks.select_related("completed_by").order_by("status", F("due_at").asc(nulls_last=True), "-id")
    page_obj = paginate(request, tasks)
    can_change = user.has_perm("campaigns.change_followuptask")
    can_add = user.has_perm("campaigns.add_followuptask")
    counts = followups.task_counts(user, now=now)
    labels = {
        TaskView.MINE: _("My tasks"),
        TaskView.TODAY: _("Due today"),
        TaskView.OVERDUE: _("Overdue"),
        TaskView.ALL: _("Everyone's"),
    }
    return {
        "filter_form": filter_form,
        "page_obj": page_obj,
        "tasks": page_obj.object_list,
        "shows_assignee": sees_all and view != TaskView.MINE,
        "can_change": can_change,
        "view": view,
        "views": [{"key": key, "label": labels[key], "count": counts[key]} for key in views],
        "counts": counts,
        "reminders": list(followups.task_reminders(user)),
        "by_staff": followups.task_counts_by_staff(user, now=now) if sees_all else None,
        "create_form": (create_form or FollowUpTaskForm(user=user)) if can_add else None,
        "create_open": create_form is not None,
        "now": now,
        "medium_choices": Touchpoint.Medium.choices,
        # Where the completion forms come back to: this list (not the create URL after a failed create).
        "list_url": request.get_full_path() if request.method == "GET" else reverse("campaigns:task_list"),
    }


@login_required
@permission_required("campaigns.view_followuptask", raise_exception=True)
def task_list(request: HttpRequest) -> HttpResponse:
    """The reminders that fired, then the tasks of the chosen view (mine, due today, overdue, everyone's
    for managers) with their counts; managers also get the open tasks per staff member."""
    return render(request, "campaigns/task_list.html", _task_list_context(request))


@require_POST
@login_required
@permission_required("campaigns.add_followuptask", raise_exception=True)
def task_create(request: HttpRequest) -> HttpResponse:
    """A task made by hand on the task list. Errors are shown on the form's fields."""
    form = FollowUpTaskForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            task = followups.follow_up_task_add(actor=request.user, **form.service_values())
        except ValidationError as exc:
            attach_service_errors(form, exc)
        else:
            messages.success(request, _("Task “%(title)s” created.") % {"title": task.title})
            return redirect(safe_next(request, reverse("campaigns:task_list")))
    return render(request, "campaigns/task_list.html", _task_list_context(request, create_form=form))


@require_GET
@login_required
@permission_required("campaigns.add_followuptask", raise_exception=True)
def task_contact_options(request: HttpRequest) -> HttpResponse:
    """The contact drop-down's options for a search (name or phone), for the new-task form (htmx)."""
    choices = contact_choices(request.user, search=request.GET.get("q", ""))
    return render(request, "campaigns/partials/task_contact_options.html", {"choices": choices})


@require_POST
@login_required
@permission_required("campaigns.change_followuptask", raise_exception=True)
def task_done(request: HttpRequest, pk: int) -> HttpResponse:
    """Complete a task, with an optional outcome and the medium of the follow-up; both go on the contact's
    timeline. Back to ``next`` (the task list, or the contact's page)."""
    task = get_object_or_404(selectors.task_list(request.user), pk=pk)
    form = FollowUpTaskCompleteForm(request.POST, task=task)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    else:
        try:
            task = followups.follow_up_task_finish(task=task, user=request.user, **form.service_values())
        except ValidationError as exc:
            messages.error(request, error_text(exc))
        except PermissionDenied as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("Done: “%(title)s”.") % {"title": task.title})
    return redirect(safe_next(request, reverse("campaigns:task_list")))
