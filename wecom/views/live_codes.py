"""Channel live code (渠道活码) pages: the list with each code's figures, the form, a code's page with its QR
image and the latest adds through it, archiving, and (in simulation) a customer scanning the code.

Reads start from ``wecom.selectors`` (follow relationships are shown only for the contacts the user may
see); writes go through ``wecom.livecodes``, whose errors are shown on the form naming the field."""

from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from contacts.models import Channel

from .. import livecodes, selectors
from ..client import WeComError
from ..filtersets import LiveCodeFilterSet
from ..forms import LiveCodeForm, attach_service_errors
from ..models import LiveCode
from .common import error_text, paginate, section_context, standin_root

logger = logging.getLogger(__name__)

SCAN_TIMEOUT = 15  # seconds: the stand-in answers once our callback has answered it


def _figures(live_codes, user) -> dict:
    try:
        return livecodes.live_code_figures(live_codes=live_codes, user=user)
    except Exception:  # figures are a convenience: the list must still open
        logger.exception("live code figures failed")
        return {}


@login_required
@permission_required("wecom.view_livecode", raise_exception=True)
def live_code_list(request: HttpRequest) -> HttpResponse:
    data = request.GET.copy()
    show_archived = data.get("archived") == "1"
    if not show_archived:
        data["is_active"] = "true"
    filterset = LiveCodeFilterSet(data, queryset=selectors.live_code_list(request.user), request=request)
    page_obj = paginate(request, filterset.qs if filterset.is_valid() else filterset.queryset.none())
    codes = list(page_obj.object_list)
    figures = _figures(codes, request.user)
    rows = [{"code": code, "figures": figures.get(code.pk)} for code in codes]
    return render(
        request,
        "wecom/live_code_list.html",
        {
            **section_context(request, "live_codes"),
            "page_obj": page_obj,
            "rows": rows,
            "channels": Channel.objects.order_by("name"),
            "channel": request.GET.get("channel", ""),
            "search": request.GET.get("search", ""),
            "show_archived": show_archived,
            "can_add": request.user.has_perm("wecom.add_livecode"),
        },
    )


def _form_page(request: HttpRequest, form: LiveCodeForm, live_code: LiveCode | None) -> HttpResponse:
    return render(
        request,
        "wecom/live_code_form.html",
        {**section_context(request, "live_codes"), "form": form, "live_code": live_code},
    )


@login_required
@permission_required("wecom.add_livecode", raise_exception=True)
def live_code_create(request: HttpRequest) -> HttpResponse:
    form = LiveCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            live_code = livecodes.live_code_create(actor=request.user, **form.service_fields())
        except ValidationError as exc:
            attach_service_errors(form, exc)
        except WeComError as exc:
            form.add_error(None, _("WeCom could not be reached: %(error)s") % {"error": exc})
        else:
            messages.success(request, _("Live code “%(name)s” created.") % {"name": live_code.name})
            return redirect("wecom:live_code_detail", pk=live_code.pk)
    return _form_page(request, form, None)


@login_required
@permission_required("wecom.change_livecode", raise_exception=True)
def live_code_edit(request: HttpRequest, pk: int) -> HttpResponse:
    live_code = get_object_or_404(selectors.live_code_list(request.user), pk=pk)
    if not live_code.is_active:
        messages.error(request, _("An archived code cannot be changed."))
        return redirect("wecom:live_code_detail", pk=live_code.pk)
    form = LiveCodeForm(request.POST or None, live_code=live_code)
    if request.method == "POST" and form.is_valid():
        try:
            live_code = livecodes.live_code_update(live_code=live_code, **form.service_fields())
        except ValidationError as exc:
            attach_service_errors(form, exc)
        except WeComError as exc:
            form.add_error(None, _("WeCom could not be reached: %(error)s") % {"error": exc})
        else:
            messages.success(request, _("Live code “%(name)s” saved.") % {"name": live_code.name})
            return redirect("wecom:live_code_detail", pk=live_code.pk)
    return _form_page(request, form, live_code)


