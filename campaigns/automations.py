"""The SOP engine: automations (trigger → delay → condition → action), their runs, and follow-up tasks.

Two periodic steps, both set-based and both harmless when beat runs them twice at once:

* ``automations_scan`` finds, for each active automation, the trigger events that happened since it last
  looked and writes one ``AutomationRun`` per event in ``INSERT … SELECT … ON CONFLICT DO NOTHING``
  statements, in keyset chunks of the source table. The run's ``key`` names the event (``purchase:42``,
  ``birthday:2026``, ``repurchase:42:7`` …) and is unique per (automation, contact, key): re-reading an
  overlapping window, or two scans at once, writes each run once.
* ``automation_runs_process`` claims chunks of due waiting runs (``SELECT … FOR UPDATE SKIP LOCKED`` and a
  conditional update), drops those whose contact is gone, fails the condition segment, or (repurchase
  reminders) bought again or was refunded, and applies the action to the rest with one statement per
  automation. Claim, action and the runs' final status commit together, so a worker killed mid-chunk
  leaves the runs waiting and nothing half-done; sends are ``Delivery`` rows (unique per run) that the
  delivery engine sends with the same consent, cap and quiet-hour checks as broadcasts.

Events before an automation's ``active_since`` never fire it: switching one on does not replay history.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import (
    CharField,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Concat, TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from analytics.metrics import business_timezone
from communities.models import Community, Membership
from contacts.models import Contact, ContactTag, Product, Purchase, PurchaseItem, Tag
from contacts.services import contacts_reassign, contacts_tag, contacts_untag

from . import content
from .models import Automation, AutomationRun, Delivery, FollowUpTask, Medium, MessageTemplate, Segment
from .segments import segment_q

logger = logging.getLogger(__name__)
User = get_user_model()

Trigger = Automation.Trigger
Action = Automation.Action
RunStatus = AutomationRun.Status

# Event triggers re-read this much before the last scan: rows committed a little after the time they carry
# (a long transaction, a clock a little behind) are still found; the runs' unique key dedupes the overlap.
OVERLAP = dt.timedelta(minutes=10)
SCAN_CHUNK = getattr(settings, "SCRM_AUTOMATION_SCAN_CHUNK", 5000)
PROCESS_CHUNK = getattr(settings, "SCRM_AUTOMATION_CHUNK", 1000)
# One call of automation_runs_process stops claiming new chunks after this; the next tick goes on.
PROCESS_BUDGET = dt.timedelta(seconds=45)
BIRTHDAY_TIME = dt.time(9, 0)
TASK_DUE_AFTER = dt.timedelta(days=1)
# An order recorded more than this after it was placed is history being imported, not a purchase to react to.
LATE_PURCHASE_LIMIT = dt.timedelta(days=2)
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
# Triggers whose runs carry a product, so a template may use {product} without a variable for it.
PRODUCT_TRIGGERS = (Trigger.REPURCHASE_DUE, Trigger.PURCHASE_MADE)

# Run errors are stored untranslated (marked for translation) and translated where they are shown.
ERROR_GONE = gettext_noop("contact erased or merged")
ERROR_CONDITION = gettext_noop("condition not met")
ERROR_REFUNDED = gettext_noop("purchase refunded")
ERROR_BOUGHT_AGAIN = gettext_noop("product bought again")
ERROR_NO_OWNER = gettext_noop("no owner")
ERROR_SWITCHED_OFF = gettext_noop("automation switched off")
ERROR_NO_TEMPLATE = gettext_noop("the template is missing or archived")
ERROR_NO_TAG = gettext_noop("no tag configured")
ERROR_NO_OWNER_CONFIGURED = gettext_noop("no owner configured")
ERROR_BAD_CONDITION = gettext_noop("the condition segment is invalid")

_TRANSIENT = (OperationalError, InterfaceError)


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


# --- Services: automations ---------------------------------------------------------------------


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


def automation_set_active(*, automation: Automation, active: bool) -> Automation:
    """Switch an automation on (it fires for events from now on; it is validated again first, e.g. its
    template may have been archived meanwhile) or off (its waiting runs are dropped). Idempotent."""
    now = timezone.now()
    with transaction.atomic():
        locked = Automation.objects.select_for_update().get(pk=automation.pk)
        if active and not locked.is_active:
            _automation_clean({**_values_of(locked), "is_active": True})
            Automation.objects.filter(pk=locked.pk).update(
                is_active=True, active_since=now, scanned_until=None, updated_at=now
            )
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


# --- Set-based insert --------------------------------------------------------------------------


def _insert_select(model, rows: QuerySet, columns: dict[str, Any]) -> int:
    """``INSERT INTO model (columns) SELECT … FROM rows ON CONFLICT DO NOTHING`` in one statement; returns
    the rows written. ``columns`` maps column names to expressions over ``rows``. The SELECT comes from the
    ORM with its parameters bound separately: no user input is spliced into the statement."""
    select = rows.annotate(**{f"c_{name}": expr for name, expr in columns.items()}).values(
        *[f"c_{name}" for name in columns]
    )
    select_sql, params = select.order_by().query.sql_with_params()
    qn = connection.ops.quote_name
    target = ", ".join(qn(name) for name in columns)
    source = ", ".join(f"s.{qn('c_' + name)}" for name in columns)
    sql = (
        f"INSERT INTO {qn(model._meta.db_table)} ({target}) "
        f"SELECT {source} FROM ({select_sql}) s WHERE true "
        "ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(cursor.rowcount, 0)


def _plus(expression, delta: dt.timedelta):
    if not delta:
        return expression
    return ExpressionWrapper(expression + Value(delta), output_field=DateTimeField())


def _key(prefix: str, *parts) -> Concat:
    pieces: list[Any] = [Value(prefix)]
    for index, part in enumerate(parts):
        if index:
            pieces.append(Value(":"))
        pieces.append(Cast(part, output_field=CharField()))
    return Concat(*pieces, output_field=CharField())


# --- Trigger scan ------------------------------------------------------------------------------


@dataclass
class _Source:
    """Where one trigger's events come from: rows of some table, and per row the run's contact, key, due
    time and (optionally) purchase and product, as expressions over those rows."""

    rows: QuerySet
    contact: Any
    key: Any
    due_at: Any
    purchase: Any = None
    product: Any = None


def _live(prefix: str = "") -> Q:
    return Q(**{f"{prefix}merged_into__isnull": True, f"{prefix}erased_at__isnull": True})


def _later_paid_purchase(*, contact: str, product: str, purchased_at: str, purchase: str) -> Exists:
    """A paid purchase of the same product by the same contact after the outer row's purchase (ties on the
    time broken by the purchase id)."""
    later = PurchaseItem.objects.filter(
        product_id=OuterRef(product), purchase__contact_id=OuterRef(contact), purchase__status=Purchase.Status.PAID
    ).filter(
        Q(purchase__purchased_at__gt=OuterRef(purchased_at))
        | Q(purchase__purchased_at=OuterRef(purchased_at), purchase_id__gt=OuterRef(purchase))
    )
    return Exists(later)


def _sources(automation: Automation, *, since: dt.datetime, now: dt.datetime) -> list[_Source]:
    """The trigger's event sources. Event triggers read ``[since, now]``; state triggers (birthday,
    inactive, repurchase due) read everything that is due now and became due after ``active_since``."""
    delay = dt.timedelta(minutes=automation.delay_minutes)
    config = automation.trigger_config or {}
    trigger = automation.trigger
    active_since = automation.active_since
    if trigger == Trigger.CONTACT_CREATED:
        rows = Contact.objects.filter(_live(), created_at__gte=since, created_at__lte=now)
        return [_Source(rows, F("pk"), Value("created"), _plus(F("created_at"), delay))]
    if trigger == Trigger.PURCHASE_MADE:
        rows = Purchase.objects.filter(
            _live("contact__"),
            status=Purchase.Status.PAID,
            created_at__gte=since,
            created_at__lte=now,
            purchased_at__gte=max(active_since, now - LATE_PURCHASE_LIMIT),
        )
        first_product = PurchaseItem.objects.filter(purchase_id=OuterRef("pk")).order_by("pk").values("product_id")
        return [
            _Source(
                rows,
                F("contact_id"),
                _key("purchase:", F("pk")),
                _plus(F("purchased_at"), delay),
                purchase=F("pk"),
                product=Subquery(first_product[:1]),
            )
        ]
    if trigger == Trigger.TAG_ADDED:
        rows = ContactTag.objects.filter(
            _live("contact__"), tag_id=config.get("tag"), created_at__gte=since, created_at__lte=now
        )
        return [_Source(rows, F("contact_id"), _key("tag:", F("pk")), _plus(F("created_at"), delay))]
    if trigger == Trigger.JOINED_COMMUNITY:
        rows = Membership.objects.filter(_live("contact__"), joined_at__gte=since, joined_at__lte=now)
        if config.get("community"):
            rows = rows.filter(community_id=config["community"])
        return [_Source(rows, F("contact_id"), _key("join:", F("pk")), _plus(F("joined_at"), delay))]
    if trigger == Trigger.BIRTHDAY:
        tz = business_timezone()
        today = timezone.localtime(now, tz).date()
        born_today = Q(birthday__month=today.month, birthday__day=today.day)
        if (today.month, today.day) == (2, 28) and not calendar.isleap(today.year):
            born_today |= Q(birthday__month=2, birthday__day=29)
        due = max(dt.datetime.combine(today, BIRTHDAY_TIME, tzinfo=tz), now) + delay
        rows = Contact.objects.filter(_live(), birthday__isnull=False).filter(born_today)
        return [_Source(rows, F("pk"), Value(f"birthday:{today.year}"), Value(due, output_field=DateTimeField()))]
    if trigger == Trigger.INACTIVE:
        span = dt.timedelta(days=int(config["days"]))
        # The spell starts at the last interaction (or the acquisition when there was none); it becomes an
        # event span later. Only spells that became events after active_since count.
        rows = (
            Contact.objects.filter(_live())
            .annotate(r_last=Coalesce("last_interaction_at", "acquired_at"))
            .filter(r_last__lte=now - span, r_last__gte=active_since - span)
        )
        spell_day = TruncDate("r_last", tzinfo=business_timezone())
        return [_Source(rows, F("pk"), _key("inactive:", spell_day), _plus(F("r_last"), span + delay))]
    if trigger == Trigger.REPURCHASE_DUE:
        products = Product.objects.filter(repurchase_cycle_days__isnull=False)
        if config.get("product"):
            products = products.filter(pk=config["product"])
        cycles = sorted(set(products.order_by().values_list("repurchase_cycle_days", flat=True)))
        sources = []
        # One source per cycle length (a handful), so each compares purchase times with a constant.
        for cycle in cycles:
            span = dt.timedelta(days=cycle)
            rows = PurchaseItem.objects.filter(
                _live("purchase__contact__"),
                product__repurchase_cycle_days=cycle,
                purchase__status=Purchase.Status.PAID,
                purchase__purchased_at__lte=now - span,
                purchase__purchased_at__gte=active_since - span,
            ).filter(
                ~_later_paid_purchase(
                    contact="purchase__contact_id",
                    product="product_id",
                    purchased_at="purchase__purchased_at",
                    purchase="purchase_id",
                )
            )
            if config.get("product"):
                rows = rows.filter(product_id=config["product"])
            sources.append(
                _Source(
                    rows,
                    F("purchase__contact_id"),
                    _key("repurchase:", F("purchase_id"), F("product_id")),
                    _plus(F("purchase__purchased_at"), span + delay),
                    purchase=F("purchase_id"),
                    product=F("product_id"),
                )
            )
        return sources
    raise ValueError(f"unknown trigger {trigger!r}")


def _insert_runs(automation: Automation, source: _Source, *, chunk_size: int) -> int:
    """Write the source's runs that do not exist yet, in keyset chunks of the source rows (two statements
    a chunk: find the chunk's last id, insert up to it)."""
    existing = AutomationRun.objects.filter(
        automation_id=automation.pk, contact_id=OuterRef("r_contact"), key=OuterRef("r_key")
    )
    rows = source.rows.annotate(r_contact=source.contact, r_key=source.key).filter(~Exists(existing))
    columns: dict[str, Any] = {
        "automation_id": Value(automation.pk),
        "contact_id": F("r_contact"),
        "key": F("r_key"),
        "status": Value(RunStatus.WAITING),
        "due_at": source.due_at,
        "created_at": Value(timezone.now()),
        "error": Value(""),
    }
    if source.purchase is not None:
        columns["purchase_id"] = source.purchase
    if source.product is not None:
        columns["product_id"] = source.product
    inserted = 0
    last = None
    while True:
        page = rows if last is None else rows.filter(pk__gt=last)
        bound = list(page.order_by("pk").values_list("pk", flat=True)[chunk_size - 1 : chunk_size])
        chunk = page.filter(pk__lte=bound[0]) if bound else page
        inserted += _insert_select(AutomationRun, chunk, columns)
        if not bound:
            return inserted
        last = bound[0]


