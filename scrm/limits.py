"""The limits on what the API, the dashboard and the CSV import accept, declared once.

PostgreSQL refuses NUL (U+0000) in ``text`` and ``jsonb`` and Python cannot encode a lone surrogate
(U+D800–U+DFFF) as UTF-8; a date outside ``date``'s range overflows in a filter; an integer past the column
overflows the column. Each is refused here, as a validation error naming the field, before it reaches the
database. Serializers use the DRF fields and validators below, forms and filters the Django ones (the same
callables: DRF runs Django validators too), and the import shares ``date_in_range``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from scrm.openapi import ReadOnlyFieldsMixin

# Free text with no column limit of its own (notes, bodies, rules).
TEXT_MAX_LENGTH = 10_000
# A JSON document a caller sends (attributes, metadata, variables, segment rules).
JSON_MAX_BYTES = 16 * 1024
JSON_MAX_DEPTH = 10
# PostgreSQL ``integer`` (PositiveIntegerField, IntegerField).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
# Every date and time taken from outside: the import's lower bound (no plausible birthday, order or
# acquisition is older), and a far but representable upper bound (``date.max`` overflows in filters).
# 1970 would refuse real birthdays, so the earliest is 1900, as the import always had it.
DATE_MIN = dt.date(1900, 1, 1)
DATE_MAX = dt.date(2999, 12, 31)

_BAD_CHARACTERS = re.compile("[\x00\ud800-\udfff]")


def text_check(value: Any) -> None:
    """Refuse NUL and lone surrogate characters in a string."""
    if isinstance(value, str) and _BAD_CHARACTERS.search(value):
        raise ValidationError(
            gettext_lazy("Contains a NUL or an invalid (surrogate) character."), code="invalid_character"
        )


def json_check(value: Any, *, max_bytes: int = JSON_MAX_BYTES, max_depth: int = JSON_MAX_DEPTH) -> None:
    """Refuse a JSON value nested deeper than ``max_depth``, larger than ``max_bytes`` once encoded, or with
    a NUL or lone surrogate in any key or string. Walks iteratively: depth cannot exhaust the stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise ValidationError(_("Nested more than %(max)d levels deep.") % {"max": max_depth}, code="too_deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    text_check(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            text_check(item)
        elif isinstance(item, int) and not isinstance(item, bool) and not -(2**63) <= item < 2**63:
            raise ValidationError(_("A number is out of range."), code="out_of_range")
    size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    if size > max_bytes:
        raise ValidationError(
            _("At most %(max)d bytes of JSON (this has %(size)d).") % {"max": max_bytes, "size": size},
            code="too_large",
        )


def date_in_range(value: dt.date | dt.datetime | None) -> bool:
    if value is None:
        return True
    day = value.date() if isinstance(value, dt.datetime) else value
    return DATE_MIN <= day <= DATE_MAX


def date_check(value: dt.date | dt.datetime | None) -> None:
    if not date_in_range(value):
        raise ValidationError(
            _("Enter a date between %(min)s and %(max)s.") % {"min": DATE_MIN.isoformat(), "max": DATE_MAX.isoformat()},
            code="date_out_of_range",
        )


# How far ahead a recorded fact (an order, an acquisition) may be dated: clocks and time zones differ.
FUTURE_GRACE = dt.timedelta(days=1)


def not_in_future_check(value: dt.date | dt.datetime | None) -> None:
    """A birthday, an order or an acquisition has happened: refuse dates ahead of now (plus the grace)."""
    from django.utils import timezone

    if value is None:
        return
    now = timezone.now()
    late = value > now + FUTURE_GRACE if isinstance(value, dt.datetime) else value > timezone.localdate(now)
    if late:
        raise ValidationError(_("This date is in the future."), code="future")


def int_check(value: Any) -> None:
    if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        raise ValidationError(
            _("Enter a number between %(min)d and %(max)d.") % {"min": INT_MIN, "max": INT_MAX}, code="out_of_range"
        )


# --- DRF fields ---------------------------------------------------------------------------------


class SafeJSONField(serializers.JSONField):
    """A JSON body field within ``JSON_MAX_BYTES`` / ``JSON_MAX_DEPTH`` and free of NUL and surrogates."""

    def __init__(self, *, max_bytes: int = JSON_MAX_BYTES, max_depth: int = JSON_MAX_DEPTH, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(lambda value: json_check(value, max_bytes=max_bytes, max_depth=max_depth))


class SafeDateField(serializers.DateField):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(date_check)


class SafeDateTimeField(serializers.DateTimeField):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(date_check)


class SafeCharField(serializers.CharField):
    """DRF's CharField refuses NUL; this also refuses lone surrogates and caps unbounded text."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", TEXT_MAX_LENGTH)
        super().__init__(**kwargs)
        self.validators.append(text_check)


class SafeSerializerMixin(ReadOnlyFieldsMixin):
    """For ModelSerializers: every generated field gets the limits of its kind (text, JSON, dates,
    integers), so a new model field is covered without restating them; read-only fields say when they
    may be blank or null (``scrm.openapi.ReadOnlyFieldsMixin``)."""

    def build_standard_field(self, field_name, model_field):
        field_class, field_kwargs = super().build_standard_field(field_name, model_field)
        if issubclass(field_class, serializers.JSONField) and not issubclass(field_class, SafeJSONField):
            field_class = SafeJSONField
            field_kwargs.pop("encoder", None)
            field_kwargs.pop("decoder", None)
        elif field_class is serializers.DateTimeField:
            field_class = SafeDateTimeField
        elif field_class is serializers.DateField:
            field_class = SafeDateField
        elif field_class is serializers.CharField:
            field_kwargs.setdefault("max_length", TEXT_MAX_LENGTH)
            field_kwargs.setdefault("validators", []).append(text_check)
        elif field_class is serializers.IntegerField:
            field_kwargs.setdefault("validators", []).append(int_check)
        return field_class, field_kwargs
