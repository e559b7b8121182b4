"""One contact's whole relationship on one page, and the page as a workspace: the profile, follow-up notes
(跟进记录) and tasks (跟进任务), tags, communities, scores; and the contact's personal data (PIPL access
request).

Every form posts to its own view, which writes through a service and redirects back to the page; the
page's htmx attributes swap only the section that changed (and the messages, and the timeline when it
gained an entry). A form with errors re-renders the page with the errors on their fields.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from analytics.models import ClvFit
from campaigns import followups
from campaigns.forms_tasks import FollowUpTaskForm
from communities.models import Community
from communities.selectors import membership_list
from communities.services import membership_join
from scrm.audit import Action, audit

from .. import selectors
from ..forms import ContactTagForm
from ..forms_contact import CommunityJoinForm, ContactNoteForm, ContactProfileForm, service_errors_attach
from ..models import Contact, ContactTag, Touchpoint
from ..notes import contact_note_add
from ..services import contact_update, contacts_tag, contacts_untag
from .common import DETAIL_ROWS, _form_errors

#: Another session's one-off message section; included when it is installed.
MESSAGE_PARTIAL = "campaigns/partials/contact_message.html"

# --- One contact ----------------------------------------------------------------------------------


def _tags_by_group(tag_links) -> list[dict]:
    groups: dict[int, dict] = {}
    for link in tag_links:
        group = link.tag.group
        groups.setdefault(group.pk, {"group": group, "links": []})["links"].append(link)
    return sorted(groups.values(), key=lambda g: (g["group"].sort_order, g["group"].name))


def _template_exists(name: str) -> bool:
    try:
        get_template(name)
    except TemplateDoesNotExist:
        return False
    return True


def _contact_page_context(request: HttpRequest, contact: Contact, **forms) -> dict:
    """Everything the page shows. ``forms`` are bound forms with errors, shown instead of empty ones."""
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
    visible_referrals = Contact.objects.live().visible_to(user).filter(referred_by=contact)
    referrals = list(visible_referrals.select_related("owner").order_by("-acquired_at", "-id")[: DETAIL_ROWS + 1])
    # The figures agree: ``referral_count`` counts every live contact this one referred (the facts refresh);
    # the list shows those the user may see; the rest are named as other staff members' contacts.
    referrals_visible = len(referrals) if len(referrals) <= DETAIL_ROWS else visible_referrals.count()
    referred_by_visible = (
        contact.referred_by_id is not None
        and Contact.objects.live().visible_to(user).filter(pk=contact.referred_by_id).exists()
    )
    can_change = user.has_perm("contacts.change_contact")
    can_add_task = user.has_perm("campaigns.add_followuptask")
    can_join = user.has_perm("communities.add_membership")
    score = getattr(contact, "score", None)  # the nightly ContactScore row, if the contact was scored yet
    clv_fit = ClvFit.objects.filter(status=ClvFit.Status.DONE, as_of=score.as_of).first() if score else None
    join_form = forms.get("join_form") or (CommunityJoinForm(contact=contact, user=user) if can_join else None)
    return {
        "contact": contact,
        "score": score,
        "clv_horizon_days": clv_fit.horizon_days if clv_fit else None,
        "can_rescore": user.has_perm("analytics.add_clvfit"),
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
        "referrals_visible": referrals_visible,
        "referrals_hidden": max(0, contact.referral_count - referrals_visible),
        "referred_by_visible": referred_by_visible,
        "tag_form": ContactTagForm(initial={"action": ContactTagForm.ADD}) if can_change else None,
        "can_change": can_change,
        "detail_rows": DETAIL_ROWS,
        "attributes": sorted((contact.attributes or {}).items()),
        # The workspace
        "profile_form": forms.get("profile_form")
        or (ContactProfileForm(contact=contact, user=user) if can_change else None),
        "profile_open": "profile_form" in forms,
        "note_form": forms.get("note_form")
        or (ContactNoteForm() if user.has_perm("contacts.add_touchpoint") else None),
        "task_form": forms.get("task_form")
        or (FollowUpTaskForm(user=user, contact=contact, prefix="task") if can_add_task else None),
        "task_open": "task_form" in forms,
        "open_tasks": list(followups.contact_open_tasks(user, contact)),
        "can_complete_tasks": user.has_perm("campaigns.change_followuptask"),
        "medium_choices": Touchpoint.Medium.choices,
        "join_form": join_form if join_form is not None and join_form.fields["community"].queryset.exists() else None,
        "has_message_partial": _template_exists(MESSAGE_PARTIAL),
        "now": timezone.now(),
    }


def _page(request: HttpRequest, pk: int) -> Contact:
    """The contact of a workspace form, as the page shows it; another staff member's contact is a 404."""
    return get_object_or_404(selectors.contact_detail(request.user).select_related("score"), pk=pk)