def automation_scan(*, automation: Automation, now: dt.datetime | None = None, chunk_size: int = SCAN_CHUNK) -> int:
    """Write the runs of one automation's new trigger events; returns how many runs are new. Reads events
    since ``max(active_since, scanned_until - OVERLAP)``, then moves ``scanned_until`` to ``now`` (never
    backwards: two scans at once are harmless)."""
    now = now or timezone.now()
    if not automation.is_active:
        return 0
    if automation.active_since is None:
        # Switched on behind the services' back (admin, fixtures): it starts from now.
        Automation.objects.filter(pk=automation.pk, active_since__isnull=True).update(active_since=now)
        automation.active_since = now
    if now < automation.active_since:
        return 0
    since = automation.active_since
    if automation.scanned_until is not None:
        since = max(since, automation.scanned_until - OVERLAP)
    inserted = 0
    for source in _sources(automation, since=since, now=now):
        inserted += _insert_runs(automation, source, chunk_size=chunk_size)
    Automation.objects.filter(pk=automation.pk).filter(Q(scanned_until__isnull=True) | Q(scanned_until__lt=now)).update(
        scanned_until=now
    )
    if inserted:
        logger.info("automation %s: %s new runs", automation.pk, inserted)
    return inserted


def automations_scan(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Scan every active automation for new trigger events (see ``automation_scan``). One broken automation
    is logged and does not stop the others."""
    now = now or timezone.now()
    stats = {"automations": 0, "runs": 0, "errors": 0}
    for automation in Automation.objects.filter(is_active=True).order_by("pk"):
        try:
            stats["runs"] += automation_scan(automation=automation, now=now)
            stats["automations"] += 1
        except _TRANSIENT:
            raise
        except Exception:
            logger.exception("automation %s: the trigger scan failed", automation.pk)
            stats["errors"] += 1
    return stats


# --- Processing due runs -----------------------------------------------------------------------


class _ActionFailed(Exception):
    """The action cannot be applied (its configuration went bad since it was saved); the runs fail."""


def _finish(runs: QuerySet[AutomationRun], status: str, *, now: dt.datetime, error: str = "") -> int:
    return runs.update(status=status, error=error[:2000], finished_at=now)


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(str(message) for message in exc.messages)
    return str(exc) or type(exc).__name__


def _send_template(automation: Automation, runs: QuerySet[AutomationRun], *, now: dt.datetime) -> dict[str, int]:
    template = automation.template
    if template is None or not template.is_active:
        raise _ActionFailed(ERROR_NO_TEMPLATE)
    written = _insert_select(
        Delivery,
        runs,
        {
            "automation_run_id": F("pk"),
            "contact_id": F("contact_id"),
            "medium": Value(automation.medium),
            "template_id": Value(template.pk),
            "is_marketing": Value(not template.is_service),
            "status": Value(Delivery.Status.PENDING),
            "reason": Value(""),
            "attempts": Value(0),
            "created_at": Value(timezone.now()),
            "error": Value(""),
            "gateway": Value(""),
            "gateway_message_id": Value(""),
            "gateway_state": Value(""),
        },
    )
    return {"deliveries": written}


def _contact_ids(runs: QuerySet[AutomationRun]) -> list[int]:
    # Bounded by the chunk size.
    return sorted(set(runs.values_list("contact_id", flat=True)))


def _add_tag(automation: Automation, runs: QuerySet[AutomationRun], *, now: dt.datetime) -> dict[str, int]:
    if automation.tag is None:
        raise _ActionFailed(ERROR_NO_TAG)
    contacts_tag(contact_ids=_contact_ids(runs), tags=[automation.tag], source=ContactTag.Source.AUTOMATION)
    return {}


def _remove_tag(automation: Automation, runs: QuerySet[AutomationRun], *, now: dt.datetime) -> dict[str, int]:
    if automation.tag is None:
        raise _ActionFailed(ERROR_NO_TAG)
    contacts_untag(contact_ids=_contact_ids(runs), tags=[automation.tag])
    return {}


def _assign_owner(automation: Automation, runs: QuerySet[AutomationRun], *, now: dt.datetime) -> dict[str, int]:
    if automation.owner is None:
        raise _ActionFailed(ERROR_NO_OWNER_CONFIGURED)
    contacts_reassign(contacts=Contact.objects.filter(pk__in=runs.values("contact_id")), owner=automation.owner)
    return {}


def _create_task(automation: Automation, runs: QuerySet[AutomationRun], *, now: dt.datetime) -> dict[str, int]:
    # The task goes to the contact's owner; a contact nobody (active) owns has no one to follow up.
    skipped = _finish(
        runs.filter(Q(contact__owner__isnull=True) | Q(contact__owner__is_active=False)),
        RunStatus.SKIPPED,
        now=now,
        error=ERROR_NO_OWNER,
    )
    note = _("Created by the automation “%(name)s”.") % {"name": automation.name}
    written = _insert_select(
        FollowUpTask,
        runs,
        {
            "assignee_id": F("contact__owner_id"),
            "contact_id": F("contact_id"),
            "title": Value(automation.task_title or automation.name),
            "note": Value(note),
            "due_at": Value(now + TASK_DUE_AFTER),
            "status": Value(FollowUpTask.Status.OPEN),
            "automation_run_id": F("pk"),
            "created_at": Value(timezone.now()),
        },
    )
    return {"tasks": written, "skipped": skipped}


_ACTIONS: dict[str, Callable[..., dict[str, int]]] = {
    Action.SEND_TEMPLATE: _send_template,
    Action.ADD_TAG: _add_tag,
    Action.REMOVE_TAG: _remove_tag,
    Action.ASSIGN_OWNER: _assign_owner,
    Action.CREATE_TASK: _create_task,
}


def _apply(automation: Automation, runs: QuerySet[AutomationRun], *, now: dt.datetime, stats: dict[str, int]) -> None:
    """Check the claimed runs of one automation and act on those that pass; every run leaves ``running``."""
    stats["skipped"] += _finish(runs.filter(~_live("contact__")), RunStatus.SKIPPED, now=now, error=ERROR_GONE)
    if automation.condition_id:
        try:
            condition = segment_q(automation.condition.rules, now=now)
        except ValidationError:
            stats["failed"] += _finish(runs, RunStatus.FAILED, now=now, error=ERROR_BAD_CONDITION)
            return
        matching = Contact.objects.filter(condition).filter(pk=OuterRef("contact_id"))
        stats["skipped"] += _finish(runs.filter(~Exists(matching)), RunStatus.SKIPPED, now=now, error=ERROR_CONDITION)
    if automation.trigger in PRODUCT_TRIGGERS:
        # Fire-time re-check: an order refunded meanwhile gets no thank-you or reminder.
        stats["skipped"] += _finish(
            runs.filter(purchase__isnull=False).exclude(purchase__status=Purchase.Status.PAID),
            RunStatus.SKIPPED,
            now=now,
            error=ERROR_REFUNDED,
        )
    if automation.trigger == Trigger.REPURCHASE_DUE:
        rebought = _later_paid_purchase(
            contact="purchase__contact_id",
            product="product_id",
            purchased_at="purchase__purchased_at",
            purchase="purchase_id",
        )
        stats["skipped"] += _finish(
            runs.filter(product__isnull=False).filter(rebought), RunStatus.SKIPPED, now=now, error=ERROR_BOUGHT_AGAIN
        )
    try:
        with transaction.atomic():
            effects = _ACTIONS[automation.action](automation, runs, now=now)
    except _TRANSIENT:
        raise
    except _ActionFailed as exc:
        stats["failed"] += _finish(runs, RunStatus.FAILED, now=now, error=str(exc))
        return
    except Exception as exc:  # a bad configuration must fail its runs, not block the whole queue
        logger.exception("automation %s: the action failed", automation.pk)
        stats["failed"] += _finish(runs, RunStatus.FAILED, now=now, error=_error_text(exc))
        return
    for name, count in effects.items():
        stats[name] += count
    stats["done"] += _finish(runs, RunStatus.DONE, now=now)


def _process_chunk(*, now: dt.datetime, chunk_size: int) -> dict[str, int]:
    """Claim up to ``chunk_size`` due runs and see each to an end, all in one transaction."""
    stats = {"claimed": 0, "done": 0, "skipped": 0, "failed": 0, "deliveries": 0, "tasks": 0}
    with transaction.atomic():
        ids = list(
            AutomationRun.objects.filter(status=RunStatus.WAITING, due_at__lte=now, automation__is_active=True)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("due_at", "pk")
            .values_list("pk", flat=True)[:chunk_size]
        )
        if not ids:
            return stats
        AutomationRun.objects.filter(pk__in=ids, status=RunStatus.WAITING).update(status=RunStatus.RUNNING)
        claimed = AutomationRun.objects.filter(pk__in=ids, status=RunStatus.RUNNING)
        automation_ids = sorted(set(claimed.values_list("automation_id", flat=True)))
        stats["claimed"] = len(ids)
        automations = Automation.objects.filter(pk__in=automation_ids).select_related(
            "template", "tag__group", "owner", "condition"
        )
        for automation in automations.order_by("pk"):
            _apply(automation, claimed.filter(automation_id=automation.pk), now=now, stats=stats)
    return stats


def automation_runs_process(*, now: dt.datetime | None = None, chunk_size: int = PROCESS_CHUNK) -> dict[str, int]:
    """Act on the runs that are due, chunk by chunk, until none is left or ``PROCESS_BUDGET`` is spent.
    Returns the counts: claimed, done, skipped, failed, deliveries and tasks written. Harmless when run
    twice at once (each chunk claims with ``SKIP LOCKED`` and acts only on rows it moved to ``running``)."""
    now = now or timezone.now()
    totals = {"claimed": 0, "done": 0, "skipped": 0, "failed": 0, "deliveries": 0, "tasks": 0}
    deadline = time.monotonic() + PROCESS_BUDGET.total_seconds()
    while True:
        stats = _process_chunk(now=now, chunk_size=chunk_size)
        for name, count in stats.items():
            totals[name] += count
        if stats["claimed"] < chunk_size or time.monotonic() >= deadline:
            break
    # The automation deliveries are sent by the sender the broadcasts tick starts for them (every few seconds).
    return totals


# --- Follow-up tasks ---------------------------------------------------------------------------


def _is_manager(user: User) -> bool:
    return bool(
        user and user.is_authenticated and Contact.objects.sees_all(user) and user.has_perm("campaigns.change_followuptask")
    )


def follow_up_task_create(
    *,
    assignee: User,
    contact: Contact,
    title: str,
    note: str = "",
    due_at: dt.datetime | None = None,
) -> FollowUpTask:
    """A follow-up task made by hand. The assignee must be an active user who may see the contact."""
    errors: dict[str, list[str]] = {}
    title = (title or "").strip() if isinstance(title, str) else ""
    max_title = FollowUpTask._meta.get_field("title").max_length
    if not title:
        errors["title"] = [_("Give the task a title.")]
    elif len(title) > max_title:
        errors["title"] = [_("At most %(max)d characters.") % {"max": max_title}]
    if contact is None or contact.erased_at is not None or contact.merged_into_id is not None:
        errors["contact"] = [_("This contact was erased or merged.")]
    if assignee is None or not getattr(assignee, "is_active", False):
        errors["assignee"] = [_("Choose an active staff member.")]
    elif "contact" not in errors and not Contact.objects.live().visible_to(assignee).filter(pk=contact.pk).exists():
        errors["assignee"] = [_("%(user)s cannot see this contact.") % {"user": assignee.get_username()}]
    if due_at is not None and not isinstance(due_at, dt.datetime):
        errors["due_at"] = [_("Enter a date and time.")]
    if errors:
        raise ValidationError(errors)
    return FollowUpTask.objects.create(assignee=assignee, contact=contact, title=title, note=note or "", due_at=due_at)


def follow_up_task_complete(*, task: FollowUpTask, user: User) -> FollowUpTask:
    """Mark a task done: only its assignee or a manager may. Completing it twice changes nothing."""
    if not (user and user.is_authenticated and (user.pk == task.assignee_id or _is_manager(user))):
        raise PermissionDenied(_("Only the assignee or a manager can complete this task."))
    FollowUpTask.objects.filter(pk=task.pk, status=FollowUpTask.Status.OPEN).update(
        status=FollowUpTask.Status.DONE, done_at=timezone.now()
    )
    task.refresh_from_db()
    return task
