"""The WeCom connection page (managers): which settings are missing (never their values), whether WeCom
gives us a token, the callback URL to paste into WeCom's console, the callback inbox, the latest full
sync with a "Sync now" button, and the mapping of WeCom members to users."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from contacts.selectors import staff_users

from .. import selectors
from ..forms import StaffAccountUserForm, attach_service_errors, user_choice_label
from ..services import staff_account_user_set, sync_enqueue
from .common import section_context

logger = logging.getLogger(__name__)


def token_status() -> tuple[bool, str]:
    """``WeComClient().token_check()``, one attempt; any failure is a message, never an exception."""
    try:
        from ..client import WeComClient

        with WeComClient(attempts=1) as client:
            ok, message = client.token_check()
        return bool(ok), str(message)
    except Exception as exc:  # noqa: BLE001 - the page must open whatever the client does
        logger.warning("WeCom token check failed", exc_info=True)
        return False, _("The token check failed: %(error)s") % {"error": f"{type(exc).__name__}: {exc}"}


def _staff_rows(request: HttpRequest, bound: dict | None = None) -> list[dict]:
    """Each staff account with its mapping form (a bound one when it was just refused). The user choices
    are rendered from one shared list (``map_users``), not one query per row."""
    rows = []
    for account in selectors.staff_account_list(request.user).order_by("-is_follow_user", "userid"):
        form = (bound or {}).get(account.pk) or StaffAccountUserForm(staff_account=account)
        chosen = form["user"].value()
        rows.append({"account": account, "form": form, "chosen": str(chosen) if chosen not in (None, "") else ""})
    return rows


def _page(request: HttpRequest, *, bound_forms: dict | None = None, status: int = 200) -> HttpResponse:
    inbox = selectors.callback_inbox_summary(request.user)
    run = selectors.sync_run_latest(request.user)
    return render(
        request,
        "wecom/connection.html",
        {
            **section_context(request, "connection"),
            "connection_settings": selectors.connection_settings(),
            "missing_settings": [name for name, present in selectors.connection_settings() if not present],
            "api_base": settings.WECOM_API_BASE,
            "callback_url": request.build_absolute_uri(reverse("wecom:callback")),
            "inbox": inbox,
            "run": run,
            "run_progress": selectors.sync_run_progress(run) if run else None,
            "can_sync": request.user.has_perm("wecom.add_syncrun"),
            "can_map": request.user.has_perm("wecom.change_staffaccount"),
            "staff_rows": _staff_rows(request, bound_forms),
            "map_users": [(str(u.pk), user_choice_label(u)) for u in staff_users()],
        },
        status=status,
    )


@login_required
@permission_required("wecom.view_callbackevent", raise_exception=True)
def connection(request: HttpRequest) -> HttpResponse:
    return _page(request)


@login_required
@permission_required("wecom.view_callbackevent", raise_exception=True)
def connection_token(request: HttpRequest) -> HttpResponse:
    """The token check as a fragment (htmx loads it after the page, since WeCom may be slow to answer)."""
    ok, message = token_status()
    return render(request, "wecom/partials/token_status.html", {"token_ok": ok, "token_message": message})


@require_POST
@login_required
@permission_required("wecom.add_syncrun", raise_exception=True)
def sync_now(request: HttpRequest) -> HttpResponse:
    try:
        queued, message = sync_enqueue(user=request.user)
    except Exception as exc:  # noqa: BLE001 - a broker that is down is a message, not a 500
        logger.exception("queueing a WeCom sync failed")
        queued, message = False, _("The sync could not be queued: %(error)s") % {"error": exc}
    (messages.success if queued else messages.error)(request, message)
    return redirect("wecom:connection")


@require_POST
@login_required
@permission_required("wecom.change_staffaccount", raise_exception=True)
def staff_account_map(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(selectors.staff_account_list(request.user), pk=pk)
    form = StaffAccountUserForm(request.POST, staff_account=account)
    if form.is_valid():
        try:
            account = staff_account_user_set(staff_account=account, user=form.cleaned_data["user"])
        except ValidationError as exc:
            attach_service_errors(form, exc)
        else:
            if account.user_id:
                messages.success(
                    request,
                    _("%(account)s is now worked by %(user)s.")
                    % {"account": account, "user": account.user.get_full_name() or account.user.get_username()},
                )
            else:
                messages.success(request, _("%(account)s is no longer mapped to a user.") % {"account": account})
            return redirect(reverse("wecom:connection") + "#staff")
    return _page(request, bound_forms={account.pk: form}, status=400)
