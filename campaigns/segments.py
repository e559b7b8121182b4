"""The segment rule language and its compiler to ORM filters on ``Contact``.

A segment's ``rules`` are JSON: a *group* ``{"op": "and" | "or", "rules": [...]}`` whose items are groups
or *conditions* ``{"field": F, "operator": O, "value": V}``::

    {"op": "and", "rules": [
        {"field": "tags", "operator": "any", "value": [3, 7]},
        {"field": "days_since_last_purchase", "operator": "between", "value": [30, 90]},
        {"op": "or", "rules": [
            {"field": "region", "operator": "in", "value": ["上海", "杭州"]},
            {"field": "rfm_layer", "operator": "in", "value": ["core"]}
        ]}
    ]}

Only the fields of ``SEGMENT_FIELDS`` exist, each with its own operators and value parser, and each
compiles to a ``Q`` built from fixed lookups — user input only ever becomes bound query parameters, never
SQL text, and nothing is evaluated. Related rows (tags, communities, scores) are tested with ``EXISTS``
subqueries, so a contact matching through several rows still appears once and no ``DISTINCT`` is needed.

The root group may be empty (``{"op": "and", "rules": []}``, or ``{}``, the model's default): no
restriction, i.e. every live contact. Nested groups may not be empty. Groups nest at most ``MAX_DEPTH``
deep (the root is depth 1) and a tree holds at most ``MAX_CONDITIONS`` conditions.

Fields, operators and values:

========================== ========================= ===================================================
field                      operators                 value
========================== ========================= ===================================================
tags                       any, all, none            tag ids
stage                      in, not_in                ``Contact.Stage`` values
channel                    in, not_in / is_empty     channel ids / none
owner                      in, not_in / is_empty     user ids / none
community                  in, not_in                community ids (open membership: ``left_at`` null)
rfm_layer                  in, not_in                ``analytics.Layer`` values (``ContactScore.layer``)
predicted_clv              gte, lte / between        amount / [from, to]
days_since_last_purchase   gte, lte / between        whole days / [from, to]
purchase_count             eq, gte, lte / between    count / [from, to]
total_spent                gte, lte / between        amount / [from, to]
region                     eq / in, not_in           text / list of texts
gender                     in                        ``Contact.Gender`` values
birthday_month             in                        months 1..12
acquired_at                gte, lte / between        "YYYY-MM-DD" / [from, to]
consent                    is_true, is_false         none (consent given and not opted out)
opted_out                  is_true, is_false         none
========================== ========================= ===================================================

Ids may be integers or digit strings; amounts numbers or numeric text; ranges include both ends. An
operator that takes no value takes ``"value": null`` or no ``value`` key.

Semantics worth knowing (each field's notes are in ``SEGMENT_FIELDS``):

* ``not_in`` / ``none`` match contacts with *no* value too: ``channel not_in [3]`` includes contacts
  without a channel, ``tags none [1, 2]`` contacts with no tags at all, ``rfm_layer not_in [...]``
  contacts not scored yet.
* ``days_since_last_purchase`` counts whole days in the business time zone (a purchase yesterday at any
  hour is 1 day ago, relative to ``now``); contacts who never bought match neither ``gte``, ``lte`` nor
  ``between`` — combine with ``purchase_count eq 0`` in an ``or`` group to include them.
* ``predicted_clv`` matches only contacts with a prediction; ``rfm_layer in [..., "none"]`` also matches
  contacts not scored yet (they are not layered).
* ``acquired_at`` takes dates (``"YYYY-MM-DD"``), each a whole day in the business time zone, compiled to a
  half-open range on the column (``>= 00:00 of the first day``, ``< 00:00 after the last``), which the
  column's index serves.

Adding a field is one call to ``segment_field_register`` with a ``SegmentField``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.metrics import business_timezone, day_start
from analytics.models import ContactScore, Layer
from communities.models import Membership
from contacts.models import Contact, ContactTag

from .models import Segment

MAX_DEPTH = 5
MAX_CONDITIONS = 100
MAX_VALUES = 500  # items in one list value (a bound parameter each)
MAX_ERRORS = 20
MAX_DAYS = 36_500
MAX_AMOUNT = Decimal("999999999999.99")  # max_digits=14, decimal_places=2

GROUP_OPS = ("and", "or")
EMPTY_RULES: dict = {"op": "and", "rules": []}


class RuleValueError(Exception):
    """Raised by a value parser; the message (already translated) says what is wrong with the value."""


@dataclass(frozen=True)
class Operator:
    """One operator of a field: ``parse`` turns the JSON value into the normalised (JSON-storable) value
    or raises ``RuleValueError``; ``build(value, now=...)`` turns the normalised value into a ``Q``."""

    parse: Callable[[Any], Any]
    build: Callable[..., Q]


@dataclass(frozen=True)
class SegmentField:
    """One field of the rule language. ``model`` (an ``"app_label.Model"`` string) makes
    ``segment_rules_validate`` check that the ids in the value exist."""

    label: Any
    operators: dict[str, Operator]
    model: str | None = None
    help_text: Any = ""
    choices: tuple[tuple[str, Any], ...] | None = field(default=None)


SEGMENT_FIELDS: dict[str, SegmentField] = {}


def segment_field_register(name: str, spec: SegmentField) -> None:
    """Add (or replace) a field of the rule language."""
    SEGMENT_FIELDS[name] = spec


# --- Value parsers ---------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A short, safe rendering of user input for an error message."""
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:40] + "…"
        return f"'{text}'"
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:40] + "…"


