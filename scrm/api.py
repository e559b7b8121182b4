"""Shared REST API pieces: pagination and the one error shape.

Every 4xx body looks like::

    {"type": "validation_error", "detail": "Invalid input.",
     "errors": [{"field": "phone", "code": "invalid", "message": "138 is not a valid phone number."}]}

``field`` is ``null`` for errors that are not about one field (``non_field_errors``), and nested
fields are dotted (``items.0.product``).
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.db.models import ProtectedError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from .exceptions import ConflictError

logger = logging.getLogger(__name__)


def _rollback() -> None:
    # DRF's own handler marks atomic requests for rollback; a database error leaves the transaction broken.
    set_rollback()


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


def _flatten(detail, prefix: str | None = None) -> list[dict]:
    errors = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            key = None if key in (api_settings.NON_FIELD_ERRORS_KEY, "__all__") else str(key)
            field = ".".join(part for part in (prefix, key) if part) or None
            errors.extend(_flatten(value, field))
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                errors.extend(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
            else:
                errors.extend(_flatten(value, prefix))
    else:
        errors.append({"field": prefix, "code": getattr(detail, "code", "invalid"), "message": str(detail)})
    return errors


def _django_validation_detail(exc: DjangoValidationError):
    if hasattr(exc, "error_dict"):
        return {field: [str(m) for e in errs for m in e.messages] for field, errs in exc.error_dict.items()}
    return {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}


def _last_line(exc) -> Response | None:
    """The causes are fixed where the input is read (``scrm.limits``); these answers are for what slips
    past them, so that no input is ever a 5xx."""
    if isinstance(exc, ProtectedError):
        message = _("This record is still in use by others, so it cannot be deleted.")
        body = {
            "type": "conflict",
            "detail": message,
            "errors": [{"field": None, "code": "protected", "message": message}],
        }
        return Response(body, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DataError | RecursionError | UnicodeError | OverflowError):
        logger.warning("Input refused by the database or the parser: %r", exc)
        message = _("The request contains a value out of range or characters that cannot be stored.")
        body = {
            "type": "validation_error",
            "detail": _("Invalid input."),
            "errors": [{"field": None, "code": "invalid", "message": message}],
        }
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    return None


def exception_handler(exc, context):
    last_line = _last_line(exc)
    if last_line is not None:
        _rollback()
        return last_line
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_django_validation_detail(exc))
    elif isinstance(exc, ConflictError):
        body = {
            "type": "conflict",
            "detail": exc.message,
            "errors": [{"field": exc.field, "code": "conflict", "message": exc.message}],
        }
        return Response(body, status=status.HTTP_409_CONFLICT)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        body = {"type": "validation_error", "detail": _("Invalid input."), "errors": _flatten(exc.detail)}
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        body = {"type": code, "detail": str(detail), "errors": [{"field": None, "code": code, "message": str(detail)}]}
    response.data = body
    return response