def _back(contact: Contact, anchor: str) -> HttpResponse:
    return redirect(reverse("contacts:detail", args=[contact.pk]) + f"#{anchor}")


def _with_errors(request: HttpRequest, contact: Contact, **forms) -> HttpResponse:
    messages.error(request, _("Please correct the errors below."))
    return render(request, "contacts/contact_detail.html", _contact_page_context(request, contact, **forms))


@login_required
@permission_required("contacts.view_contact", raise_exception=True)
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    contact = _page(request, pk)
    audit(Action.CONTACT_VIEWED, actor=request.user, target=contact)
    return render(request, "contacts/contact_detail.html", _contact_page_context(request, contact))


@require_POST
@login_required
@permission_required("contacts.change_contact", raise_exception=True)
def contact_profile_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Save the profile form through ``contact_update`` (which keeps owner changes to managers)."""
    contact = _page(request, pk)
    form = ContactProfileForm(request.POST, contact=contact, user=request.user)
    if form.is_valid():
        changed = form.changed_values()
        if not changed:
            messages.info(request, _("Nothing changed."))
            return _back(contact, "profile")
        try:
            contact_update(contact=contact, actor=request.user, **changed)
        except ValidationError as exc:
            service_errors_attach(form, exc)
        else:
            messages.success(request, _("Profile saved."))
            return _back(contact, "profile")
    contact = _page(request, pk)  # contact_update may have set values on the instance before refusing
    return _with_errors(request, contact, profile_form=form)


@require_POST
@login_required
@permission_required("contacts.add_touchpoint", raise_exception=True)
def contact_note_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Add a follow-up note (跟进记录) to the contact's timeline."""
    contact = _page(request, pk)
    form = ContactNoteForm(request.POST)
    if form.is_valid():
        try:
            contact_note_add(
                contact=contact, actor=request.user, text=form.cleaned_data["text"], medium=form.cleaned_data["medium"]
            )
        except ValidationError as exc:
            service_errors_attach(form, exc)
        else:
            messages.success(request, _("Note added to the timeline."))
            return _back(contact, "followup")
    return _with_errors(request, contact, note_form=form)


@require_POST
@login_required
@permission_required("campaigns.add_followuptask", raise_exception=True)
def contact_task_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Create a follow-up task about this contact (the same form and service as the task list's)."""
    contact = _page(request, pk)
    form = FollowUpTaskForm(request.POST, user=request.user, contact=contact, prefix="task")
    if form.is_valid():
        try:
            task = followups.follow_up_task_add(actor=request.user, **form.service_values())
        except ValidationError as exc:
            service_errors_attach(form, exc)
        else:
            messages.success(request, _("Task “%(title)s” created.") % {"title": task.title})
            return _back(contact, "followup")
    return _with_errors(request, contact, task_form=form)


@require_POST
@login_required
@permission_required("communities.add_membership", raise_exception=True)
def contact_community_join(request: HttpRequest, pk: int) -> HttpResponse:
    """Put the contact in one of the communities the user may see (``membership_join``)."""
    contact = _page(request, pk)
    form = CommunityJoinForm(request.POST, contact=contact, user=request.user)
    if form.is_valid():
        community = form.cleaned_data["community"]
        try:
            membership_join(community=community, contact=contact, staff=request.user)
        except ValidationError as exc:
            service_errors_attach(form, exc)
        else:
            messages.success(request, _("Added to “%(community)s”.") % {"community": community.name})
            return _back(contact, "communities")
    messages.error(request, _form_errors(form))
    return _back(contact, "communities")


@require_POST
@login_required
@permission_required("analytics.add_clvfit", raise_exception=True)
def contact_scores_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    """Managers: recompute every contact's RFM layer and predicted CLV now (the nightly scoring task, queued
    once this request commits). A run already in progress makes this one a no-op."""
    from analytics.tasks import scores_refresh_nightly

    contact = _page(request, pk)
    transaction.on_commit(scores_refresh_nightly.delay)
    messages.success(
        request, _("Scores are being recomputed for every contact. Reload the page in a minute to see them.")
    )
    return _back(contact, "scores")


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
    from ..privacy import personal_data, personal_data_csv

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
