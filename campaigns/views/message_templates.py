"""The script and material library (话术/素材库): the list, the editor, and a template's page with a preview for
one of the user's contacts.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from contacts.models import Contact

from .. import content, selectors, services
from ..forms import MessageTemplateForm, TemplatePreviewForm, attach_service_errors
from ..models import MessageTemplate
from .common import is_htmx, paginate

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
    page_obj = paginate(request, templates.order_by("category", "name", "id"))
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
    if is_htmx(request):
        return render(request, "campaigns/partials/template_preview.html", context)
    return render(request, "campaigns/template_detail.html", context)
