"""Broadcast pages (群发): the list, the approval queue, the editor, a broadcast's page with its live progress
and results, the actions on it (submit, approve, reject, cancel); and the outbox.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import content, selectors, services
from ..filtersets import BroadcastFilterSet, OutboxMessageFilterSet
from ..forms import BroadcastForm, attach_service_errors, fit_broadcast_filters, fit_outbox_filters
from ..models import Broadcast, Delivery
from .common import error_text, paginate, safe_next

# Poll the progress every 2 s while sending or about to send; a broadcast due later is checked slowly.
POLL_SENDING = 2
POLL_SCHEDULED_LATER = 30
DUE_SOON = dt.timedelta(minutes=2)


# --- Broadcasts -----------------------------------------------------------------------------------


@login_required
@permission_required("campaigns.view_broadcast", raise_exception=True)
def broadcast_list(request: HttpRequest) -> HttpResponse:
    filterset = BroadcastFilterSet(request.GET, queryset=selectors.broadcast_list(request.user), request=request)
    filter_form = fit_broadcast_filters(filterset.form)
    page_obj = paginate(request, filterset.qs)
    can_approve = services.can_approve(request.user)
    return render(
        request,
        "campaigns/broadcast_list.html",
        {
            "filter_form": filter_form,
            "page_obj": page_obj,
            "broadcasts": page_obj.object_list,
            "can_add": request.user.has_perm("campaigns.add_broadcast"),
            "can_approve": can_approve,
            "pending_count": (
                Broadcast.objects.visible_to(request.user).filter(status=Broadcast.Status.PENDING_APPROVAL).count()
                if can_approve
                else 0
            ),
        },
    )


@login_required
@permission_required("campaigns.approve_broadcast", raise_exception=True)
def broadcast_pending(request: HttpRequest) -> HttpResponse:
    """The managers' queue: broadcasts waiting for approval, oldest send time first."""
    broadcasts = (
        selectors.broadcast_list(request.user)
        .filter(status=Broadcast.Status.PENDING_APPROVAL)
        .order_by("scheduled_at", "created_at", "id")
    )
    page_obj = paginate(request, broadcasts)
    return render(
        request, "campaigns/broadcast_pending.html", {"page_obj": page_obj, "broadcasts": page_obj.object_list}
    )


def _broadcast_form_context(form: BroadcastForm, broadcast: Broadcast | None, user) -> dict:
    return {
        "form": form,
        "broadcast": broadcast,
        "placeholders": content.PLACEHOLDERS.items(),
        "can_approve": services.can_approve(user),
    }


def _submit_after_save(request: HttpRequest, broadcast: Broadcast) -> None:
    try:
        broadcast = services.broadcast_submit(broadcast=broadcast, user=request.user)
    except ValidationError as exc:
        messages.error(request, _("Saved as a draft, but not submitted: %(problem)s") % {"problem": error_text(exc)})
    else:
        messages.success(request, _submitted_message(broadcast))


def _submitted_message(broadcast: Broadcast) -> str:
    if broadcast.status == Broadcast.Status.PENDING_APPROVAL:
        return _("“%(name)s” is waiting for a manager's approval.") % {"name": broadcast.name}
    return _("“%(name)s” is scheduled.") % {"name": broadcast.name}


@login_required
@permission_required("campaigns.add_broadcast", raise_exception=True)
def broadcast_create(request: HttpRequest) -> HttpResponse:
    # "Use in a broadcast" on a template's page links here with ?template=<id>.
    initial = {"template": request.GET["template"]} if request.GET.get("template", "").isdigit() else {}
    form = BroadcastForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            broadcast = services.broadcast_create(created_by=request.user, **form.service_fields())
        except ValidationError as exc:
            attach_service_errors(form, exc)
        else:
            if "submit" in request.POST:
                _submit_after_save(request, broadcast)
            else:
                messages.success(request, _("Draft “%(name)s” saved.") % {"name": broadcast.name})
            return redirect("campaigns:broadcast_detail", pk=broadcast.pk)
    return render(request, "campaigns/broadcast_form.html", _broadcast_form_context(form, None, request.user))


@login_required
@permission_required("campaigns.change_broadcast", raise_exception=True)
def broadcast_edit(request: HttpRequest, pk: int) -> HttpResponse:
    broadcast = get_object_or_404(selectors.broadcast_list(request.user), pk=pk)
    if broadcast.status != Broadcast.Status.DRAFT:
        messages.error(
            request,
            _("Only a draft can be edited; this broadcast is %(status)s.") % {"status": broadcast.get_status_display()},
        )
        return redirect("campaigns:broadcast_detail", pk=broadcast.pk)
    initial = BroadcastForm.initial_for(broadcast)
    form = BroadcastForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            broadcast = services.broadcast_update(broadcast=broadcast, user=request.user, **form.service_fields())
        except ValidationError as exc:
            attach_service_errors(form, exc)
        else:
            if "submit" in request.POST:
                _submit_after_save(request, broadcast)
            else:
                messages.success(request, _("Draft “%(name)s” saved.") % {"name": broadcast.name})
            return redirect("campaigns:broadcast_detail", pk=broadcast.pk)
    return render(request, "campaigns/broadcast_form.html", _broadcast_form_context(form, broadcast, request.user))


