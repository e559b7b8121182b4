"""The intake report (加粉与流失): adds, losses (流失), removals and net adds per day and per channel, live
code or staff member, from the follow relationships. Operators see their own contacts' figures."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ..forms import IntakeForm
from ..reports import follow_flows, intake_totals
from .common import section_context


@login_required
@permission_required("wecom.view_followrelationship", raise_exception=True)
def intake(request: HttpRequest) -> HttpResponse:
    form = IntakeForm(request.GET)  # bound even when empty: the defaults are the last 14 days per channel
    rows, totals = [], []
    if form.is_valid():
        data = form.cleaned_data
        rows = follow_flows(user=request.user, start=data["date_from"], end=data["date_to"], by=data["by"])
        totals = intake_totals(rows)
    status = 200 if form.is_valid() else 400
    return render(
        request,
        "wecom/intake.html",
        {
            **section_context(request, "intake"),
            "form": form,
            "rows": rows,
            "totals": totals,
            # The period shown in the date inputs: the defaults filled in, or what was typed when refused.
            "shown_from": form.cleaned_data.get("date_from") if form.is_valid() else request.GET.get("date_from"),
            "shown_to": form.cleaned_data.get("date_to") if form.is_valid() else request.GET.get("date_to"),
        },
        status=status,
    )
