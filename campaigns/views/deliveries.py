"""Deliveries made visible: a broadcast's per-recipient list (filtered by status, reason and what holds the
waiting ones; the blocked counts of a broadcast's page link here), and one-off messages (一对一消息) from a
contact's page, with what became of each in words.

Scoped like every read: the broadcast must be one the user sees (else 404) and its deliveries are those to
the user's own contacts for an operator; a one-off message goes only to a contact the user sees.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from contacts.models import Contact

from .. import oneoff, selectors
from ..filtersets import DeliveryFilterSet
from ..forms import attach_service_errors
from ..forms_sending import OneOffMessageForm, fit_delivery_filters
from .common import error_text, is_htmx, paginate

# A queued one-off message is looked at again this often until something happens to it.
POLL_SECONDS = 2


# --- A broadcast's recipients ---------------------------------------------------------------------


@require_GET
@login_required
@permission_required("campaigns.view_delivery", raise_exception=True)
def broadcast_deliveries(request: HttpRequest, pk: int) -> HttpResponse:
    """One row per recipient of a broadcast: status, why it was held back or is waiting, when it went."""
    broadcast = get_object_or_404(selectors.broadcast_list(request.user), pk=pk)
    rows = selectors.broadcast_recipients(request.user, broadcast)
    filterset = DeliveryFilterSet(request.GET, queryset=rows, request=request)
    filter_form = fit_delivery_filters(filterset.form)
    page_obj = paginate(request, filterset.qs)
    return render(
        request,
        "campaigns/broadcast_deliveries.html",
        {
            "broadcast": broadcast,
            "filter_form": filter_form,
            "page_obj": page_obj,
            "deliveries": page_obj.object_list,
            "now": timezone.now(),
            "filtered": any(request.GET.get(name) for name in ("status", "reason", "hold")),
        },
    )


# --- One-off messages -------------------------------------------------------------------------------


def _contact(request: HttpRequest, pk: int) -> Contact:
    return get_object_or_404(
        Contact.objects.live().visible_to(request.user).filter(erased_at__isnull=True).select_related("owner"), pk=pk
    )


@login_required
@permission_required("campaigns.add_broadcast", raise_exception=True)
def contact_message(request: HttpRequest, pk: int) -> HttpResponse:
    """Write one message to one contact and send it now, through the sender's checks. htmx shows the form and
    then the outcome in place on the contact's page; without it, a page of its own and a flash message."""
    contact = _contact(request, pk)
    outcome = None
    if request.method == "POST":
        form = OneOffMessageForm(request.POST, user=request.user)
        if form.is_valid():
            try:
                outcome = oneoff.message_send_one(actor=request.user, contact=contact, **form.service_fields())
            except ValidationError as exc:
                if not is_htmx(request) and "key" in getattr(exc, "error_dict", {}):
                    messages.error(request, error_text(exc))
                attach_service_errors(form, exc)
            else:
                if not is_htmx(request):
                    level = messages.success if outcome.state in ("sent", "queued") else messages.warning
                    level(request, outcome.message)
                    return redirect("contacts:detail", pk=contact.pk)
                form = OneOffMessageForm(user=request.user, initial={"medium": form.cleaned_data["medium"]})
    else:
        form = OneOffMessageForm(user=request.user)
    context = {"contact": contact, "form": form, "outcome": outcome, "poll_seconds": POLL_SECONDS}
    if is_htmx(request):
        return render(request, "campaigns/partials/contact_message_form.html", context)
    return render(request, "campaigns/contact_message.html", context)


@require_GET
@login_required
@permission_required("campaigns.view_delivery", raise_exception=True)
def delivery_status(request: HttpRequest, pk: int) -> HttpResponse:
    """A one-off message's outcome again (polled by htmx while it is queued for a moment)."""
    delivery = get_object_or_404(selectors.delivery_list(request.user), pk=pk, one_off_key__isnull=False)
    outcome = oneoff.message_outcome(delivery)
    return render(
        request,
        "campaigns/partials/message_outcome.html",
        {"outcome": outcome, "poll_seconds": POLL_SECONDS, "contact": delivery.contact},
    )
