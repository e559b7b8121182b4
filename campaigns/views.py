"""Dashboard pages for campaigns: segments with a rules builder and live counts, the script and material
library (话术/素材库), broadcasts (群发) with approval and a live progress bar, the outbox, the frequency
policy, automations (SOP) and follow-up tasks (跟进任务).

Reads start from ``campaigns.selectors`` so that an operator reaches only their own broadcasts, the
messages to their own contacts and their own tasks; an id outside that set is a 404. Writes go through
the services, whose ``ValidationError`` messages are shown on the form, naming the field.
"""

from __future__ import annotations

import datetime as dt
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from communities.models import Community
from contacts.forms import staff_users, user_label
from contacts.models import Channel, Contact, Tag

from . import automations, content, policy, segments, selectors, sending, services
from .filtersets import BroadcastFilterSet, FollowUpTaskFilterSet, OutboxMessageFilterSet
from .forms import (
    ACTION_FIELDS,
    AUTOMATION_ERROR_FIELDS,
    TRIGGER_FIELDS,
    AutomationForm,
    BroadcastForm,
    CapFormSet,
    MessageTemplateForm,
    PolicyForm,
    SegmentCountForm,
    SegmentForm,
    TemplatePreviewForm,
    attach_service_errors,
    caps_initial,
    error_key_label,
    fit_broadcast_filters,
    fit_outbox_filters,
    fit_task_filters,
    formset_caps,
    mark_cap_errors,
)
from .models import Automation, Broadcast, Delivery, FollowUpTask, FrequencyCap, MessageTemplate, Segment

PAGE_SIZE = 50
# Poll the progress every 2 s while sending or about to send; a broadcast due later is checked slowly.
POLL_SENDING = 2
POLL_SCHEDULED_LATER = 30
DUE_SOON = dt.timedelta(minutes=2)


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        return target
    return fallback


def _error_text(exc: ValidationError) -> str:
    """A service error as one line for a flash message, each part named by its key."""
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    parts = []
    for key, errors in exc.message_dict.items():
        text = " ".join(errors)
        parts.append(text if key in ("__all__", "status") else f"{error_key_label(key)}: {text}")
    return " ".join(parts)


def _page(request: HttpRequest, queryset, size: int = PAGE_SIZE):
    return Paginator(queryset, size).get_page(request.GET.get("page"))


# --- Segments -------------------------------------------------------------------------------------

# How the rules builder asks for a value, by field (fields with choices get a multi-select).
VALUE_INPUTS = {
    "days_since_last_purchase": "int",
    "purchase_count": "int",
    "total_spent": "amount",
    "predicted_clv": "amount",
    "acquired_at": "date",
    "region": "text",
}
OPERATOR_LABELS = {
    "in": gettext_lazy("is any of"),
    "not_in": gettext_lazy("is none of"),
    "any": gettext_lazy("has any of"),
    "all": gettext_lazy("has all of"),
    "none": gettext_lazy("has none of"),
    "eq": gettext_lazy("is"),
    "gte": gettext_lazy("at least"),
    "lte": gettext_lazy("at most"),
    "between": gettext_lazy("between"),
    "is_empty": gettext_lazy("is empty"),
    "is_true": gettext_lazy("yes"),
    "is_false": gettext_lazy("no"),
}


def _segment_builder_data(user) -> dict:
    """The rule language for the builder (``static/js/segments.js``): every field with its operators, the
    input its value needs and, for fields that name rows (tags, channels, owners, communities), the rows
    the user may choose from."""
    model_choices = {
        "tags": [
            {"value": tag.pk, "label": f"{tag.group.name} / {tag.name}"}
            for tag in Tag.objects.select_related("group").order_by("group__sort_order", "group__name", "name")
        ],
        "channel": [{"value": c.pk, "label": c.name} for c in Channel.objects.order_by("name")],
        "owner": [{"value": u.pk, "label": user_label(u)} for u in staff_users()],
        "community": [{"value": c.pk, "label": c.name} for c in Community.objects.visible_to(user).order_by("name")],
        "birthday_month": [{"value": month, "label": str(month)} for month in range(1, 13)],
    }
    fields = []
    for spec in segments.segment_fields_describe():
        name = spec["field"]
        choices = spec["choices"] or model_choices.get(name)
        fields.append({**spec, "choices": choices, "input": "choices" if choices else VALUE_INPUTS.get(name, "text")})
    return {"fields": fields, "operators": {key: str(label) for key, label in OPERATOR_LABELS.items()}}


