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

from .compiler import (
    EMPTY_RULES,
    GROUP_OPS,
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_ERRORS,
    segment_contacts,
    segment_count,
    segment_q,
    segment_rules_validate,
)
from .fields import (
    MAX_AMOUNT,
    MAX_DAYS,
    MAX_VALUES,
    SEGMENT_FIELDS,
    Operator,
    RuleValueError,
    SegmentField,
    segment_field_register,
    segment_fields_describe,
)

__all__ = [
    "EMPTY_RULES",
    "GROUP_OPS",
    "MAX_AMOUNT",
    "MAX_CONDITIONS",
    "MAX_DAYS",
    "MAX_DEPTH",
    "MAX_ERRORS",
    "MAX_VALUES",
    "SEGMENT_FIELDS",
    "Operator",
    "RuleValueError",
    "SegmentField",
    "segment_contacts",
    "segment_count",
    "segment_field_register",
    "segment_fields_describe",
    "segment_q",
    "segment_rules_validate",
]
