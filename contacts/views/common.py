"""What the contact pages share: page sizes, the safe ``next`` target, form errors as text."""

from __future__ import annotations

from django.http import HttpRequest, QueryDict
from django.utils.http import url_has_allowed_host_and_scheme

PAGE_SIZE = 50
DETAIL_ROWS = 100  # purchases, touchpoints and referrals shown on a contact page
IMPORT_ERRORS_SHOWN = 500


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        return target
    return fallback


def _without_page(query: QueryDict) -> str:
    kept = query.copy()
    kept.pop("page", None)
    return kept.urlencode()


def _form_errors(form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)