def _progress_context(request: HttpRequest, broadcast: Broadcast) -> dict:
    sent_or_over = broadcast.status in (Broadcast.Status.SENT, Broadcast.Status.CANCELLED)
    data = selectors.broadcast_results(broadcast) if sent_or_over else selectors.broadcast_progress(broadcast)
    reason_labels = dict(Delivery.Reason.choices)
    suppressed = [
        {"reason": reason, "label": reason_labels.get(reason, reason), "count": n}
        for reason, n in data["suppressed_by_reason"].items()
        if n
    ]
    user = request.user
    is_draft = broadcast.status == Broadcast.Status.DRAFT
    can_change = user.has_perm("campaigns.change_broadcast")
    poll = None
    if broadcast.status == Broadcast.Status.SENDING:
        poll = POLL_SENDING
    elif broadcast.status == Broadcast.Status.SCHEDULED:
        due_soon = broadcast.scheduled_at is None or broadcast.scheduled_at <= timezone.now() + DUE_SOON
        poll = POLL_SENDING if due_soon else POLL_SCHEDULED_LATER
    return {
        "broadcast": broadcast,
        "progress": data,
        "percent": data["percent"],
        "suppressed": suppressed,
        "poll_seconds": poll,
        "show_results": sent_or_over and data["targeted"] > 0,
        "can_edit": can_change and is_draft,
        "can_submit": can_change and is_draft,
        "can_cancel": can_change and broadcast.status in services.CANCELLABLE,
        "can_review": services.can_approve(user) and broadcast.status == Broadcast.Status.PENDING_APPROVAL,
    }


@login_required
@permission_required("campaigns.view_broadcast", raise_exception=True)
def broadcast_detail(request: HttpRequest, pk: int) -> HttpResponse:
    broadcast = get_object_or_404(selectors.broadcast_list(request.user), pk=pk)
    context = _progress_context(request, broadcast)
    if broadcast.status in (Broadcast.Status.DRAFT, Broadcast.Status.PENDING_APPROVAL):
        # Who would receive it if it went now: one count query over the live audience.
        context["audience_now"] = selectors.broadcast_audience(broadcast).count()
    context["communities"] = list(broadcast.communities.all())
    return render(request, "campaigns/broadcast_detail.html", context)


@login_required
@permission_required("campaigns.view_broadcast", raise_exception=True)
def broadcast_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The live block of the broadcast page alone, polled by htmx while the broadcast is scheduled or sending."""
    broadcast = get_object_or_404(selectors.broadcast_list(request.user), pk=pk)
    return render(request, "campaigns/partials/broadcast_progress.html", _progress_context(request, broadcast))


def _broadcast_action(request: HttpRequest, pk: int, action, success: str) -> HttpResponse:
    broadcast = get_object_or_404(Broadcast.objects.visible_to(request.user), pk=pk)
    back = safe_next(request, reverse("campaigns:broadcast_detail", args=[broadcast.pk]))
    try:
        broadcast = action(broadcast=broadcast, user=request.user)
    except ValidationError as exc:
        messages.error(request, error_text(exc))
    else:
        messages.success(request, success if success else _submitted_message(broadcast))
    return redirect(back)


@require_POST
@login_required
@permission_required("campaigns.change_broadcast", raise_exception=True)
def broadcast_submit(request: HttpRequest, pk: int) -> HttpResponse:
    return _broadcast_action(request, pk, services.broadcast_submit, "")


@require_POST
@login_required
@permission_required("campaigns.approve_broadcast", raise_exception=True)
def broadcast_approve(request: HttpRequest, pk: int) -> HttpResponse:
    return _broadcast_action(request, pk, services.broadcast_approve, _("Approved: the broadcast is scheduled."))


@require_POST
@login_required
@permission_required("campaigns.approve_broadcast", raise_exception=True)
def broadcast_reject(request: HttpRequest, pk: int) -> HttpResponse:
    return _broadcast_action(
        request, pk, services.broadcast_reject, _("Rejected: the broadcast went back to its author as a draft.")
    )


@require_POST
@login_required
@permission_required("campaigns.change_broadcast", raise_exception=True)
def broadcast_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _broadcast_action(request, pk, services.broadcast_cancel, _("The broadcast is cancelled."))


# --- Outbox ---------------------------------------------------------------------------------------


@login_required
@permission_required("campaigns.view_delivery", raise_exception=True)
def outbox(request: HttpRequest) -> HttpResponse:
    """What the outbox gateway "sent", newest first: the messages a local install delivers nowhere else."""
    rows = selectors.outbox_list(request.user).order_by("-id")
    filterset = OutboxMessageFilterSet(request.GET, queryset=rows, request=request)
    filter_form = fit_outbox_filters(filterset.form, user=request.user)
    page_obj = paginate(request, filterset.qs)
    return render(
        request,
        "campaigns/outbox.html",
        {"filter_form": filter_form, "page_obj": page_obj, "outbox_messages": page_obj.object_list},
    )
