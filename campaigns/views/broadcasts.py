"""Broadcast pages (群发): the list, the approval queue, the editor with its live estimate of who will receive
it and a preview for one recipient, a broadcast's page with its live progress (and what holds the waiting
messages) and results, the actions on it (submit, approve, reject, cancel); and the outbox.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import content, policy, selectors, services
from ..filtersets import BroadcastFilterSet, OutboxMessageFilterSet
from ..forms import BroadcastForm, attach_service_errors, fit_broadcast_filters, fit_outbox_filters
from ..forms_sending import BroadcastEstimateForm
from ..models import Broadcast, Delivery, Medium
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


# --- The editor's estimate and preview -------------------------------------------------------------


def _estimate_author(request: HttpRequest):
    """Whose contacts the broadcast reaches: the user's for a new one, its author's for one being edited."""
    pk = request.POST.get("broadcast", "")
    if pk.isdigit():
        return get_object_or_404(selectors.broadcast_list(request.user), pk=int(pk)).created_by
    return request.user


def estimate_context(
    *, author, rules, community_ids, template, variables, medium, send_at, defer=True, sample=None
) -> dict:
    """Who of the audience would receive the message (the planner's own checks counted by reason), whether
    the quiet hours would hold it at ``send_at``, and the message as one recipient would read it: ``sample``
    when given (one of ``user``'s contacts), else the first contact who would receive it."""
    if rules is None and not community_ids:
        return {"estimate_note": _("Choose a segment or a community to see who would receive it.")}
    try:
        audience = selectors.audience_contacts(author=author, rules=rules, community_ids=community_ids)
    except ValidationError:
        return {"estimate_note": _("The segment's conditions are not valid; fix them on the segment's page.")}
    now = timezone.now()
    is_marketing = not (template is not None and template.is_service)
    estimate = policy.recipients_estimate(audience, medium=medium, is_marketing=is_marketing, now=now)
    labels = dict(Delivery.Reason.choices)
    medium_label = dict(Medium.choices).get(medium, medium)
    rows = [
        {
            "reason": reason,
            "label": labels[reason]
            if reason != Delivery.Reason.NO_ADDRESS
            else _("No address for %(medium)s") % {"medium": medium_label},
            "count": n,
        }
        for reason, n in estimate["by_reason"].items()
    ]
    quiet_until = policy.quiet_hours_end(send_at or now, policy=policy.policy_get())
    context = {
        "estimate": estimate,
        "estimate_rows": rows,
        "quiet_until": quiet_until,
        "quiet_defer": defer,
        "send_later": send_at is not None,
    }
    if template is None:
        return context
    if sample is None:
        checked = policy.recipients_checked(audience, medium=medium, is_marketing=is_marketing, now=now)
        sample = checked.filter(d_reason="").select_related("owner").order_by("pk").first()
        context["sample_is_first"] = True
    else:
        context["sample_outside"] = not audience.filter(pk=sample.pk).exists()
    if sample is None:
        return context
    values = {key: value for key, value in (variables or {}).items() if str(value).strip()}
    used = content.template_placeholders(template.body) | content.template_placeholders(template.subject or "")
    context.update(
        sample=sample,
        sample_body=content.template_preview(template, sample, variables=values),
        sample_subject=content.template_preview(template.subject, sample, variables=values) if template.subject else "",
        sample_missing=sorted(name for name in used & content.VARIABLE_PLACEHOLDERS if name not in values),
    )
    return context


@require_POST
@login_required
def broadcast_estimate(request: HttpRequest) -> HttpResponse:
    """The editor's estimate and preview (htmx posts the form's fields as they change)."""
    user = request.user
    if not (user.has_perm("campaigns.add_broadcast") or user.has_perm("campaigns.change_broadcast")):
        raise PermissionDenied
    author = _estimate_author(request)
    form = BroadcastEstimateForm(request.POST, user=user)
    # A contact to preview for that matches nobody is shown by the preview's own field; the rest still counts.
    problems = [
        f"{form.fields[name].label or name}: {' '.join(errors)}"
        for name, errors in form.errors.items()
        if name != "sample"
    ]
    if problems:
        return render(request, "campaigns/partials/broadcast_estimate.html", {"estimate_errors": problems})
    data = form.cleaned_data
    later = data.get("when") == BroadcastForm.LATER and data.get("scheduled_at")
    context = estimate_context(
        author=author,
        rules=data["segment"].rules if data["segment"] is not None else None,
        community_ids=[community.pk for community in data["communities"]],
        template=data["template"],
        variables=data["variables"],
        medium=data["medium"],
        send_at=data["scheduled_at"] if later else None,
        defer=request.POST.get("defer_quiet_hours") in ("on", "true", "1"),
        sample=data.get("sample"),
    )
    return render(request, "campaigns/partials/broadcast_estimate.html", {**context, "sample_form": form})


# --- A broadcast's page -------------------------------------------------------------------------


def _holds(data: dict) -> list[dict]:
    """What holds the waiting messages, for the page: count, until when (with the date when not today)."""
    today = timezone.localdate()
    labels = dict(Delivery.Hold.choices)
    holds = []
    for hold in data.get("holds", []):
        until = timezone.localtime(hold["until"])
        text = date_format(until, "H:i" if until.date() == today else "m-d H:i")
        holds.append({**hold, "label": labels.get(hold["hold"], hold["hold"]), "until_text": text})
    return holds


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
    holds = _holds(data)
    return {
        "broadcast": broadcast,
        "progress": data,
        "percent": data["percent"],
        "holds": holds,
        "due_now": data["pending"] - sum(hold["count"] for hold in holds),
        "can_list_recipients": user.has_perm("campaigns.view_delivery") and data["targeted"] > 0,
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
    context["communities"] = list(broadcast.communities.all())
    if broadcast.status in (Broadcast.Status.DRAFT, Broadcast.Status.PENDING_APPROVAL, Broadcast.Status.SCHEDULED):
        # Who would receive it if it went now: the planner's checks over the live audience, counted by reason.
        if broadcast.status != Broadcast.Status.SCHEDULED:
            context["audience_now"] = selectors.broadcast_audience(broadcast).count()
        context.update(
            estimate_context(
                author=broadcast.created_by,
                # The rules planning will read: frozen at approval, else the segment's.
                rules=selectors.broadcast_segment_rules(broadcast) if broadcast.segment_id else None,
                community_ids=[community.pk for community in context["communities"]],
                template=broadcast.template,
                variables=broadcast.variables,
                medium=broadcast.medium,
                send_at=broadcast.scheduled_at if broadcast.status == Broadcast.Status.SCHEDULED else None,
                defer=broadcast.defer_quiet_hours,
            )
        )
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
