from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DemoConfig(AppConfig):
    """Demo data for every app (no models of its own): the ``seed_demo`` command."""

    name = "demo"
    verbose_name = _("Demo data")
