from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_roles(sender, **kwargs) -> None:
    from scrm.roles import roles_sync

    roles_sync()


class ScrmConfig(AppConfig):
    name = "scrm"
    verbose_name = "SCRM"

    def ready(self) -> None:
        # Permissions are created by post_migrate, so the role groups are (re)built after them.
        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="scrm.roles_sync")
