"""Phone numbers: validated and normalised to E.164 with the ``phonenumbers`` library.

Mainland mobile numbers are by far the most common input, and imports carry millions of them, so their
validity is looked up once per 7-digit prefix (the part of the number the numbering plan constrains;
the last four digits are free) and cached. Everything else goes through ``phonenumbers`` in full.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

_SEPARATORS = re.compile(r"[\s\-().]")
_CN_MOBILE = re.compile(r"^(?:\+86|0086|86)?(1\d{10})$")


@lru_cache(maxsize=4096)
def _cn_mobile_prefix_is_valid(prefix7: str) -> bool:
    try:
        number = phonenumbers.parse(prefix7 + "0000", "CN")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def normalize_phone(raw: str, region: str | None = None) -> str:
    """Return ``raw`` as an E.164 string, or raise ``ValidationError`` saying why it is not a number."""
    region = region or settings.SCRM_DEFAULT_PHONE_REGION
    compact = _SEPARATORS.sub("", raw or "")
    if not compact:
        raise ValidationError(_("Enter a phone number."), code="required")
    if region == "CN" and (match := _CN_MOBILE.match(compact)):
        national = match.group(1)
        if _cn_mobile_prefix_is_valid(national[:7]):
            return "+86" + national
        raise ValidationError(_("%(value)s is not a valid phone number.") % {"value": raw}, code="invalid")
    try:
        number = phonenumbers.parse(compact, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(_("%(value)s is not a valid phone number.") % {"value": raw}, code="invalid") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(_("%(value)s is not a valid phone number.") % {"value": raw}, code="invalid")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(phone: str | None) -> str:
    """``+8613812345678`` → ``138****5678``: enough to recognise a number, not enough to copy it."""
    if not phone:
        return ""
    national = phone[3:] if phone.startswith("+86") else phone
    if len(national) >= 9:
        return f"{national[:-8]}****{national[-4:]}"
    return f"{national[:2]}****{national[-2:]}" if len(national) > 4 else "****"
