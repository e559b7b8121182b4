"""Saved views of the contact list (我的视图): the model. The rules are in ``contacts.saved_views``."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from scrm.querysets import RestrictedQuerySet


class SavedViewQuerySet(RestrictedQuerySet):
    """A saved view is its owner's; one that a manager shared is read and applied by the whole team (the
    filters then run on each user's own contacts). Only the owner changes or deletes a view."""

    owner_path = "owner"

    def owned_by(self, user, prefix: str = "") -> Q:
        return Q(**{f"{prefix}owner": user}) | Q(**{f"{prefix}shared": True})


class SavedView(models.Model):
    """One named set of contact list filters (我的视图), kept as the list's query string. The query is
    checked by running the list's filter set on it when the view is saved or changed."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views", verbose_name=_("owner")
    )
    name = models.CharField(_("name"), max_length=60)
    query = models.CharField(_("filters"), max_length=2000)
    shared = models.BooleanField(_("shared with the team"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = SavedViewQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("saved view")
        verbose_name_plural = _("saved views")
        permissions = [("share_savedview", _("Can share saved contact views with the team"))]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="saved_view_name_per_owner")]

    def __str__(self) -> str:
        return self.name
