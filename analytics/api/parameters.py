"""The report forms (``analytics.forms``) as the API's query parameters: bound to a request's query string,
their errors raised in the API's one error shape (``scrm.api``), and their fields described as OpenAPI
query parameters. Nothing about a parameter is defined here; it is all read from the form."""

from __future__ import annotations

from typing import Any, TypeVar

from django import forms
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.request import Request

from analytics.forms import MONTH_PATTERN, MonthField, ReportFilterForm

R = TypeVar("R", bound=ReportFilterForm)


def form_errors(form: forms.Form) -> dict[str, list[ErrorDetail]]:
    """The form's errors by field (``__all__`` for the form's own), each with its code."""
    return {
        name: [ErrorDetail(message, code=error.code or "invalid") for error in errors for message in error.messages]
        for name, errors in form.errors.as_data().items()
    }


def validated(form_class: type[R], request: Request) -> R:
    """The report's form of the request's query string, defaults filled in; a 400 naming each field at
    fault when it is not valid."""
    form = form_class.from_query(request.query_params, user=request.user)
    if not form.is_valid():
        raise ValidationError(form_errors(form))
    return form


def _schema(field: forms.Field, default: str | None) -> dict[str, Any]:
    if isinstance(field, MonthField):
        schema: dict[str, Any] = {"type": "string", "pattern": MONTH_PATTERN, "example": "2025-03"}
    elif isinstance(field, forms.ModelChoiceField):
        schema = {"type": "integer"}
    elif isinstance(field, forms.ChoiceField):
        schema = {"type": "string", "enum": [str(value) for value, _label in field.choices if value != ""]}
    elif isinstance(field, forms.DateField):
        schema = {"type": "string", "format": "date"}
    elif isinstance(field, forms.IntegerField):
        schema = {"type": "integer"}
        if field.min_value is not None:
            schema["minimum"] = field.min_value
        if field.max_value is not None:
            schema["maximum"] = field.max_value
    else:
        schema = {"type": "string"}
    if schema["type"] == "integer" and not field.required:
        schema["nullable"] = True
    if default is not None:
        schema["default"] = int(default) if schema["type"] == "integer" else default
    return schema


def _description(field: forms.Field) -> str:
    """The field's ``api_description``, and the meaning of each choice of a choice field."""
    parts = [str(getattr(field, "api_description", ""))]
    if isinstance(field, forms.ChoiceField) and not isinstance(field, forms.ModelChoiceField):
        parts.append("\n".join(f"* `{value}` - {label}" for value, label in field.choices if value != ""))
    return "\n\n".join(part for part in parts if part)


def query_parameters(form_class: type[ReportFilterForm]) -> list[OpenApiParameter]:
    """The form's fields as OpenAPI query parameters: required unless optional or filled in by default."""
    defaulted = form_class.defaulted_fields()
    return [
        OpenApiParameter(
            name,
            type=_schema(field, form_class.option_defaults.get(name)),
            location=OpenApiParameter.QUERY,
            required=field.required and name not in defaulted,
            description=_description(field),
        )
        for name, field in form_class.base_fields.items()
    ]
