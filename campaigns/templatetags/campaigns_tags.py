"""Template helpers of the campaigns pages: the section's tabs, and small formatting filters."""

from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

register = template.Library()

# (key, url name, label, permission needed)
TABS = (
    ("broadcasts", "campaigns:broadcast_list", _("Broadcasts (群发)"), "campaigns.view_broadcast"),
    ("pending", "campaigns:broadcast_pending", _("Approval queue"), "campaigns.approve_broadcast"),
    ("segments", "campaigns:segment_list", _("Segments"), "campaigns.view_segment"),
    ("templates", "campaigns:template_list", _("Templates (话术/素材)"), "campaigns.view_messagetemplate"),
    ("automations", "campaigns:automation_list", _("Automations (SOP)"), "campaigns.view_automation"),
    ("tasks", "campaigns:task_list", _("Follow-up tasks"), "campaigns.view_followuptask"),
    ("outbox", "campaigns:outbox", _("Outbox"), "campaigns.view_delivery"),
    ("policy", "campaigns:policy", _("Frequency policy"), "campaigns.change_frequencypolicy"),
)


@register.inclusion_tag("campaigns/includes/tabs.html", takes_context=True)
def campaigns_tabs(context, active: str = "") -> dict:
    user = context["request"].user
    tabs = [
        {"key": key, "url": reverse(url_name), "label": label, "active": key == active}
        for key, url_name, label, perm in TABS
        if user.has_perm(perm)
    ]
    return {"tabs": tabs}


@register.filter
def percent_width(value) -> str:
    """A percentage for a CSS width, clamped to 0–100 and written with a dot whatever the language."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "0"
    return f"{max(0.0, min(100.0, number)):.1f}"


@register.filter
def as_percent(value) -> str:
    """0.1234 → "12.3%"; None → "—"."""
    if value is None:
        return "—"
    return f"{100 * float(value):.1f}%"
