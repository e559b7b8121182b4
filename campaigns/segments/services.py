"""Writes of segments: create, change, delete. Segments are shared for reading and use; only their author
and managers change or delete them (``segment_may_change``). Re-exported by ``campaigns.services``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from contacts.models import Contact

from ..models import Broadcast, Segment
from .compiler import segment_rules_validate

# Broadcasts past the draft stage and not sent yet: their audience and their template's variables were
# checked (and approved), so their segment's rules and their template's placeholders must not change.
LOCKED_STATUSES = (Broadcast.Status.PENDING_APPROVAL, Broadcast.Status.SCHEDULED, Broadcast.Status.SENDING)


# --- Segments --------------------------------------------------------------------------------

SEGMENT_EDITABLE_FIELDS = ("name", "description", "rules")


def _segment_errors(values: dict[str, Any], *, user=None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if "name" in values:
        name = values["name"]
        if not isinstance(name, str) or not name.strip():
            errors["name"] = [_("Give the segment a name.")]
        elif len(name.strip()) > Segment._meta.get_field("name").max_length:
            errors["name"] = [_("At most %(max)d characters.") % {"max": Segment._meta.get_field("name").max_length}]
        else:
            values["name"] = name.strip()
    if "description" in values:
        description = values["description"] if values["description"] is not None else ""
        if not isinstance(description, str):
            errors["description"] = [_("Expected text.")]
        elif len(description.strip()) > Segment._meta.get_field("description").max_length:
            errors["description"] = [
                _("At most %(max)d characters.") % {"max": Segment._meta.get_field("description").max_length}
            ]
        else:
            values["description"] = description.strip()
    if "rules" in values:
        try:
            values["rules"] = segment_rules_validate(values["rules"], user=user)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    return errors


def segment_create(*, name: str, rules: dict, description: str = "", created_by) -> Segment:
    """A new saved audience with validated, normalised rules."""
    values = {"name": name, "description": description, "rules": rules}
    errors = _segment_errors(values, user=created_by)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        return Segment.objects.create(created_by=created_by, **values)


def segment_may_change(*, segment: Segment, user) -> bool:
    """Segments are shared for reading and use; only their author and managers (who see every contact,
    or hold ``campaigns.change_any_segment``) may change or delete them."""
    if not (user and user.is_authenticated):
        return False
    if segment.created_by_id is not None and segment.created_by_id == user.pk:
        return True
    return Contact.objects.sees_all(user) or user.has_perm("campaigns.change_any_segment")


def _segment_check_may_change(segment: Segment, user) -> None:
    if not segment_may_change(segment=segment, user=user):
        raise PermissionDenied(_("Only the segment's author or a manager can change or delete it."))


def _segment_locked_error(segment: Segment, user) -> str | None:
    """Why the segment's rules cannot change now: broadcasts waiting to be sent use it. Names only the
    broadcasts ``user`` may see, and counts the others."""
    locked = segment.broadcasts.filter(status__in=LOCKED_STATUSES)
    total = locked.count()
    if not total:
        return None
    names = list(locked.filter(pk__in=Broadcast.objects.visible_to(user).values("pk")).values_list("name", flat=True))
    hidden = total - len(names)
    parts = [f"“{name}”" for name in names[:5]]
    if len(names) > 5:
        parts.append(_("%(count)d more") % {"count": len(names) - 5})
    if hidden:
        parts.append(_("%(count)d of other users") % {"count": hidden})
    return _(
        "The segment is the audience of broadcasts waiting to be sent (%(names)s): "
        "cancel them or save the new conditions as a new segment."
    ) % {"names": ", ".join(parts)}


def segment_update(*, segment: Segment, user, **fields: Any) -> Segment:
    """Change a segment's name, description or rules (validated like ``segment_create``). Only its author
    or a manager may (``PermissionDenied``)."""
    _segment_check_may_change(segment, user)
    unknown = sorted(set(fields) - set(SEGMENT_EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({key: [_("This field cannot be set.")] for key in unknown})
    values = dict(fields)
    errors = _segment_errors(values, user=user)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        segment = Segment.objects.select_for_update().get(pk=segment.pk)
        if "rules" in values and values["rules"] != segment.rules:
            # An approved audience must not change under its broadcast (nor widen past what was approved).
            problem = _segment_locked_error(segment, user)
            if problem:
                raise ValidationError({"rules": [problem]})
        for key, value in values.items():
            setattr(segment, key, value)
        segment.save(update_fields=[*values, "updated_at"])
    return segment


def segment_delete(*, segment: Segment, user) -> None:
    """Delete a segment no broadcast or automation uses (``ProtectedError`` otherwise). Only its author or
    a manager may (``PermissionDenied``)."""
    _segment_check_may_change(segment, user)
    segment.delete()
