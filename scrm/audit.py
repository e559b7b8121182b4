"""The audit trail: who viewed, exported, changed, merged, handed over or erased what, and every sign-in.

Two tables, one context:

- ``scrm.AuditEvent`` (ours): events that are not a row's field changes — sign-ins and failures, views
  and exports of contacts, imports, merges, handovers, consent changes, erasures, API tokens. Written with
  ``audit(...)``; append-only; holds no customer's personal data (contacts are named by id).
- django-auditlog's ``LogEntry``: the field-by-field changes of the models listed in
  ``settings.AUDITLOG_INCLUDE_TRACKING_MODELS`` (contacts, tags, channels, campaigns, live codes,
  users, tokens), with who made them. It does store old and new values, so an erasure scrubs the
  person's entries (``logentries_scrub``).

``AuditMiddleware`` (django-auditlog's middleware, with the client address taken from ``REMOTE_ADDR``, or
behind the proxy (``BEHIND_PROXY``) the last ``X-Forwarded-For`` entry, the one the proxy appended) puts the signed-in user, the address and the way in
("web" or "api") into a context both use; API token authentication adds the token's user to it, since
DRF authenticates after the middleware ran. Outside a request (workers, commands) ``via`` is empty and
the actor is whoever the service was told acts.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from auditlog.context import auditlog_value
from auditlog.middleware import AuditlogMiddleware
from django.conf import settings

from scrm.models import AuditEvent

Action = AuditEvent.Action


class AuditMiddleware(AuditlogMiddleware):
    @staticmethod
    def _get_remote_addr(request):
        forwarded = request.headers.get("X-Forwarded-For", "")
        if getattr(settings, "AUDIT_TRUST_X_FORWARDED_FOR", False) and forwarded:
            # The address our proxy appended is the last; earlier ones come from the client, unchecked.
            address = forwarded.split(",")[-1].strip()
        else:
            address = request.META.get("REMOTE_ADDR") or ""
        try:
            return str(ipaddress.ip_address(address))
        except ValueError:
            return None

    def get_extra_data(self, request):
        data = super().get_extra_data(request)
        data["via"] = "api" if request.path.startswith("/api/") else "web"
        return data

    def __call__(self, request):
        try:
            return super().__call__(request)
        finally:
            # django-auditlog leaves its context set after the request: nothing that runs later in this
            # thread (the next test, a shell) may be taken for part of the request.
            auditlog_value.set({})


def _context() -> dict:
    try:
        return auditlog_value.get()
    except LookupError:
        return {}


def audit_context_actor(user) -> None:
    """Name the user a request acts for once it is known (DRF token authentication)."""
    context = _context()
    if context and context.get("actor") is None:
        context["actor"] = user


def audit(
    action: str,
    *,
    actor=None,
    actor_name: str = "",
    target=None,
    target_type: str = "",
    target_id: Any = "",
    count: int | None = None,
    detail: dict | None = None,
) -> AuditEvent:
    """Record one event. ``target`` is a model instance (its label and pk are kept, nothing else);
    ``detail`` must hold no personal data of customers (ids, counts, filters, kinds)."""
    context = _context()
    if actor is None:
        actor = context.get("actor")
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if target is not None:
        target_type = target._meta.label_lower
        target_id = target.pk
    return AuditEvent.objects.create(
        actor=actor,
        actor_name=(actor.get_username() if actor is not None else actor_name)[:150],
        action=action,
        target_type=target_type,
        target_id=str(target_id or "")[:64],
        count=count,
        detail=detail or {},
        ip=context.get("remote_addr"),
        via=context.get("via", ""),
    )


def logentries_scrub(*, model, pk) -> int:
    """Replace the recorded values of one row's django-auditlog entries with a placeholder (PIPL erasure):
    who changed which field and when stay; what it said goes."""
    from auditlog.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    entries = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model), object_pk=str(pk))
    scrubbed = 0
    for entry in entries.only("pk", "changes"):
        changes = entry.changes if isinstance(entry.changes, dict) else {}
        erased = {field: ["(erased)", "(erased)"] for field in changes}
        scrubbed += LogEntry.objects.filter(pk=entry.pk).update(
            changes=erased,
            changes_text="",
            object_repr=f"{model._meta.verbose_name} #{pk}",
            serialized_data=None,
            additional_data=None,
        )
    return scrubbed
