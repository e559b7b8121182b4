"""The frequency policy page: quiet hours and the caps, edited row by row or set from a preset."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from .. import policy, services
from ..forms import CapFormSet, PolicyForm, attach_service_errors, caps_initial, formset_caps, mark_cap_errors
from ..models import FrequencyCap
from .common import error_text

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
        messages.error(request, error_text(exc))
    else:
        label = PRESET_LABELS.get(preset, (preset,))[0]
        messages.success(request, _("Caps set to the preset “%(name)s”.") % {"name": label})
    return redirect("campaigns:policy")
