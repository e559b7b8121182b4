"""Follow-up notes (跟进记录): what a staff member wrote down about a contact, kept as a ``note``
touchpoint on the contact's timeline (the text in ``metadata["text"]``, ``staff`` the writer).

A note is staff's own record, not the contact engaging: like the other ``OUTBOUND_KINDS`` it changes
neither the last interaction nor the lifecycle stage. Erasing the contact empties the metadata with every
other touchpoint's (``contacts.privacy.contact_erase``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from scrm import limits

from .models import Contact, Touchpoint
from .services import touchpoint_record

#: A note is a few lines, not a document.
NOTE_MAX_LENGTH = 2000


def contact_note_add(
    *,
    contact: Contact,
    actor: Any,
    text: str,
    medium: str = Touchpoint.Medium.WECOM,
    occurred_at: dt.datetime | None = None,
) -> Touchpoint:
    """Record a follow-up note about ``contact`` written by ``actor``. The caller has checked that the actor
    may see the contact (views look it up through ``visible_to``). Bad input writes nothing."""
    errors: dict[str, list[str]] = {}
    text = text.strip() if isinstance(text, str) else ""
    if not text:
        errors["text"] = [_("Write the note first.")]
    elif len(text) > NOTE_MAX_LENGTH:
        errors["text"] = [_("At most %(max)d characters.") % {"max": NOTE_MAX_LENGTH}]
    else:
        try:
            limits.text_check(text)
        except ValidationError as exc:
            errors["text"] = exc.messages
    if medium not in Touchpoint.Medium.values:
        errors["medium"] = [_("Unknown medium “%(value)s”.") % {"value": medium}]
    if occurred_at is not None:
        try:
            limits.date_check(occurred_at)
            limits.not_in_future_check(occurred_at)
        except ValidationError as exc:
            errors["occurred_at"] = exc.messages
    if contact.merged_into_id is not None or contact.erased_at is not None:
        errors["contact"] = [_("This contact was merged or erased.")]
    if errors:
        raise ValidationError(errors)
    return touchpoint_record(
        contact=contact,
        medium=medium,
        kind=Touchpoint.Kind.NOTE,
        occurred_at=occurred_at or timezone.now(),
        staff=actor,
        metadata={"text": text},
    )
