"""What every campaigns page shares: pagination, the htmx check, the safe "next" redirect, and a
service error as one line for a flash message."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

from ..forms import error_key_label

PAGE_SIZE = 50


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def safe_next(request: HttpRequest, fallback: str) -> str:
    """The ``next`` the page was given when it points at this site, else ``fallback``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        return target
    return fallback


def error_text(exc: ValidationError) -> str:
    """A service error as one line for a flash message, each part named by its key."""
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    parts = []
    for key, errors in exc.message_dict.items():
        text = " ".join(errors)
        parts.append(text if key in ("__all__", "status") else f"{error_key_label(key)}: {text}")
    return " ".join(parts)


def paginate(request: HttpRequest, queryset, size: int = PAGE_SIZE):
    """The page of ``queryset`` that ``?page=`` asks for."""
    return Paginator(queryset, size).get_page(request.GET.get("page"))