def _no_value(value: Any) -> None:
    if value is not None:
        raise RuleValueError(_("this operator takes no value; leave it out (got %(value)s)") % {"value": _show(value)})
    return None


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise RuleValueError(_("expected a list, got %(value)s") % {"value": _show(value)})
    if not value:
        raise RuleValueError(_("choose at least one value"))
    if len(value) > MAX_VALUES:
        raise RuleValueError(_("at most %(max)d values, got %(count)d") % {"max": MAX_VALUES, "count": len(value)})
    return value


def _dedupe(items: Iterable) -> list:
    return list(dict.fromkeys(items))


def _id(item: Any) -> int:
    if isinstance(item, str) and item.isascii() and item.isdigit():
        item = int(item)
    if isinstance(item, bool) or not isinstance(item, int) or item < 1:
        raise RuleValueError(_("expected ids (positive integers), got %(value)s") % {"value": _show(item)})
    return item


def _id_list(value: Any) -> list[int]:
    return _dedupe(_id(item) for item in _list(value))


def _choice_list(choices: Iterable[str]) -> Callable[[Any], list[str]]:
    allowed = tuple(choices)

    def parse(value: Any) -> list[str]:
        items = _list(value)
        for item in items:
            if item not in allowed or not isinstance(item, str):
                raise RuleValueError(
                    _("unknown value %(value)s; one of %(choices)s")
                    % {"value": _show(item), "choices": ", ".join(allowed)}
                )
        return _dedupe(items)

    return parse


def _text(value: Any, *, max_length: int = 64) -> str:
    if not isinstance(value, str):
        raise RuleValueError(_("expected text, got %(value)s") % {"value": _show(value)})
    value = value.strip()
    if len(value) > max_length:
        raise RuleValueError(
            _("at most %(max)d characters, got %(value)s") % {"max": max_length, "value": _show(value)}
        )
    return value


def _text_list(value: Any) -> list[str]:
    return _dedupe(_text(item) for item in _list(value))


