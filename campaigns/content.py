"""The safe placeholder formatter for message templates (the template library's writes, which check
placeholders with it, are ``message_template_create`` and ``message_template_update`` in ``services``).

A body is text with ``{placeholder}`` fields: ``你好 {name}，您的专属券码 {coupon}``. ``{{`` and ``}}`` are
literal braces. A placeholder is a bare name from ``PLACEHOLDERS``; anything else between braces —
attribute or index access (``{name.__class__}``, ``{name[0]}``), positional fields (``{0}``),
conversions (``{name!r}``), format specs (``{name:>10}``), unknown names — is rejected when the template
is saved. Rendering never uses Django templates or ``str.format``: the body is split once into literal
text and names, and rendering joins the literals with the values looked up by name, as plain strings.
A value is never parsed again, so a contact named ``{coupon}`` is just a name.

Where values come from:

* contact placeholders (``name``, ``owner``, ``region``, ``city``, ``first_purchase_date``) from the
  contact row the sender selected (``contact_values``);
* variable placeholders (``VARIABLE_PLACEHOLDERS``: ``coupon``, ``link`` ...) from the broadcast's or
  automation's ``variables``;
* ``product``: from the automation run (a repurchase reminder's product) through ``extra``, or from the
  variables of a broadcast about one product.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.metrics import business_timezone

from .models import MessageTemplate

# Filled from the contact (see contact_values for the row keys each needs).
CONTACT_PLACEHOLDERS: dict[str, Any] = {
    "name": gettext_lazy("The contact's name"),
    "owner": gettext_lazy("The contact's owner (staff member): full name, else username"),
    "region": gettext_lazy("The contact's region"),
    "city": gettext_lazy("The contact's city"),
    "first_purchase_date": gettext_lazy("Date of the contact's first purchase (YYYY-MM-DD)"),
}
# Supplied per broadcast or automation in its "variables" (the same text for every recipient).
VARIABLE_PLACEHOLDER_DESCRIPTIONS: dict[str, Any] = {
    "coupon": gettext_lazy("Coupon code (variable)"),
    "link": gettext_lazy("Link (variable)"),
    "event": gettext_lazy("Event name (variable)"),
    "deadline": gettext_lazy("Deadline (variable)"),
    "gift": gettext_lazy("Gift (variable)"),
    "product": gettext_lazy("Product name: the product due for repurchase in reminders, else a variable"),
}
VARIABLE_PLACEHOLDERS: frozenset[str] = frozenset(VARIABLE_PLACEHOLDER_DESCRIPTIONS)
# What an automation run can supply per delivery (``extra``): a repurchase reminder's product. Callers that
# validate such an automation's template pass ``provided=RUN_PLACEHOLDERS`` to ``template_validate``.
RUN_PLACEHOLDERS: frozenset[str] = frozenset({"product"})

PLACEHOLDERS: dict[str, Any] = {**CONTACT_PLACEHOLDERS, **VARIABLE_PLACEHOLDER_DESCRIPTIONS}

_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
# Literal braces, a brace pair with no brace inside (a candidate placeholder), or a stray brace.
_TOKEN = re.compile(r"\{\{|\}\}|\{[^{}]*\}|[{}]")
_SNIPPET = 30


def _snippet(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"


def _body_error(message: str, field: str = "body") -> ValidationError:
    return ValidationError({field: [message]})


@functools.lru_cache(maxsize=512)
def _parse(body: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(literals, names)`` with ``len(literals) == len(names) + 1``: the body is
    ``literals[0] + value(names[0]) + literals[1] + ...``. Raises ``ValidationError`` on bad syntax (an
    exception is not cached, so a bad body is parsed again each time — it is never sent)."""
    literals: list[str] = []
    names: list[str] = []
    text: list[str] = []
    position = 0
    for match in _TOKEN.finditer(body):
        text.append(body[position : match.start()])
        position = match.end()
        token = match.group()
        if token == "{{":
            text.append("{")
        elif token == "}}":
            text.append("}")
        elif token == "{":
            raise _body_error(
                _("Unclosed or nested brace in “%(text)s”: close the placeholder with }, or write {{ for a literal {.")
                % {"text": _snippet(body[match.start() :])}
            )
        elif token == "}":
            raise _body_error(
                _("Unmatched } in “%(text)s”: write }} for a literal }.")
                % {"text": _snippet(body[max(0, match.start() - _SNIPPET + 1) : match.end()])}
            )
        else:
            name = token[1:-1]
            if not _NAME.match(name):
                raise _body_error(
                    _(
                        "Invalid placeholder %(placeholder)s: a placeholder is a plain name such as {name}, "
                        "with no dots, brackets, numbers first, ! or :; write {{ and }} for literal braces."
                    )
                    % {"placeholder": _snippet(token)}
                )
            literals.append("".join(text))
            text = []
            names.append(name)
    text.append(body[position:])
    literals.append("".join(text))
    return tuple(literals), tuple(names)


def template_placeholders(body: str) -> set[str]:
    """The placeholder names a body uses (known or not); ``ValidationError({"body": [...]})`` when its
    syntax is bad."""
    if not isinstance(body, str):
        raise _body_error(_("The body must be text."))
    return set(_parse(body)[1])


