"""What the OpenAPI schema says: the error responses of every operation (a drf-spectacular
post-processing hook), read-only fields that may be blank or null, wall-clock times.

Error responses
---------------

drf-spectacular documents what a view returns on success; the errors come from the layers around every
view (``scrm.authentication``, ``scrm.permissions``, the filters, the pagination, ``scrm.api``'s
exception handler) and are the same everywhere, so they are added here, once, to every operation of the
schema, with the project's one error body (``scrm.api``)::

    {"type": "validation_error", "detail": "Invalid input.",
     "errors": [{"field": "phone", "code": "invalid", "message": "..."}]}

Which operation may answer which error:

- 401 and 403 everywhere (a missing, unknown, expired or revoked key; a missing scope or permission),
  429 everywhere (the rate limits);
- 400 where the request carries input: a body, query parameters (filters, ordering, page size) or a
  write (the services' own checks);
- 404 where an id is in the path, on paginated lists (a page past the last one) and where ``format``
  is a query parameter (DRF answers a format it has no renderer for with 404);
- 409 on writes (a duplicate, a row still in use by others);
- 415 where the request has a body (no Content-Type, or one the operation does not parse).

A response an operation documents itself (an analytics report's 400, a sync run's 409) keeps its
description; it gets the error body when it has none.

Activated by listing ``"scrm.openapi.postprocess_error_responses"`` in
``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]`` after drf-spectacular's own
``"drf_spectacular.hooks.postprocess_schema_enums"``. Until scrm/settings.py does, the schema fuzz
(tests/test_schema_fuzz.py) adds it while it loads the schema.

Read-only fields
----------------

DRF drops ``allow_blank`` from read-only fields (and never sets it, nor ``allow_null`` on some, for
non-editable model fields), so the schema promised an enum value, a URI or an object where the API
returns "" (no delivery reason yet, no QR code yet) or null (the creator's account deleted).
``ReadOnlyFieldsMixin`` states what the model field allows. ``SafeSerializerMixin`` includes it.

Times
-----

drf-spectacular gives ``TimeField`` the JSON Schema format ``time``, which is RFC 3339's *full-time*, with
a UTC offset ("22:00:00+08:00"); the API's times are wall-clock times without one ("22:00:00", quiet
hours). ``WallClockTimeExtension`` describes them by a pattern instead. Registered when this module is
imported (``scrm.apps``).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

ERROR_SCHEMA_NAME = "ApiError"
ERROR_ITEM_SCHEMA_NAME = "ApiErrorItem"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}

# The same shape as analytics.api.serializers.ApiErrorSerializer (which the reports reference by name):
# defined here as well for a schema generated without the reports.
ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    ERROR_ITEM_SCHEMA_NAME: {
        "type": "object",
        "properties": {
            "field": {
                "type": "string",
                "nullable": True,
                "description": "The parameter at fault; null when it is not one.",
            },
            "code": {"type": "string"},
            "message": {"type": "string"},
        },
        "required": ["code", "field", "message"],
    },
    ERROR_SCHEMA_NAME: {
        "type": "object",
        "description": "The project's one error body (``scrm.api``): every 4xx names the field and the problem.",
        "properties": {
            "type": {"type": "string"},
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": {"$ref": f"#/components/schemas/{ERROR_ITEM_SCHEMA_NAME}"}},
        },
        "required": ["detail", "errors", "type"],
    },
}

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
SAFE_METHODS = {"get", "head", "options"}

DESCRIPTIONS = {
    "400": "The input is not valid: each error names the field or parameter at fault.",
    "401": "No credentials, or an unknown, expired or revoked API key.",
    "403": "The API key lacks the scope, or the user the permission, this request needs.",
    "404": "No such row among those the caller may see (or a page past the last one, or an unknown format).",
    "409": "The request conflicts with the current state (a duplicate, or a row still in use).",
    "415": "The body's Content-Type is missing or not one this operation reads.",
    "429": "Too many requests: see Retry-After.",
}


def _parameters(operation: dict[str, Any], location: str) -> list[str]:
    return [p.get("name", "") for p in operation.get("parameters", []) if p.get("in") == location]


def error_statuses(method: str, operation: dict[str, Any]) -> list[str]:
    """The error statuses ``operation`` (an OpenAPI operation object for ``method``) may answer."""
    statuses = ["401", "403", "429"]
    query = _parameters(operation, "query")
    writes = method not in SAFE_METHODS
    if writes or query or "requestBody" in operation:
        statuses.append("400")
    if _parameters(operation, "path") or "page" in query or "format" in query:
        statuses.append("404")
    if writes:
        statuses.append("409")
    if "requestBody" in operation:
        statuses.append("415")
    return sorted(statuses)


def postprocess_error_responses(result: dict[str, Any], generator=None, request=None, public=None, **kwargs):
    """drf-spectacular post-processing hook: document the error responses of every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in ERROR_SCHEMAS.items():
        schemas.setdefault(name, schema)
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status in error_statuses(method, operation):
                response = responses.setdefault(status, {"description": DESCRIPTIONS[status]})
                if not response.get("content"):
                    response["content"] = {"application/json": {"schema": dict(ERROR_REF)}}
    return result


# --- Read-only fields -------------------------------------------------------------------------


class ReadOnlyFieldsMixin:
    """For ModelSerializers: a read-only field whose model field may be blank or null says so (see the
    module's docstring)."""

    def get_fields(self):
        fields = super().get_fields()
        model = self.Meta.model
        for name, field in fields.items():
            source = field.source or name  # set when the field is bound, after this
            if not field.read_only or "." in source or source == "*":
                continue
            try:
                model_field = model._meta.get_field(source)
            except FieldDoesNotExist:
                continue
            if getattr(model_field, "null", False):
                field.allow_null = True
            if getattr(model_field, "blank", False) and isinstance(
                field, serializers.CharField | serializers.ChoiceField
            ):
                field.allow_blank = True
        return fields


# --- Times ------------------------------------------------------------------------------------

WALL_CLOCK_TIME_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$"


class WallClockTimeExtension(OpenApiSerializerFieldExtension):
    target_class = "rest_framework.fields.TimeField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "pattern": WALL_CLOCK_TIME_PATTERN, "example": "22:00:00"}
