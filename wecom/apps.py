from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WecomConfig(AppConfig):
    name = "wecom"
    verbose_name = _("WeCom")

    def ready(self) -> None:
        from . import signals  # noqa: F401 - connects the receivers