@login_required
@permission_required("wecom.view_livecode", raise_exception=True)
def live_code_detail(request: HttpRequest, pk: int) -> HttpResponse:
    live_code = get_object_or_404(selectors.live_code_list(request.user), pk=pk)
    figures = _figures([live_code], request.user).get(live_code.pk)
    links = [
        a.get("link") or {}
        for a in live_code.welcome_attachments or []
        if isinstance(a, dict) and a.get("msgtype") == "link"
    ]
    other_attachments = [
        a for a in live_code.welcome_attachments or [] if not (isinstance(a, dict) and a.get("msgtype") == "link")
    ]
    can_change = request.user.has_perm("wecom.change_livecode")
    return render(
        request,
        "wecom/live_code_detail.html",
        {
            **section_context(request, "live_codes"),
            "live_code": live_code,
            "figures": figures,
            "follows": selectors.live_code_latest_follows(live_code=live_code, user=request.user),
            "links": links,
            "other_attachments": other_attachments,
            "can_change": can_change and live_code.is_active,
            "can_simulate": can_change and live_code.is_active and settings.WECOM_SIMULATION,
        },
    )


@login_required
@permission_required("wecom.view_livecode", raise_exception=True)
def live_code_qr(request: HttpRequest, pk: int) -> HttpResponse:
    """The code's QR image, drawn here; ``?download=1`` saves it as a file."""
    live_code = get_object_or_404(selectors.live_code_list(request.user), pk=pk)
    try:
        png = livecodes.live_code_qr_png(live_code=live_code)
    except Exception as exc:  # noqa: BLE001 - a broken image must not be a 500 page
        logger.exception("QR image of live code %s failed", live_code.pk)
        raise Http404(_("The QR image could not be drawn.")) from exc
    response = HttpResponse(png, content_type="image/png")
    if request.GET.get("download") == "1":
        response["Content-Disposition"] = f'attachment; filename="live-code-{live_code.pk}.png"'
    response["Cache-Control"] = "private, max-age=300"
    return response


@login_required
@permission_required("wecom.change_livecode", raise_exception=True)
def live_code_archive(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST archives (the code stops working in WeCom, its figures stay)."""
    live_code = get_object_or_404(selectors.live_code_list(request.user), pk=pk)
    if request.method == "POST":
        if not live_code.is_active:
            messages.info(request, _("“%(name)s” was already archived.") % {"name": live_code.name})
            return redirect("wecom:live_code_detail", pk=live_code.pk)
        try:
            livecodes.live_code_archive(live_code=live_code)
        except ValidationError as exc:
            messages.error(request, error_text(exc))
        except Exception as exc:  # noqa: BLE001 - WeCom unreachable: say so, archive nothing
            logger.exception("archiving live code %s failed", live_code.pk)
            messages.error(request, _("WeCom could not be reached: %(error)s") % {"error": exc})
        else:
            messages.success(request, _("“%(name)s” archived: scanning it no longer works.") % {"name": live_code.name})
        return redirect("wecom:live_code_detail", pk=live_code.pk)
    return render(
        request,
        "wecom/live_code_archive.html",
        {**section_context(request, "live_codes"), "live_code": live_code},
    )


@require_POST
@login_required
@permission_required("wecom.change_livecode", raise_exception=True)
def live_code_simulate_scan(request: HttpRequest, pk: int) -> HttpResponse:
    """Simulation only: ask the local WeCom stand-in to play a customer scanning this code; it then calls
    our callback URL as WeCom would."""
    live_code = get_object_or_404(selectors.live_code_list(request.user), pk=pk)
    back = reverse("wecom:live_code_detail", args=[live_code.pk])
    if not settings.WECOM_SIMULATION:
        messages.error(request, _("Scans can only be simulated when WECOM_SIMULATION is on."))
        return redirect(back)
    if not live_code.is_active:
        messages.error(request, _("An archived code cannot be scanned."))
        return redirect(back)
    callback_url = request.build_absolute_uri(reverse("wecom:callback"))
    try:
        response = requests.post(
            f"{standin_root()}/standin/scan",
            json={"state": live_code.state, "callback_url": callback_url},
            timeout=SCAN_TIMEOUT,
        )
        answer = response.text[:300]
        ok = response.status_code < 400
    except Exception as exc:  # noqa: BLE001 - the stand-in not running is a message, not a 500
        ok, answer = False, f"{type(exc).__name__}: {exc}"
    if ok:
        messages.success(
            request,
            _("A simulated customer scanned “%(name)s”. The add arrives through the callback in a moment.")
            % {"name": live_code.name},
        )
    else:
        messages.error(request, _("The WeCom stand-in did not take the scan: %(answer)s") % {"answer": answer})
    return redirect(back)
