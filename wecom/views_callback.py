"""The public callback endpoint (接收事件服务器): ``/wecom/callback/``.

GET answers WeCom's URL check with the decrypted echostr; POST verifies, stores and answers "success" at
once (processing happens in Celery after commit). Anything that is not WeCom's, or not for our corp, is
refused with a 4xx that names the reason, and nothing is written.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .crypto import CallbackRejected
from .inbox import MAX_BODY, callback_receive, callback_url_check, crypto_from_settings

logger = logging.getLogger(__name__)

FORBIDDEN = {"bad_signature", "wrong_receiver", "stale_timestamp"}


def _refused(exc: CallbackRejected) -> HttpResponse:
    if exc.code == "too_large":
        status = 413
    else:
        status = 403 if exc.code in FORBIDDEN else 400
    logger.warning("WeCom callback refused: %s (%s)", exc.code, exc)
    return HttpResponse(f"{exc.code}: {exc}", status=status, content_type="text/plain; charset=utf-8")


@csrf_exempt
@require_http_methods(["GET", "POST"])
def callback(request: HttpRequest) -> HttpResponse:
    crypto = crypto_from_settings()
    if crypto is None:
        return HttpResponse(
            "not_configured: WECOM_CORP_ID, WECOM_CALLBACK_TOKEN and WECOM_ENCODING_AES_KEY must be set",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    try:
        if request.method == "GET":
            return HttpResponse(callback_url_check(crypto=crypto, params=request.GET), content_type="text/plain")
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isdigit() or int(length) > MAX_BODY:
            raise CallbackRejected("too_large", f"the body is larger than {MAX_BODY} bytes")
        callback_receive(crypto=crypto, params=request.GET, body=request.body)
    except CallbackRejected as exc:
        return _refused(exc)
    return HttpResponse("success", content_type="text/plain")