def _rule_error(message: str) -> dict:
    """``rules[1].value: choose at least one value`` → the path (the builder marks that condition) and the text."""
    path, sep, text = message.partition(": ")
    if sep and path.startswith("rules"):
        return {"path": path, "message": message}
    return {"path": "", "message": message}


def _rules_json(rules) -> str:
    return json.dumps(rules or segments.EMPTY_RULES, ensure_ascii=False, indent=2)


def _segment_editor_context(request: HttpRequest, form: SegmentForm, segment: Segment | None) -> dict:
    return {
        "form": form,
        "segment": segment,
        "builder_data": _segment_builder_data(request.user),
        "can_change": request.user.has_perm("campaigns.change_segment" if segment else "campaigns.add_segment"),
        "count": _saved_count(segment, request.user) if segment and not form.is_bound else None,
    }


def _saved_count(segment: Segment, user) -> int | None:
    """A saved segment's count; None when its rules no longer compile (the live count then names why)."""
    try:
        return segments.segment_count(segment, user=user)
    except ValidationError:
        return None


@login_required
@permission_required("campaigns.view_segment", raise_exception=True)
def segment_list(request: HttpRequest) -> HttpResponse:
    page_obj = _page(request, selectors.segment_list(request.user))
    return render(request, "campaigns/segment_list.html", {"page_obj": page_obj, "segments": page_obj.object_list})


@login_required
@permission_required("campaigns.view_segment", raise_exception=True)
def segment_row_count(request: HttpRequest, pk: int) -> HttpResponse:
    """One row's count, fetched lazily by the list (a count per row would be N queries on page load)."""
    segment = get_object_or_404(selectors.segment_list(request.user), pk=pk)
    try:
        count, error = segments.segment_count(segment, user=request.user), None
    except ValidationError as exc:
        count, error = None, _error_text(exc)
    return render(request, "campaigns/partials/segment_row_count.html", {"count": count, "error": error})


@login_required
@permission_required("campaigns.add_segment", raise_exception=True)
def segment_create(request: HttpRequest) -> HttpResponse:
    form = SegmentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            segment = services.segment_create(
                name=form.cleaned_data["name"],
                rules=form.cleaned_data["rules"],
                description=form.cleaned_data["description"],
                created_by=request.user,
            )
        except ValidationError as exc:
            attach_service_errors(form, exc)
        else:
            messages.success(request, _("Segment “%(name)s” saved.") % {"name": segment.name})
            return redirect("campaigns:segment_edit", pk=segment.pk)
    return render(request, "campaigns/segment_form.html", _segment_editor_context(request, form, None))


@login_required
@permission_required("campaigns.view_segment", raise_exception=True)
def segment_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """The segment's page: its live count and, for those who may change it, the editor."""
    segment = get_object_or_404(selectors.segment_list(request.user), pk=pk)
    if request.method == "POST":
        if not request.user.has_perm("campaigns.change_segment"):
            raise PermissionDenied
        form = SegmentForm(request.POST)
        if form.is_valid():
            try:
                segment = services.segment_update(segment=segment, **form.cleaned_data)
            except ValidationError as exc:
                attach_service_errors(form, exc)
            else:
                messages.success(request, _("Segment “%(name)s” saved.") % {"name": segment.name})
                return redirect("campaigns:segment_edit", pk=segment.pk)
    else:
        form = SegmentForm(
            initial={
                "name": segment.name,
                "description": segment.description,
                "rules": _rules_json(segment.rules),
            }
        )
    return render(request, "campaigns/segment_form.html", _segment_editor_context(request, form, segment))


@require_POST
@login_required
@permission_required("campaigns.view_segment", raise_exception=True)
def segment_count(request: HttpRequest) -> HttpResponse:
    """The live count of the rules being edited (posted by htmx): a number, or the problems naming the rule."""
    form = SegmentCountForm(request.POST)
    count, errors = None, []
    if form.is_valid():
        try:
            count = segments.segment_count(form.cleaned_data["rules"], user=request.user)
        except ValidationError as exc:
            errors = [_rule_error(message) for message in exc.messages]
    else:
        errors = [{"path": "", "message": error} for field_errors in form.errors.values() for error in field_errors]
    return render(request, "campaigns/partials/segment_count.html", {"count": count, "errors": errors})


# --- Template library -----------------------------------------------------------------------------