def _int_range(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RuleValueError(_("expected a whole number, got %(value)s") % {"value": _show(value)})
        if not low <= value <= high:
            raise RuleValueError(
                _("expected a number from %(low)d to %(high)d, got %(value)s")
                % {"low": low, "high": high, "value": _show(value)}
            )
        return value

    return parse


def _amount(value: Any) -> str:
    """A non-negative amount (number or numeric text) → its canonical text with two decimals."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise RuleValueError(_("expected an amount such as 199.00, got %(value)s") % {"value": _show(value)})
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise RuleValueError(_("expected an amount such as 199.00, got %(value)s") % {"value": _show(value)}) from None
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
        raise RuleValueError(
            _("expected an amount from 0 to %(max)s, got %(value)s") % {"max": MAX_AMOUNT, "value": _show(value)}
        )
    return str(amount.quantize(Decimal("0.01")))


def _date(value: Any) -> str:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise RuleValueError(_("expected a date as YYYY-MM-DD, got %(value)s") % {"value": _show(value)})


def _pair(parse_one: Callable[[Any], Any], key: Callable[[Any], Any] = lambda v: v) -> Callable[[Any], list]:
    """``[low, high]`` with ``low <= high``, both ends included."""

    def parse(value: Any) -> list:
        if not isinstance(value, list) or len(value) != 2:
            raise RuleValueError(_("expected [from, to], got %(value)s") % {"value": _show(value)})
        low, high = parse_one(value[0]), parse_one(value[1])
        if key(low) > key(high):
            raise RuleValueError(_("the range is reversed: %(low)s is after %(high)s") % {"low": low, "high": high})
        return [low, high]

    return parse


# --- Q builders -------------------------------------------------------------------------------


def _column_in(column: str) -> Callable[..., Q]:
    return lambda value, **ctx: Q(**{f"{column}__in": value})


def _column_not_in(column: str) -> Callable[..., Q]:
    # ``~Q`` on a nullable column also matches NULL (Django adds the IS NULL test): "not channel 3"
    # includes contacts without a channel.
    return lambda value, **ctx: ~Q(**{f"{column}__in": value})


def _column_is_empty(column: str) -> Callable[..., Q]:
    return lambda value, **ctx: Q(**{f"{column}__isnull": True})


def _column_cmp(column: str, lookup: str, convert: Callable = lambda v: v) -> Callable[..., Q]:
    return lambda value, **ctx: Q(**{f"{column}__{lookup}": convert(value)})


def _column_between(column: str, convert: Callable = lambda v: v) -> Callable[..., Q]:
    return lambda value, **ctx: Q(**{f"{column}__gte": convert(value[0]), f"{column}__lte": convert(value[1])})


def _has_tag(tag_ids: list[int]) -> Q:
    return Q(Exists(ContactTag.objects.filter(contact_id=OuterRef("pk"), tag_id__in=tag_ids)))


def _tags_all(value: list[int], **ctx) -> Q:
    # One EXISTS per tag: each is an index probe on (contact, tag); a join per tag would multiply rows.
    q = Q()
    for tag_id in value:
        q &= _has_tag([tag_id])
    return q


def _member_of(value: list[int], **ctx) -> Q:
    return Q(Exists(Membership.objects.filter(contact_id=OuterRef("pk"), community_id__in=value, left_at__isnull=True)))


def _scores(**filters) -> Q:
    return Q(Exists(ContactScore.objects.filter(contact_id=OuterRef("pk"), **filters)))


def _layer_in(value: list[str], **ctx) -> Q:
    q = _scores(layer__in=value)
    if Layer.NONE in value:
        q |= ~_scores()  # not scored yet = not layered
    return q


def _clv_cmp(lookup: str) -> Callable[..., Q]:
    return lambda value, **ctx: _scores(**{f"predicted_clv__{lookup}": Decimal(value)})


def _clv_between(value: list[str], **ctx) -> Q:
    return _scores(predicted_clv__gte=Decimal(value[0]), predicted_clv__lte=Decimal(value[1]))


def _today(now: dt.datetime) -> dt.date:
    return timezone.localtime(now, business_timezone()).date()


def _bought_at_least_days_ago(days: int, now: dt.datetime) -> Q:
    # Last purchase on or before the day ``days`` days before today: before the start of the day after it.
    return Q(last_purchase_at__lt=day_start(_today(now) - dt.timedelta(days=days - 1)))


def _bought_at_most_days_ago(days: int, now: dt.datetime) -> Q:
    return Q(last_purchase_at__gte=day_start(_today(now) - dt.timedelta(days=days)))


def _days_since_gte(value: int, *, now: dt.datetime) -> Q:
    return _bought_at_least_days_ago(value, now)


def _days_since_lte(value: int, *, now: dt.datetime) -> Q:
    return _bought_at_most_days_ago(value, now)


def _days_since_between(value: list[int], *, now: dt.datetime) -> Q:
    return _bought_at_least_days_ago(value[0], now) & _bought_at_most_days_ago(value[1], now)


def _acquired_from(day: str) -> Q:
    return Q(acquired_at__gte=day_start(dt.date.fromisoformat(day)))


def _acquired_until(day: str) -> Q:
    return Q(acquired_at__lt=day_start(dt.date.fromisoformat(day) + dt.timedelta(days=1)))


_CONSENTED = Q(marketing_consent=True, opted_out_at__isnull=True)
_AMOUNT_PAIR = _pair(_amount, key=Decimal)


def _ids_field(label, column: str, model: str, *, nullable: bool, help_text="") -> SegmentField:
    operators = {
        "in": Operator(_id_list, _column_in(column)),
        "not_in": Operator(_id_list, _column_not_in(column)),
    }
    if nullable:
        operators["is_empty"] = Operator(_no_value, _column_is_empty(column))
    return SegmentField(label=label, operators=operators, model=model, help_text=help_text)


def _choices_field(label, column: str, choices, *, operators=("in", "not_in")) -> SegmentField:
    parse = _choice_list([value for value, _label in choices])
    builders = {"in": _column_in(column), "not_in": _column_not_in(column)}
    return SegmentField(
        label=label,
        operators={op: Operator(parse, builders[op]) for op in operators},
        choices=tuple(choices),
    )


segment_field_register(
    "tags",
    SegmentField(
        label=gettext_lazy("Tags"),
        operators={
            "any": Operator(_id_list, lambda value, **ctx: _has_tag(value)),
            "all": Operator(_id_list, _tags_all),
            "none": Operator(_id_list, lambda value, **ctx: ~_has_tag(value)),
        },
        model="contacts.Tag",
        help_text=gettext_lazy("Tag ids: has any / all / none of them."),
    ),
)
segment_field_register("stage", _choices_field(gettext_lazy("Lifecycle stage"), "stage", Contact.Stage.choices))
segment_field_register(
    "channel",
    _ids_field(gettext_lazy("Acquisition channel"), "channel", "contacts.Channel", nullable=True),
)
segment_field_register(
    "owner",
    _ids_field(gettext_lazy("Owner"), "owner", settings.AUTH_USER_MODEL, nullable=True),
)
segment_field_register(
    "community",
    SegmentField(
        label=gettext_lazy("Community"),
        operators={
            "in": Operator(_id_list, _member_of),
            "not_in": Operator(_id_list, lambda value, **ctx: ~_member_of(value)),
        },
        model="communities.Community",
        help_text=gettext_lazy("Community ids: currently a member of any of them (or of none of them)."),
    ),
)
# The nightly scores of the analytics app (one row per scored contact).
segment_field_register(
    "rfm_layer",
    SegmentField(
        label=gettext_lazy("RFM layer"),
        operators={
            "in": Operator(_choice_list(Layer.values), _layer_in),
            "not_in": Operator(_choice_list(Layer.values), lambda value, **ctx: ~_layer_in(value)),
        },
        choices=tuple(Layer.choices),
        help_text=gettext_lazy("Contacts not scored yet count as “Not layered”."),
    ),
)
segment_field_register(
    "predicted_clv",
    SegmentField(
        label=gettext_lazy("Predicted CLV"),
        operators={
            "gte": Operator(_amount, _clv_cmp("gte")),
            "lte": Operator(_amount, _clv_cmp("lte")),
            "between": Operator(_AMOUNT_PAIR, _clv_between),
        },
        help_text=gettext_lazy("Contacts without a prediction never match."),
    ),
)
segment_field_register(
    "days_since_last_purchase",
    SegmentField(
        label=gettext_lazy("Days since last purchase"),
        operators={
            "gte": Operator(_int_range(0, MAX_DAYS), _days_since_gte),
            "lte": Operator(_int_range(0, MAX_DAYS), _days_since_lte),
            "between": Operator(_pair(_int_range(0, MAX_DAYS)), _days_since_between),
        },
        help_text=gettext_lazy("Whole days in the business time zone. Contacts who never bought never match."),
    ),
)
segment_field_register(
    "purchase_count",
    SegmentField(
        label=gettext_lazy("Purchases"),
        operators={
            "eq": Operator(_int_range(0, 10**9), _column_cmp("purchase_count", "exact")),
            "gte": Operator(_int_range(0, 10**9), _column_cmp("purchase_count", "gte")),
            "lte": Operator(_int_range(0, 10**9), _column_cmp("purchase_count", "lte")),
            "between": Operator(_pair(_int_range(0, 10**9)), _column_between("purchase_count")),
        },
    ),
)
segment_field_register(
    "total_spent",
    SegmentField(
        label=gettext_lazy("Total spent"),
        operators={
            "gte": Operator(_amount, _column_cmp("total_spent", "gte", Decimal)),
            "lte": Operator(_amount, _column_cmp("total_spent", "lte", Decimal)),
            "between": Operator(_AMOUNT_PAIR, _column_between("total_spent", Decimal)),
        },
    ),
)
segment_field_register(
    "region",
    SegmentField(
        label=gettext_lazy("Region"),
        operators={
            "eq": Operator(_text, _column_cmp("region", "exact")),
            "in": Operator(_text_list, _column_in("region")),
            "not_in": Operator(_text_list, _column_not_in("region")),
        },
    ),
)
segment_field_register(
    "gender", _choices_field(gettext_lazy("Gender"), "gender", Contact.Gender.choices, operators=("in",))
)
segment_field_register(
    "birthday_month",
    SegmentField(
        label=gettext_lazy("Birthday month"),
        operators={
            "in": Operator(
                lambda value: _dedupe(_int_range(1, 12)(item) for item in _list(value)),
                lambda value, **ctx: Q(birthday__month__in=value),
            )
        },
    ),
)
segment_field_register(
    "acquired_at",
    SegmentField(
        label=gettext_lazy("Acquired on"),
        operators={
            "gte": Operator(_date, lambda value, **ctx: _acquired_from(value)),
            "lte": Operator(_date, lambda value, **ctx: _acquired_until(value)),
            "between": Operator(
                _pair(_date), lambda value, **ctx: _acquired_from(value[0]) & _acquired_until(value[1])
            ),
        },
        help_text=gettext_lazy("Dates (YYYY-MM-DD), whole days in the business time zone."),
    ),
)
segment_field_register(
    "consent",
    SegmentField(
        label=gettext_lazy("Marketing consent"),
        operators={
            "is_true": Operator(_no_value, lambda value, **ctx: _CONSENTED),
            "is_false": Operator(_no_value, lambda value, **ctx: ~_CONSENTED),
        },
        help_text=gettext_lazy("Consent given and not opted out since."),
    ),
)
segment_field_register(
    "opted_out",
    SegmentField(
        label=gettext_lazy("Opted out"),
        operators={
            "is_true": Operator(_no_value, lambda value, **ctx: Q(opted_out_at__isnull=False)),
            "is_false": Operator(_no_value, lambda value, **ctx: Q(opted_out_at__isnull=True)),
        },
    ),
)


def segment_fields_describe() -> list[dict]:
    """The rule language for editors and API clients: each field with its label, operators and choices."""
    return [
        {
            "field": name,
            "label": str(spec.label),
            "operators": list(spec.operators),
            "choices": [{"value": value, "label": str(label)} for value, label in spec.choices]
            if spec.choices
            else None,
            "help_text": str(spec.help_text),
        }
        for name, spec in SEGMENT_FIELDS.items()
    ]


# --- Parsing and validation -------------------------------------------------------------------


class _Parser:
    """Walks a rule tree once, collecting every problem with its path (``rules[1].rules[0].value``) and
    the ids to check against the database."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.conditions = 0
        self.ids: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))

    def error(self, path: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{path}: {message}" if path else message)

    @staticmethod
    def join(path: str, key: str) -> str:
        return f"{path}.{key}" if path else key

    def root(self, rules: Any) -> dict | None:
        if isinstance(rules, Segment):
            rules = rules.rules
        if rules == {}:
            return dict(EMPTY_RULES, rules=[])
        if not isinstance(rules, dict):
            self.error(
                "rules",
                _('expected a group {"op": "and" or "or", "rules": [...]}, got %(value)s') % {"value": _show(rules)},
            )
            return None
        return self.group(rules, "", depth=1)

    def group(self, node: dict, path: str, *, depth: int) -> dict | None:
        ok = True
        for key in node.keys() - {"op", "rules"}:
            self.error(self.join(path, str(key)), _("unknown key; a group has only “op” and “rules”"))
            ok = False
        op = node.get("op")
        if op not in GROUP_OPS:
            self.error(self.join(path, "op"), _("expected “and” or “or”, got %(value)s") % {"value": _show(op)})
            ok = False
        items = node.get("rules")
        if not isinstance(items, list):
            self.error(self.join(path, "rules"), _("expected a list of rules, got %(value)s") % {"value": _show(items)})
            return None
        if depth > MAX_DEPTH:
            self.error(path, _("groups nest at most %(max)d deep") % {"max": MAX_DEPTH})
            return None
        if not items and path:
            self.error(self.join(path, "rules"), _("an empty group; add a rule or remove the group"))
            ok = False
        children = []
        for index, item in enumerate(items):
            if self.conditions > MAX_CONDITIONS:
                break
            child_path = self.join(path, f"rules[{index}]")
            child = self.item(item, child_path, depth=depth)
            ok = ok and child is not None
            children.append(child)
        if not path and self.conditions > MAX_CONDITIONS:
            self.error("rules", _("too many conditions; at most %(max)d") % {"max": MAX_CONDITIONS})
            return None
        return {"op": op, "rules": children} if ok else None

    def item(self, node: Any, path: str, *, depth: int) -> dict | None:
        if isinstance(node, dict) and ("op" in node or "rules" in node):
            return self.group(node, path, depth=depth + 1)
        if isinstance(node, dict) and "field" in node:
            return self.condition(node, path)
        self.error(
            path,
            _('expected a condition {"field", "operator", "value"} or a group {"op", "rules"}, got %(value)s')
            % {"value": _show(node)},
        )
        return None

    def condition(self, node: dict, path: str) -> dict | None:
        self.conditions += 1
        for key in node.keys() - {"field", "operator", "value"}:
            self.error(
                self.join(path, str(key)), _("unknown key; a condition has only “field”, “operator” and “value”")
            )
            return None
        name = node.get("field")
        spec = SEGMENT_FIELDS.get(name) if isinstance(name, str) else None
        if spec is None:
            self.error(
                self.join(path, "field"),
                _("unknown field %(field)s; one of %(choices)s")
                % {"field": _show(name), "choices": ", ".join(SEGMENT_FIELDS)},
            )
            return None
        operator_name = node.get("operator")
        operator = spec.operators.get(operator_name) if isinstance(operator_name, str) else None
        if operator is None:
            self.error(
                self.join(path, "operator"),
                _("unknown operator %(operator)s for field '%(field)s'; one of %(choices)s")
                % {"operator": _show(operator_name), "field": name, "choices": ", ".join(spec.operators)},
            )
            return None
        try:
            value = operator.parse(node.get("value"))
        except RuleValueError as exc:
            self.error(self.join(path, "value"), str(exc))
            return None
        if spec.model and isinstance(value, list):
            for pk in value:
                self.ids[spec.model][pk].append(self.join(path, "value"))
        return {"field": name, "operator": operator_name, "value": value}

    def check_ids(self) -> None:
        """One query per referenced model: ids that do not exist are errors at every place they appear."""
        for label, places in self.ids.items():
            model = apps.get_model(label)
            existing = set(model._default_manager.filter(pk__in=list(places)).values_list("pk", flat=True))
            missing: dict[str, list[int]] = defaultdict(list)
            for pk, paths in places.items():
                if pk not in existing:
                    for path in paths:
                        missing[path].append(pk)
            for path, pks in missing.items():
                self.error(
                    path,
                    _("unknown %(model)s ids: %(ids)s")
                    % {"model": model._meta.verbose_name, "ids": ", ".join(map(str, sorted(pks)))},
                )


def _parse(rules: Any, *, check_ids: bool) -> dict:
    parser = _Parser()
    normalised = parser.root(rules)
    if check_ids and not parser.errors:
        parser.check_ids()
    if parser.errors or normalised is None:
        raise ValidationError({"rules": parser.errors or [_("invalid rules")]})
    return normalised


def segment_rules_validate(rules: Any) -> dict:
    """The normalised rules (ids deduplicated, amounts as text with two decimals, dates as YYYY-MM-DD,
    no value for valueless operators), or ``ValidationError({"rules": [...]})`` listing every problem
    with its path, e.g. ``rules[1].operator: unknown operator 'contains' for field 'stage'; one of in,
    not_in``. Checks that referenced tags, channels, owners and communities exist (one query each)."""
    return _parse(rules, check_ids=True)


# --- Compilation -------------------------------------------------------------------------------


def _compile(node: dict, now: dt.datetime) -> Q:
    if "field" in node:
        operator = SEGMENT_FIELDS[node["field"]].operators[node["operator"]]
        return operator.build(node["value"], now=now)
    q = Q()
    for child in node["rules"]:
        part = _compile(child, now)
        q = q & part if node["op"] == "and" else q | part
    return q


def segment_q(rules: Any, *, now: dt.datetime | None = None) -> Q:
    """The rules (a dict or a ``Segment``) compiled to a filter on ``Contact``. ``now`` anchors
    ``days_since_last_purchase``. The structure is checked (``ValidationError`` when malformed) but not the
    ids, so no query runs: ids deleted since the segment was saved simply match nothing."""
    normalised = _parse(rules, check_ids=False)
    return _compile(normalised, now or timezone.now())


def segment_contacts(rules_or_segment: Any, *, user=None, now: dt.datetime | None = None) -> QuerySet[Contact]:
    """Live contacts (not merged, not erased) matching the rules, limited to what ``user`` may see
    (``contacts_visible_to``: operators only their own contacts) when a user is given. Without a user
    (system jobs) every live contact is a candidate."""
    base = Contact.objects.live().visible_to(user) if user is not None else Contact.objects.live()
    return base.filter(erased_at__isnull=True).filter(segment_q(rules_or_segment, now=now))


def segment_count(rules_or_segment: Any, *, user=None) -> int:
    """The live count, one ``COUNT(*)`` query (plus the user's permission lookup, cached on the user)."""
    return segment_contacts(rules_or_segment, user=user).count()


# --- Services ----------------------------------------------------------------------------------

SEGMENT_EDITABLE_FIELDS = ("name", "description", "rules")


def _segment_errors(values: dict[str, Any]) -> dict[str, list[str]]:
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
            values["rules"] = segment_rules_validate(values["rules"])
        except ValidationError as exc:
            errors.update(exc.message_dict)
    return errors


def segment_create(*, name: str, rules: dict, description: str = "", created_by) -> Segment:
    """A new saved audience with validated, normalised rules."""
    values = {"name": name, "description": description, "rules": rules}
    errors = _segment_errors(values)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        return Segment.objects.create(created_by=created_by, **values)


def segment_update(*, segment: Segment, **fields: Any) -> Segment:
    """Change a segment's name, description or rules (validated like ``segment_create``)."""
    unknown = sorted(set(fields) - set(SEGMENT_EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({key: [_("This field cannot be set.")] for key in unknown})
    values = dict(fields)
    errors = _segment_errors(values)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        if "rules" in values and values["rules"] != segment.rules:
            # An approved audience must not change under its broadcast (nor widen past what was approved).
            from .models import Broadcast

            in_flight = (
                Broadcast.Status.PENDING_APPROVAL,
                Broadcast.Status.SCHEDULED,
                Broadcast.Status.SENDING,
            )
            names = list(segment.broadcasts.filter(status__in=in_flight).values_list("name", flat=True)[:5])
            if names:
                raise ValidationError(
                    {
                        "rules": [
                            _(
                                "The segment is the audience of broadcasts waiting to be sent (%(names)s): "
                                "cancel them or save the new conditions as a new segment."
                            )
                            % {"names": ", ".join(names)}
                        ]
                    }
                )
        for key, value in values.items():
            setattr(segment, key, value)
        segment.save(update_fields=[*values, "updated_at"])
    return segment
