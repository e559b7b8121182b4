"""Formatting for the workbench: ``{% load workbench %}``.

Counts and money always carry thousands separators (12,345 and ¥12,345.60), in Chinese too: Django's
zh-Hans number format has no thousands separator, and a dashboard of counts is unreadable without one."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template

from contacts.phones import mask_phone

register = template.Library()


@register.filter
def thousands(value: Any) -> str:
    """12345 → "12,345"; anything that is not a number is shown as it is."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        return "" if value is None else str(value)
    return f"{int(value):,}"


@register.simple_tag(takes_context=True)
def amount(context, value: Any) -> str:
    """Money with the currency symbol and thousands separators: ¥12,345.60."""
    if value is None:
        return "—"
    return f"{context.get('currency_symbol', '')}{Decimal(value):,.2f}"


@register.simple_tag(takes_context=True)
def difference(context, value: Any, money: bool = False) -> str:
    """A change with its sign: +12, −3, +¥1,234.00, ±0."""
    if not value:
        return "±0"
    sign = "+" if value > 0 else "−"
    magnitude = abs(value)
    shown = amount(context, magnitude) if money else thousands(magnitude)
    return f"{sign}{shown}"


@register.simple_tag
def contact_label(name: str | None, phone: str | None, pk: Any) -> str:
    """How a contact is named in a list: the name, else the masked phone, else its number."""
    return name or mask_phone(phone) or f"#{pk}"
