"""An automation's writes: ``automation_create``, ``automation_update`` and ``automation_set_active``,
each validating the automation as a whole (trigger settings, condition, action and its template) so that
nothing can fail later at fire time for a reason that was knowable when it was saved.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from communities.models import Community
from contacts.models import Product, Tag

from .. import content
from ..models import Automation, AutomationRun, Medium, MessageTemplate, Segment
from ..segments import segment_q
from .backfill import automation_backfill
from .triggers import PRODUCT_TRIGGERS

User = get_user_model()

Trigger = Automation.Trigger
Action = Automation.Action
RunStatus = AutomationRun.Status

MAX_DELAY_MINUTES = 366 * 24 * 60
MAX_INACTIVE_DAYS = 3650

# Fields automation_create takes (besides created_by) and automation_update may change.
AUTOMATION_EDITABLE_FIELDS = (
    "name",
    "trigger",
    "trigger_config",
    "delay_minutes",
    "condition",
    "action",
    "template",
    "medium",
    "variables",
    "tag",
    "owner",
    "task_title",
    "is_active",
)

# Stored untranslated (marked for translation) and translated where it is shown, like the runs' errors.
ERROR_SWITCHED_OFF = gettext_noop("automation switched off")


# --- Validation --------------------------------------------------------------------------------


def _as_int(value: Any) -> int | None:
    """An id or a count given as an int or a string of digits; None for anything else (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# trigger → {setting: required?}
_CONFIG_KEYS: dict[str, dict[str, bool]] = {
    Trigger.CONTACT_CREATED: {},
    Trigger.PURCHASE_MADE: {},
    Trigger.BIRTHDAY: {},
    Trigger.INACTIVE: {"days": True},
    Trigger.TAG_ADDED: {"tag": True},
    Trigger.JOINED_COMMUNITY: {"community": False},
    Trigger.REPURCHASE_DUE: {"product": False},
}


def _trigger_config_clean(trigger: str, config: Any, errors: dict[str, list[str]]) -> dict:
    if config is None:
        config = {}
    if not isinstance(config, dict):
        errors["trigger_config"] = [_("The trigger settings are a mapping of names to values.")]
        return {}
    allowed = _CONFIG_KEYS[trigger]
    cleaned: dict[str, int] = {}
    for key in config:
        if key not in allowed:
            errors[f"trigger_config.{key}"] = [
                _("“%(key)s” is not a setting of this trigger; it takes %(allowed)s.")
                % {"key": key, "allowed": ", ".join(allowed) or _("no settings")}
            ]
    for key, required in allowed.items():
        field = f"trigger_config.{key}"
        raw = config.get(key)
        if raw in (None, ""):
            if required:
                errors[field] = [_("This field is required.")]
            continue
        value = _as_int(raw)
        if key == "days":
            if value is None or not 1 <= value <= MAX_INACTIVE_DAYS:
                errors[field] = [_("Enter a whole number of days from 1 to %(max)d.") % {"max": MAX_INACTIVE_DAYS}]
                continue
        elif key == "tag":
            if value is None or not Tag.objects.filter(pk=value).exists():
                errors[field] = [_("Unknown tag: %(value)s.") % {"value": raw}]
                continue
        elif key == "community":
            if value is None or not Community.objects.filter(pk=value).exists():
                errors[field] = [_("Unknown community: %(value)s.") % {"value": raw}]
                continue
        elif key == "product":
            product = Product.objects.filter(pk=value).first() if value is not None else None
            if product is None:
                errors[field] = [_("Unknown product: %(value)s.") % {"value": raw}]
                continue
            if not product.repurchase_cycle_days:
                errors[field] = [
                    _("The product “%(name)s” has no repurchase cycle; set one first.") % {"name": product.name}
                ]
                continue
        cleaned[key] = value
    return cleaned


def _template_errors(template: Any, *, trigger: str, variables: Any, errors: dict[str, list[str]]) -> None:
    if template is None:
        errors["template"] = [_("Choose a message template.")]
        return
    if not isinstance(template, MessageTemplate):
        errors["template"] = [_("Choose a message template.")]
        return
    if not template.is_active:
        errors["template"] = [_("The template “%(name)s” is archived.") % {"name": template.name}]
        return
    provided = content.RUN_PLACEHOLDERS if trigger in PRODUCT_TRIGGERS else ()
    for text, field in ((template.body, "body"), (template.subject, "subject")):
        if field == "subject" and not text:
            continue
        try:
            content.template_validate(text, variables=variables, require_variables=True, provided=provided, field=field)
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                target = "variables" if key == "variables" else "template"
                for message in messages:
                    if message not in errors.get(target, []):
                        errors.setdefault(target, []).append(message)


def _automation_clean(values: dict[str, Any]) -> dict[str, Any]:
    """The values normalised (fields an action does not use cleared), or ``ValidationError`` naming each
    bad field."""
    errors: dict[str, list[str]] = {}
    cleaned = dict(values)

    name = values.get("name")
    max_name = Automation._meta.get_field("name").max_length
    if not isinstance(name, str) or not name.strip():
        errors["name"] = [_("Give the automation a name.")]
    elif len(name.strip()) > max_name:
        errors["name"] = [_("At most %(max)d characters.") % {"max": max_name}]
    else:
        cleaned["name"] = name.strip()

    trigger = values.get("trigger")
    if trigger not in Trigger.values:
        errors["trigger"] = [
            _("Unknown trigger “%(value)s”; one of %(choices)s.")
            % {"value": trigger, "choices": ", ".join(Trigger.values)}
        ]
    else:
        cleaned["trigger_config"] = _trigger_config_clean(trigger, values.get("trigger_config"), errors)

    delay = values.get("delay_minutes")
    delay_int = _as_int(delay) if delay not in (None, "") else 0
    if delay_int is None or not 0 <= delay_int <= MAX_DELAY_MINUTES:
        errors["delay_minutes"] = [_("Enter a delay of 0 to %(max)d minutes (a year).") % {"max": MAX_DELAY_MINUTES}]
    else:
        cleaned["delay_minutes"] = delay_int

    condition = values.get("condition")
    if condition is not None:
        if not isinstance(condition, Segment):
            errors["condition"] = [_("Choose a segment.")]
        else:
            try:
                segment_q(condition.rules)
            except ValidationError:
                errors["condition"] = [_("The segment “%(name)s” has invalid rules.") % {"name": condition.name}]

    medium = values.get("medium") or Medium.WECOM
    if medium not in Medium.values:
        errors["medium"] = [_("Unknown medium “%(value)s”.") % {"value": medium}]
    cleaned["medium"] = medium

    action = values.get("action")
    variables = values.get("variables")
    variables = {} if variables is None else variables
    if action not in Action.values:
        errors["action"] = [
            _("Unknown action “%(value)s”; one of %(choices)s.")
            % {"value": action, "choices": ", ".join(Action.values)}
        ]
    if action == Action.SEND_TEMPLATE:
        if trigger in Trigger.values:
            _template_errors(values.get("template"), trigger=trigger, variables=variables, errors=errors)
        cleaned["variables"] = variables
    else:
        cleaned["template"], cleaned["variables"] = None, {}
    if action in (Action.ADD_TAG, Action.REMOVE_TAG):
        if not isinstance(values.get("tag"), Tag):
            errors["tag"] = [_("Choose the tag to add or remove.")]
    else:
        cleaned["tag"] = None
    if action == Action.ASSIGN_OWNER:
        owner = values.get("owner")
        if not isinstance(owner, User):
            errors["owner"] = [_("Choose the staff member who becomes the owner.")]
        elif not owner.is_active:
            errors["owner"] = [_("The new owner is not an active user.")]
    else:
        cleaned["owner"] = None
    title = values.get("task_title") or ""
    max_title = Automation._meta.get_field("task_title").max_length
    if action == Action.CREATE_TASK:
        if not isinstance(title, str) or not title.strip():
            errors["task_title"] = [_("Give the follow-up task a title.")]
        elif len(title.strip()) > max_title:
            errors["task_title"] = [_("At most %(max)d characters.") % {"max": max_title}]
        else:
            cleaned["task_title"] = title.strip()
    else:
        cleaned["task_title"] = ""

    cleaned["is_active"] = bool(values.get("is_active", True))
    if errors:
        raise ValidationError(errors)
    return cleaned


# --- Writes ------------------------------------------------------------------------------------


def automation_create(
    *,
    created_by: User | None,
    name: str,
    trigger: str,
    trigger_config: dict | None = None,
    delay_minutes: int = 0,
    condition: Segment | None = None,
    action: str,
    template: MessageTemplate | None = None,
    medium: str = Medium.WECOM,
    variables: dict | None = None,
    tag: Tag | None = None,
    owner: User | None = None,
    task_title: str = "",
    is_active: bool = True,
) -> Automation:
    """A new automation, everything validated now (so nothing can fail later at fire time for a reason that
    was knowable). Active ones start from now: earlier events never fire them."""
    cleaned = _automation_clean(
        {
            "name": name,
            "trigger": trigger,
            "trigger_config": trigger_config,
            "delay_minutes": delay_minutes,
            "condition": condition,
            "action": action,
            "template": template,
            "medium": medium,
            "variables": variables,
            "tag": tag,
            "owner": owner,
            "task_title": task_title,
            "is_active": is_active,
        }
    )
    with transaction.atomic():
        return Automation.objects.create(
            created_by=created_by,
            active_since=timezone.now() if cleaned["is_active"] else None,
            **cleaned,
        )


def _values_of(automation: Automation) -> dict[str, Any]:
    return {field: getattr(automation, field) for field in AUTOMATION_EDITABLE_FIELDS}


def _switch_off(automation: Automation, *, now: dt.datetime) -> int:
    """Waiting runs of an automation switched off are dropped: switching it on again must not fire events
    from before (nor stale reminders)."""
    return AutomationRun.objects.filter(automation_id=automation.pk, status=RunStatus.WAITING).update(
        status=RunStatus.SKIPPED, error=ERROR_SWITCHED_OFF, finished_at=now
    )


def automation_update(*, automation: Automation, **fields: Any) -> Automation:
    """Change an automation (``AUTOMATION_EDITABLE_FIELDS``), validated as a whole. A new trigger or trigger
    setting on an active automation applies from now on; waiting runs keep their due time and take the new
    condition and action when they fire."""
    unknown = sorted(set(fields) - set(AUTOMATION_EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({key: [_("This field cannot be set.")] for key in unknown})
    now = timezone.now()
    with transaction.atomic():
        locked = Automation.objects.select_for_update().get(pk=automation.pk)
        values = {**_values_of(locked), **fields}
        cleaned = _automation_clean(values)
        was_active = locked.is_active
        retriggered = (cleaned["trigger"], cleaned["trigger_config"]) != (locked.trigger, locked.trigger_config)
        for field, value in cleaned.items():
            setattr(locked, field, value)
        if cleaned["is_active"] and (not was_active or retriggered):
            locked.active_since, locked.scanned_until = now, None
        if was_active and not cleaned["is_active"]:
            _switch_off(locked, now=now)
        locked.save()
    _copy(locked, automation)
    return automation


def automation_set_active(*, automation: Automation, active: bool, apply_to_current: bool = False) -> Automation:
    """Switch an automation on (it fires for events from now on; it is validated again first, e.g. its
    template may have been archived meanwhile) or off (its waiting runs are dropped). Idempotent.

    ``apply_to_current`` (only when switching on, and only when asked: history is never replayed by
    accident) also gives each contact the trigger's state holds for now one run, due at once
    (``backfill.automation_backfill``); how many runs that wrote is ``automation.applied_to_current``."""
    now = timezone.now()
    automation.applied_to_current = 0
    with transaction.atomic():
        locked = Automation.objects.select_for_update().get(pk=automation.pk)
        if active and not locked.is_active:
            _automation_clean({**_values_of(locked), "is_active": True})
            Automation.objects.filter(pk=locked.pk).update(
                is_active=True, active_since=now, scanned_until=None, updated_at=now
            )
            if apply_to_current:
                locked.refresh_from_db()
                automation.applied_to_current = automation_backfill(locked, now=now)
        elif not active and locked.is_active:
            Automation.objects.filter(pk=locked.pk).update(is_active=False, updated_at=now)
            _switch_off(locked, now=now)
        locked.refresh_from_db()
    _copy(locked, automation)
    return automation


def _copy(source: Automation, target: Automation) -> None:
    if source is target:
        return
    for field in Automation._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    target._state.fields_cache = {}
