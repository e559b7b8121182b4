"""Checking and compiling a segment's rule tree: ``segment_rules_validate`` (every problem with its path,
or the normalised rules), ``segment_q`` (the tree as one ``Q`` on ``Contact``), and the live contacts and
the count it matches. The fields and their operators are in ``fields``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import Contact
from scrm import limits

from ..models import Segment
from .fields import SEGMENT_FIELDS, RuleValueError, show_value

MAX_DEPTH = 5
MAX_CONDITIONS = 100
MAX_ERRORS = 20

GROUP_OPS = ("and", "or")
EMPTY_RULES: dict = {"op": "and", "rules": []}


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
                _('expected a group {"op": "and" or "or", "rules": [...]}, got %(value)s')
                % {"value": show_value(rules)},
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
            self.error(self.join(path, "op"), _("expected “and” or “or”, got %(value)s") % {"value": show_value(op)})
            ok = False
        items = node.get("rules")
        if not isinstance(items, list):
            self.error(
                self.join(path, "rules"), _("expected a list of rules, got %(value)s") % {"value": show_value(items)}
            )
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
            % {"value": show_value(node)},
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
                % {"field": show_value(name), "choices": ", ".join(SEGMENT_FIELDS)},
            )
            return None
        operator_name = node.get("operator")
        operator = spec.operators.get(operator_name) if isinstance(operator_name, str) else None
        if operator is None:
            self.error(
                self.join(path, "operator"),
                _("unknown operator %(operator)s for field '%(field)s'; one of %(choices)s")
                % {"operator": show_value(operator_name), "field": name, "choices": ", ".join(spec.operators)},
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

    def check_ids(self, user=None) -> None:
        """One query per referenced model: ids that do not exist — or, with ``user``, that the user may not
        see (another operator's community) — are errors at every place they appear, with the same words."""
        for label, places in self.ids.items():
            model = apps.get_model(label)
            rows = model._default_manager.all()
            if user is not None and hasattr(rows, "visible_to"):
                rows = rows.visible_to(user)
            existing = set(rows.filter(pk__in=list(places)).values_list("pk", flat=True))
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


def _parse(rules: Any, *, check_ids: bool, user=None) -> dict:
    if isinstance(rules, dict | list):
        try:
            # Before anything reads the tree: no NUL (PostgreSQL refuses it), no stack-deep nesting, no
            # megabytes. A group is two levels ({"rules": [...]}), so the depth allows the parser's own
            # nesting limit to answer first, with its clearer message.
            limits.json_check(rules, max_depth=2 * limits.JSON_MAX_DEPTH)
        except ValidationError as exc:
            raise ValidationError({"rules": exc.messages}) from None
    parser = _Parser()
    normalised = parser.root(rules)
    if check_ids and not parser.errors:
        parser.check_ids(user)
    if parser.errors or normalised is None:
        raise ValidationError({"rules": parser.errors or [_("invalid rules")]})
    return normalised


def segment_rules_validate(rules: Any, *, user=None) -> dict:
    """The normalised rules (ids deduplicated, amounts as text with two decimals, dates as YYYY-MM-DD,
    no value for valueless operators), or ``ValidationError({"rules": [...]})`` listing every problem
    with its path, e.g. ``rules[1].operator: unknown operator 'contains' for field 'stage'; one of in,
    not_in``. Checks that referenced tags, channels, owners and communities exist (one query each) and,
    given ``user``, that they are ones the user may see (an operator naming another's community reads
    "unknown", as for an id that does not exist)."""
    return _parse(rules, check_ids=True, user=user)


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
