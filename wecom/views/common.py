"""What the WeCom pages share: the section's tabs, the simulation flag, pagination and a service error as
one line for a flash message."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from ..forms import ERROR_KEY_LABELS

PAGE_SIZE = 50

TABS = (
    ("live_codes", "wecom:live_code_list", _("Channel live codes"), "wecom.view_livecode"),
    ("intake", "wecom:intake", _("Intake"), "wecom.view_followrelationship"),
    ("connection", "wecom:connection", _("Connection"), "wecom.view_callbackevent"),
)


def section_context(request: HttpRequest, active: str) -> dict:
    """The tabs of the WeCom section and whether this is a simulation (no real WeCom)."""
    tabs = [
        {"key": key, "url": reverse(url_name), "label": label, "active": key == active}
        for key, url_name, label, perm in TABS
        if request.user.has_perm(perm)
    ]
    return {"wecom_tabs": tabs, "wecom_simulation": bool(getattr(settings, "WECOM_SIMULATION", False))}


def paginate(request: HttpRequest, queryset, size: int = PAGE_SIZE):
    return Paginator(queryset, size).get_page(request.GET.get("page"))


def error_text(exc: ValidationError) -> str:
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    parts = []
    for key, errors in exc.message_dict.items():
        text = " ".join(errors)
        parts.append(text if key == "__all__" else f"{ERROR_KEY_LABELS.get(key, key.replace('_', ' '))}: {text}")
    return " ".join(parts)


def standin_root() -> str:
    """The local stand-in's root: WECOM_API_BASE without its trailing ``/cgi-bin``."""
    base = settings.WECOM_API_BASE.rstrip("/")
    return base[: -len("/cgi-bin")] if base.endswith("/cgi-bin") else base
