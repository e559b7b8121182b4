"""One contact's whole relationship on one page, its tags, and its personal data (PIPL access request)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from analytics.models import ClvFit
from communities.models import Community
from communities.selectors import membership_list
from scrm.audit import Action, audit

from .. import selectors
from ..forms import ContactTagForm
from ..models import Contact, ContactTag
from ..services import contacts_tag, contacts_untag
from .common import DETAIL_ROWS, _form_errors

# --- One contact ----------------------------------------------------------------------------------


def _tags_by_group(tag_links) -> list[dict]:
    groups: dict[int, dict] = {}
    for link in tag_links:
        group = link.tag.group
        groups.setdefault(group.pk, {"group": group, "links": []})["links"].append(link)
    return sorted(groups.values(), key=lambda g: (g["group"].sort_order, g["group"].name))


def _contact_page_context(request: HttpRequest, contact: Contact) -> dict:
    user = request.user
    tag_links = list(selectors.contact_tag_links(contact))
    memberships = list(membership_list(user).filter(contact=contact).order_by("-joined_at", "-id"))
    linkable_communities = set()
    if memberships:
        linkable_communities = set(
            Community.objects.visible_to(user)
            .filter(pk__in={m.community_id for m in memberships})
            .values_list("pk", flat=True)
        )
    purchases = list(
        selectors.purchase_list(user).filter(contact=contact).order_by("-purchased_at", "-id")[: DETAIL_ROWS + 1]
    )
    touchpoints = list(
        selectors.touchpoint_list(user).filter(contact=contact).order_by("-occurred_at", "-id")[: DETAIL_ROWS + 1]
    )
    referrals = list(
        Contact.objects.live()
        .visible_to(user)
        .filter(referred_by=contact)
        .select_related("owner")
        .order_by("-acquired_at", "-id")[: DETAIL_ROWS + 1]
    )
    referred_by_visible = (
        contact.referred_by_id is not None
        and Contact.objects.live().visible_to(user).filter(pk=contact.referred_by_id).exists()
    )
    can_change = user.has_perm("contacts.change_contact")
    score = getattr(contact, "score", None)  # the nightly ContactScore row, if the contact was scored yet
    clv_fit = ClvFit.objects.filter(status=ClvFit.Status.DONE, as_of=score.as_of).first() if score else None
    return {
        "contact": contact,
        "score": score,
        "clv_horizon_days": clv_fit.horizon_days if clv_fit else None,
        "tag_groups": _tags_by_group(tag_links),
        "tag_count": len(tag_links),
        "memberships": memberships,
        "linkable_communities": linkable_communities,
        "purchases": purchases[:DETAIL_ROWS],
        "more_purchases": len(purchases) > DETAIL_ROWS,
        "touchpoints": touchpoints[:DETAIL_ROWS],
        "more_touchpoints": len(touchpoints) > DETAIL_ROWS,
        "referrals": referrals[:DETAIL_ROWS],
        "more_referrals": len(referrals) > DETAIL_ROWS,
        "referred_by_visible": referred_by_visible,
        "tag_form": ContactTagForm(initial={"action": ContactTagForm.ADD}) if can_change else None,
        "can_change": can_change,
        "detail_rows": DETAIL_ROWS,
        "attributes": sorted((contact.attributes or {}).items()),
    }


@login_required
@permission_required("contacts.view_contact", raise_exception=True)
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    contact = get_object_or_404(selectors.contact_detail(request.user).select_related("score"), pk=pk)
    audit(Action.CONTACT_VIEWED, actor=request.user, target=contact)
    return render(request, "contacts/contact_detail.html", _contact_page_context(request, contact))


@require_POST
@login_required
@permission_required("contacts.change_contact", raise_exception=True)
def contact_tag_change(request: HttpRequest, pk: int) -> HttpResponse:
    """Add a tag to, or remove a tag from, one contact (the small form on the contact page)."""
    contact = get_object_or_404(Contact.objects.live().visible_to(request.user), pk=pk)
    form = ContactTagForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
    else:
        tag = form.cleaned_data["tag"]
        if form.cleaned_data["action"] == ContactTagForm.ADD:
            try:
                contacts_tag(contact_ids=[contact.pk], tags=[tag], actor=request.user, source=ContactTag.Source.MANUAL)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, _("Tag “%(tag)s” added.") % {"tag": tag.name})
        else:
            contacts_untag(contact_ids=[contact.pk], tags=[tag])
            messages.success(request, _("Tag “%(tag)s” removed.") % {"tag": tag.name})
    return redirect(reverse("contacts:detail", args=[contact.pk]) + "#tags")


@login_required
@permission_required("contacts.export_contacts", raise_exception=True)
def contact_personal_data(request: HttpRequest, pk: int) -> HttpResponse:
    """Everything held about one person, for their access request: JSON, or ``?as=csv``."""
    from .privacy import personal_data, personal_data_csv

    contact = get_object_or_404(Contact.objects.visible_to(request.user), pk=pk)
    audit(
        Action.PERSONAL_DATA_EXPORTED, actor=request.user, target=contact, detail={"as": request.GET.get("as", "json")}
    )
    if request.GET.get("as") == "csv":
        response = StreamingHttpResponse(personal_data_csv(contact), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="personal-data-{contact.pk}.csv"'
        return response
    response = JsonResponse(personal_data(contact), json_dumps_params={"ensure_ascii": False, "indent": 2})
    response["Content-Disposition"] = f'attachment; filename="personal-data-{contact.pk}.json"'
    return response
