from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    """Reaching people: segments, templates, broadcasts, automations (built on top of contacts)."""

    name = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self) -> None:
        from . import signals  # noqa: F401 - connects the receivers
