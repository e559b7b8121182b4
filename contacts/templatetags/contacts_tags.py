"""Template filters for showing contacts: ``{% load contacts_tags %}``."""

from __future__ import annotations

from django import template

from contacts.phones import mask_phone as _mask_phone

register = template.Library()


@register.filter
def mask_phone(phone: str | None) -> str:
    """A phone number with its middle digits hidden, for lists that show many contacts at once."""
    return _mask_phone(phone)
