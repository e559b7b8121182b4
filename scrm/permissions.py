"""API permissions: Django model permissions for every verb, reads included.

Object-level scoping (an operator sees only their own contacts) is done by the querysets from the
selectors, so a guessed id is simply not found (404) rather than forbidden.
"""

from __future__ import annotations

from rest_framework.permissions import DjangoModelPermissions


class ModelPermissions(DjangoModelPermissions):
    """Like DRF's, but reading needs the ``view`` permission, and an action may name the permissions it
    needs in the view's ``action_permissions`` mapping (action name → permission codenames)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        required = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if required is not None:
            return request.user.has_perms(required)
        return super().has_permission(request, view)
