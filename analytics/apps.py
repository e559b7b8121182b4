from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnalyticsConfig(AppConfig):
    """The numbers managers steer by: CAC, CLV, ROI, cohorts, funnel."""

    name = "analytics"
    verbose_name = _("Analytics")
