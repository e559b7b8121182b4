"""Who may see a row, declared once per model.

Every model whose rows belong to someone gets a QuerySet built on ``RestrictedQuerySet`` and says, in
two class attributes, how a row reaches its owner and which permission lets a user see every row::

    class PurchaseQuerySet(RestrictedQuerySet):
        owner_path = "contact__owner"
        see_all_permissions = ("contacts.view_all_contacts",)

``Purchase.objects.visible_to(user)`` is then the only way the project asks "which purchases may this
user see": selectors, analytics, the API, the pages, exports and the checks on objects named in a
request body all start from it. A model whose ownership is not one path (a community is run by its
owner *and* its admins) overrides ``owned_by``. Anonymous users see nothing.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q


class RestrictedQuerySet(models.QuerySet):
    #: The relation from a row to the user who owns it (``"owner"``, ``"contact__owner"``); ``None`` for
    #: rows shared by everyone who may read the model at all (segments, templates).
    owner_path: str | None = None
    #: Holding any one of these permissions lets a user see every row.
    see_all_permissions: tuple[str, ...] = ()

    def sees_all(self, user: Any) -> bool:
        """Whether ``user`` sees every row of this model (managers, integrators)."""
        if user is None or not user.is_authenticated:
            return False
        if self.owner_path is None and type(self).owned_by is RestrictedQuerySet.owned_by:
            return True
        return any(user.has_perm(permission) for permission in self.see_all_permissions)

    def owned_by(self, user: Any, prefix: str = "") -> Q:
        """The rows ``user`` owns, as a condition; ``prefix`` reaches this model through a relation
        (``"contact__"`` from purchases). The default follows ``owner_path``."""
        if self.owner_path is None:
            return Q()
        return Q(**{f"{prefix}{self.owner_path}": user})

    def visibility_q(self, user: Any, prefix: str = "") -> Q | None:
        """``visible_to`` as a condition (``None``: every row), for queries that reach this model through
        a relation and would rather not join it twice."""
        if user is None or not user.is_authenticated:
            return Q(pk__in=[])
        if self.sees_all(user):
            return None
        return self.owned_by(user, prefix)

    def visible_to(self, user: Any) -> RestrictedQuerySet:
        """The rows ``user`` may see: none for anonymous users, all for those who see all, else their own."""
        if user is None or not user.is_authenticated:
            return self.none()
        if self.sees_all(user):
            return self
        return self.filter(self.owned_by(user))