@login_required
@permission_required("campaigns.view_messagetemplate", raise_exception=True)
def template_list(request: HttpRequest) -> HttpResponse:
    templates = selectors.template_list(request.user)
    categories = sorted({c for c in templates.values_list("category", flat=True).distinct() if c})
    category = request.GET.get("category", "")
    show_archived = request.GET.get("archived") == "1"
    if category:
        templates = templates.filter(category=category)
    if not show_archived:
        templates = templates.filter(is_active=True)
    page_obj = _page(request, templates.order_by("category", "name", "id"))
    return render(
        request,
        "campaigns/template_list.html",
        {
            "page_obj": page_obj,
            "templates": page_obj.object_list,
            "categories": categories,
            "category": category,
            "show_archived": show_archived,
            "can_add": request.user.has_perm("campaigns.add_messagetemplate"),
            "can_change": request.user.has_perm("campaigns.change_messagetemplate"),
        },
    )


def _template_form_context(request: HttpRequest, form: MessageTemplateForm, template: MessageTemplate | None) -> dict:
    return {
        "form": form,
        "template_obj": template,
        "placeholders": content.PLACEHOLDERS.items(),
        "categories": sorted(
            {c for c in selectors.template_list(request.user).values_list("category", flat=True) if c}
        ),
    }


@login_required
@permission_required("campaigns.add_messagetemplate", raise_exception=True)
def template_create(request: HttpRequest) -> HttpResponse:
    form = MessageTemplateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            template = services.message_template_create(**form.cleaned_data, created_by=request.user)
        except ValidationError as exc:
            attach_service_errors(form, exc)
        else:
            messages.success(request, _("Template “%(name)s” saved.") % {"name": template.name})
            return redirect("campaigns:template_detail", pk=template.pk)
    return render(request, "campaigns/template_form.html", _template_form_context(request, form, None))


@login_required
@permission_required("campaigns.change_messagetemplate", raise_exception=True)
def template_edit(request: HttpRequest, pk: int) -> HttpResponse:
    template = get_object_or_404(selectors.template_list(request.user), pk=pk)
    if request.method == "POST":
        form = MessageTemplateForm(request.POST, editing=True)
        if form.is_valid():
            try:
                template = services.message_template_update(template=template, **form.cleaned_data)
            except ValidationError as exc:
                attach_service_errors(form, exc)
            else:
                messages.success(request, _("Template “%(name)s” saved.") % {"name": template.name})
                return redirect("campaigns:template_detail", pk=template.pk)
    else:
        form = MessageTemplateForm(
            editing=True,
            initial={
                field: getattr(template, field)
                for field in ("name", "category", "kind", "subject", "body", "is_service", "is_active")
            },
        )
    return render(request, "campaigns/template_form.html", _template_form_context(request, form, template))


def _preview(template: MessageTemplate, form: TemplatePreviewForm, user) -> dict:
    """Fill the template for the chosen contact (by default the user's most recent one)."""
    if not form.is_valid():
        return {"preview_form": form}
    contact = form.cleaned_data["contact"]
    if contact is None:
        contact = Contact.objects.live().visible_to(user).filter(erased_at__isnull=True).order_by("-pk").first()
    if contact is None:
        return {"preview_form": form, "preview_note": _("You have no contacts to preview the template for.")}
    variables = form.cleaned_data["variables"]
    try:
        body = content.template_preview(template, contact, variables=variables)
        subject = content.template_preview(template.subject, contact, variables=variables) if template.subject else ""
        used = content.template_placeholders(template.body) | (
            content.template_placeholders(template.subject) if template.subject else set()
        )
    except ValidationError as exc:
        attach_service_errors(form, exc, field_map={"body": "variables", "subject": "variables"})
        return {"preview_form": form, "preview_contact": contact}
    missing = sorted(name for name in used & content.VARIABLE_PLACEHOLDERS if not str(variables.get(name, "")).strip())
    return {
        "preview_form": form,
        "preview_contact": contact,
        "preview_subject": subject,
        "preview_body": body,
        "preview_missing": missing,
    }


@login_required
@permission_required("campaigns.view_messagetemplate", raise_exception=True)
def template_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A template with a preview for one of the user's contacts; htmx swaps just the preview."""
    template = get_object_or_404(selectors.template_list(request.user), pk=pk)
    form = TemplatePreviewForm(request.GET if "contact" in request.GET else {"contact": ""}, user=request.user)
    context = {
        "template_obj": template,
        "can_change": request.user.has_perm("campaigns.change_messagetemplate"),
        **_preview(template, form, request.user),
    }
    if _is_htmx(request):
        return render(request, "campaigns/partials/template_preview.html", context)
    return render(request, "campaigns/template_detail.html", context)


# --- Broadcasts -----------------------------------------------------------------------------------


