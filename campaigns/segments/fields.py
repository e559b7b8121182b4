"""The fields of the segment rule language: each one a ``SegmentField`` in ``SEGMENT_FIELDS`` with its
operators; an operator parses the JSON value (``RuleValueError`` says what is wrong with it) and builds a
``Q`` on ``Contact`` from fixed lookups. What each field means is in the package docstring
(``campaigns.segments``); checking and compiling a whole rule tree is in ``compiler``.

Adding a field is one call to ``segment_field_register`` with a ``SegmentField``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.metrics import business_timezone, day_start
from analytics.models import ContactScore, Layer
from communities.models import Membership
from contacts.models import Contact, ContactTag

MAX_VALUES = 500  # items in one list value (a bound parameter each)
MAX_DAYS = 36_500
MAX_AMOUNT = Decimal("999999999999.99")  # max_digits=14, decimal_places=2


# --- The registry ------------------------------------------------------------------------------


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


def show_value(value: Any) -> str:
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
        raise RuleValueError(
            _("this operator takes no value; leave it out (got %(value)s)") % {"value": show_value(value)}
        )
    return None


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise RuleValueError(_("expected a list, got %(value)s") % {"value": show_value(value)})
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
        raise RuleValueError(_("expected ids (positive integers), got %(value)s") % {"value": show_value(item)})
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
                    % {"value": show_value(item), "choices": ", ".join(allowed)}
                )
        return _dedupe(items)

    return parse


def _text(value: Any, *, max_length: int = 64) -> str:
    if not isinstance(value, str):
        raise RuleValueError(_("expected text, got %(value)s") % {"value": show_value(value)})
    value = value.strip()
    if len(value) > max_length:
        raise RuleValueError(
            _("at most %(max)d characters, got %(value)s") % {"max": max_length, "value": show_value(value)}
        )
    return value


def _text_list(value: Any) -> list[str]:
    return _dedupe(_text(item) for item in _list(value))


def _int_range(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RuleValueError(_("expected a whole number, got %(value)s") % {"value": show_value(value)})
        if not low <= value <= high:
            raise RuleValueError(
                _("expected a number from %(low)d to %(high)d, got %(value)s")
                % {"low": low, "high": high, "value": show_value(value)}
            )
        return value

    return parse


def _amount(value: Any) -> str:
    """A non-negative amount (number or numeric text) → its canonical text with two decimals."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise RuleValueError(_("expected an amount such as 199.00, got %(value)s") % {"value": show_value(value)})
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise RuleValueError(
            _("expected an amount such as 199.00, got %(value)s") % {"value": show_value(value)}
        ) from None
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
        raise RuleValueError(
            _("expected an amount from 0 to %(max)s, got %(value)s") % {"max": MAX_AMOUNT, "value": show_value(value)}
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
    raise RuleValueError(_("expected a date as YYYY-MM-DD, got %(value)s") % {"value": show_value(value)})


def _pair(parse_one: Callable[[Any], Any], key: Callable[[Any], Any] = lambda v: v) -> Callable[[Any], list]:
    """``[low, high]`` with ``low <= high``, both ends included."""

    def parse(value: Any) -> list:
        if not isinstance(value, list) or len(value) != 2:
            raise RuleValueError(_("expected [from, to], got %(value)s") % {"value": show_value(value)})
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


# --- The fields --------------------------------------------------------------------------------

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