def _variable_errors(variables: Any) -> list[str]:
    if not isinstance(variables, Mapping):
        return [_("Variables are a mapping of names to text.")]
    errors = []
    for key, value in variables.items():
        if key not in VARIABLE_PLACEHOLDERS:
            errors.append(
                _("Unknown variable “%(name)s”; one of %(choices)s.")
                % {"name": _snippet(str(key)), "choices": ", ".join(sorted(VARIABLE_PLACEHOLDERS))}
            )
        elif isinstance(value, bool) or not isinstance(value, str | int | float):
            errors.append(_("The variable “%(name)s” must be text.") % {"name": key})
    return errors


def template_validate(
    body: str,
    *,
    variables: Mapping[str, Any] | None = None,
    require_variables: bool = False,
    provided: Iterable[str] = (),
    field: str = "body",
) -> None:
    """Checks a body: syntax, every placeholder known (``{field: ["Unknown placeholder {foo}; known:
    ..."]}``), the variables' names and values when given, and — with ``require_variables`` — that every
    variable placeholder the body uses has a non-empty value in ``variables`` (``{"variables": [...]}``).
    ``provided`` names placeholders the caller fills at run time (``RUN_PLACEHOLDERS`` for a repurchase
    reminder), exempt from that requirement. ``field`` names the key of body errors (``"subject"`` for a
    subject line)."""
    try:
        names = template_placeholders(body)
    except ValidationError as exc:
        raise ValidationError({field: exc.message_dict["body"]}) from None
    errors: dict[str, list[str]] = {}
    unknown = sorted(names - PLACEHOLDERS.keys())
    if unknown:
        known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
        errors[field] = [
            _("Unknown placeholder {%(name)s}; known: %(known)s.") % {"name": name, "known": known} for name in unknown
        ]
    if variables is not None:
        variable_errors = _variable_errors(variables)
        if variable_errors:
            errors["variables"] = variable_errors
    if require_variables and "variables" not in errors:
        given = variables or {}
        exempt = set(provided)
        missing = sorted(
            name
            for name in names & VARIABLE_PLACEHOLDERS
            if name not in exempt and str(given.get(name, "")).strip() == ""
        )
        if missing:
            errors["variables"] = [
                _("The template uses {%(name)s}: give it a value in the variables.") % {"name": name}
                for name in missing
            ]
    if errors:
        raise ValidationError(errors)


def template_render(body: str, *, values: Mapping[str, str]) -> str:
    """The body with each placeholder replaced by its value (missing or ``None`` → empty string). The parse
    is cached per body, so rendering a million messages parses the template once."""
    literals, names = _parse(body)
    if not names:
        return literals[0]
    parts = [literals[0]]
    get = values.get
    for name, literal in zip(names, literals[1:], strict=True):
        value = get(name)
        parts.append(value if isinstance(value, str) else ("" if value is None else str(value)))
        parts.append(literal)
    return "".join(parts)


def _owner_name(row: Mapping[str, Any]) -> str:
    if "owner_name" in row:
        return row["owner_name"] or ""
    full = f"{row.get('owner__last_name') or ''}{row.get('owner__first_name') or ''}".strip()
    return full or (row.get("owner__username") or "")


def _local_date(value: Any) -> str:
    if isinstance(value, dt.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value, business_timezone())
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return "" if value is None else str(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def contact_values(
    contact_row: Mapping[str, Any], *, variables: Mapping[str, Any] | None, extra: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The placeholder values for one recipient, all strings.

    ``contact_row`` is the dict the sender selected with ``.values(...)``; the keys read are ``name``,
    ``region``, ``city``, ``first_purchase_at`` (datetime, shown as the date in the business time zone),
    and ``owner_name`` — or, when ``owner_name`` is absent, ``owner__last_name``, ``owner__first_name``
    and ``owner__username``. Missing keys give empty values.

    ``variables`` (the broadcast's or automation's) fill the ``VARIABLE_PLACEHOLDERS`` (other keys are
    ignored); ``extra`` (per run: ``{"product": "..."}``) fills any placeholder; a non-empty extra value
    wins over both."""
    values = {
        "name": _text(contact_row.get("name")),
        "owner": _owner_name(contact_row),
        "region": _text(contact_row.get("region")),
        "city": _text(contact_row.get("city")),
        "first_purchase_date": _local_date(contact_row.get("first_purchase_at")),
    }
    for key, value in (variables or {}).items():
        if key in VARIABLE_PLACEHOLDERS:
            values[key] = _text(value)
    for key, value in (extra or {}).items():
        if key in PLACEHOLDERS and (value not in (None, "") or key not in values):
            values[key] = _text(value)
    return values


def template_preview(template: MessageTemplate | str, contact, *, variables: Mapping[str, Any] | None = None) -> str:
    """The body as ``contact`` (a ``Contact``) would receive it with these variables: the editor's
    "preview for this contact". Raises ``ValidationError`` when the body's syntax is bad."""
    body = template.body if isinstance(template, MessageTemplate) else template
    owner = contact.owner
    row = {
        "name": contact.name,
        "region": contact.region,
        "city": contact.city,
        "first_purchase_at": contact.first_purchase_at,
        "owner__last_name": owner.last_name if owner else "",
        "owner__first_name": owner.first_name if owner else "",
        "owner__username": owner.get_username() if owner else "",
    }
    return template_render(body, values=contact_values(row, variables=variables or {}))