@login_required
@permission_required("campaigns.view_broadcast", raise_exception=True)
def broadcast_list(request: HttpRequest) -> HttpResponse:
    filterset = BroadcastFilterSet(request.GET, queryset=selectors.broadcast_list(request.user), request=request)
    filter_form = fit_broadcast_filters(filterset.form)
    page_obj = _page(request, filterset.qs)
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
    page_obj = _page(request, broadcasts)
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
        messages.error(request, _("Saved as a draft, but not submitted: %(problem)s") % {"problem": _error_text(exc)})
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
        context["audience_now"] = sending.broadcast_audience(broadcast).count()
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
    back = _safe_next(request, reverse("campaigns:broadcast_detail", args=[broadcast.pk]))
    try:
        broadcast = action(broadcast=broadcast, user=request.user)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
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
    page_obj = _page(request, filterset.qs)
    return render(
        request,
        "campaigns/outbox.html",
        {"filter_form": filter_form, "page_obj": page_obj, "outbox_messages": page_obj.object_list},
    )


# --- Frequency policy -----------------------------------------------------------------------------

PRESET_LABELS = {
    "wecom_monthly": (
        _("WeCom default"),
        _("As many messages per calendar month as the month has days, on all media together."),
    ),
    "weekly_7": (_("7 per week"), _("At most 7 messages in any 7 days.")),
    "daily_1": (_("1 per day"), _("At most 1 message in any 24 hours.")),
}


@login_required
@permission_required("campaigns.change_frequencypolicy", raise_exception=True)
def policy_edit(request: HttpRequest) -> HttpResponse:
    current = policy.policy_get()
    caps = list(FrequencyCap.objects.all())
    if request.method == "POST" and request.POST.get("preset"):
        return _policy_preset(request, current)
    if request.method == "POST":
        form = PolicyForm(request.POST)
        formset = CapFormSet(request.POST, prefix="caps")
        if form.is_valid() and formset.is_valid():
            try:
                services.policy_update(user=request.user, caps=formset_caps(formset), **form.cleaned_data)
            except ValidationError as exc:
                attach_service_errors(form, exc)
                mark_cap_errors(formset, exc)
            else:
                messages.success(request, _("The frequency policy is saved."))
                return redirect("campaigns:policy")
    else:
        form = PolicyForm(
            initial={
                "quiet_hours_enabled": current.quiet_hours_enabled,
                "quiet_start": current.quiet_start,
                "quiet_end": current.quiet_end,
                "exempt_service_messages": current.exempt_service_messages,
            }
        )
        formset = CapFormSet(prefix="caps", initial=caps_initial(caps))
    return render(
        request,
        "campaigns/policy.html",
        {
            "form": form,
            "formset": formset,
            "policy": current,
            "presets": [(key, *PRESET_LABELS[key]) for key in policy.PRESETS if key in PRESET_LABELS],
        },
    )


def _policy_preset(request: HttpRequest, current) -> HttpResponse:
    """Replace the caps by one of the presets, keeping the quiet hours as they are."""
    preset = request.POST["preset"]
    if preset not in policy.PRESETS:
        messages.error(request, _("Unknown preset “%(name)s”.") % {"name": preset})
        return redirect("campaigns:policy")
    try:
        services.policy_update(
            user=request.user,
            quiet_hours_enabled=current.quiet_hours_enabled,
            quiet_start=current.quiet_start,
            quiet_end=current.quiet_end,
            exempt_service_messages=current.exempt_service_messages,
            caps=[dict(cap) for cap in policy.PRESETS[preset]],
        )
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        label = PRESET_LABELS.get(preset, (preset,))[0]
        messages.success(request, _("Caps set to the preset “%(name)s”.") % {"name": label})
    return redirect("campaigns:policy")


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
    page_obj = _page(request, selectors.automation_list(request.user))
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
        messages.error(request, _error_text(exc))
    else:
        if automation.is_active:
            messages.success(request, _("“%(name)s” is on.") % {"name": automation.name})
        else:
            messages.success(request, _("“%(name)s” is off.") % {"name": automation.name})
    return redirect(_safe_next(request, reverse("campaigns:automation_list")))


# --- Follow-up tasks ------------------------------------------------------------------------------


@login_required
@permission_required("campaigns.view_followuptask", raise_exception=True)
def task_list(request: HttpRequest) -> HttpResponse:
    """The logged-in operator's follow-up tasks (跟进任务); managers see everyone's and filter by assignee."""
    shows_assignee = FollowUpTask.objects.sees_all(request.user)
    filterset = FollowUpTaskFilterSet(request.GET, queryset=selectors.task_list(request.user), request=request)
    filter_form = fit_task_filters(filterset.form, shows_assignee=shows_assignee)
    page_obj = _page(request, filterset.qs)
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
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, _("Done: “%(title)s”.") % {"title": task.title})
    return redirect(_safe_next(request, reverse("campaigns:task_list")))
