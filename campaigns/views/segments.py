"""Segment pages: the list with lazily fetched counts, and the editor with its rules builder and live count."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from communities.models import Community
from contacts.forms import user_label
from contacts.models import Channel, Tag
from contacts.selectors import staff_users

from .. import segments, selectors, services
from ..forms import SegmentCountForm, SegmentForm, attach_service_errors
from ..models import Segment
from .common import error_text, paginate

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
        "can_change": (
            request.user.has_perm("campaigns.change_segment")
            and services.segment_may_change(segment=segment, user=request.user)
            if segment
            else request.user.has_perm("campaigns.add_segment")
        ),
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
    page_obj = paginate(request, selectors.segment_list(request.user))
    return render(request, "campaigns/segment_list.html", {"page_obj": page_obj, "segments": page_obj.object_list})


@login_required
@permission_required("campaigns.view_segment", raise_exception=True)
def segment_row_count(request: HttpRequest, pk: int) -> HttpResponse:
    """One row's count, fetched lazily by the list (a count per row would be N queries on page load)."""
    segment = get_object_or_404(selectors.segment_list(request.user), pk=pk)
    try:
        count, error = segments.segment_count(segment, user=request.user), None
    except ValidationError as exc:
        count, error = None, error_text(exc)
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
        if not request.user.has_perm("campaigns.change_segment") or not services.segment_may_change(
            segment=segment, user=request.user
        ):
            raise PermissionDenied
        form = SegmentForm(request.POST)
        if form.is_valid():
            try:
                segment = services.segment_update(segment=segment, user=request.user, **form.cleaned_data)
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
