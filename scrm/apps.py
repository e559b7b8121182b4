from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_roles(sender, **kwargs) -> None:
    from scrm.roles import roles_sync

    roles_sync()


def _signed_in(sender, request, user, **kwargs) -> None:
    from scrm.audit import Action, audit

    audit(Action.LOGIN, actor=user)


def _signed_out(sender, request, user, **kwargs) -> None:
    from scrm.audit import Action, audit

    if user is not None:
        audit(Action.LOGOUT, actor=user)


def _sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    from scrm.audit import Action, audit

    # Only the user name tried is kept (Django already removed the password from ``credentials``).
    audit(Action.LOGIN_FAILED, actor_name=str(credentials.get("username", ""))[:150])


def _locked_out(sender, request, username, ip_address, **kwargs) -> None:
    from scrm.audit import Action, audit

    audit(Action.LOCKED_OUT, actor_name=str(username or "")[:150], detail={"ip": ip_address})


class ScrmConfig(AppConfig):
    name = "scrm"
    verbose_name = "SCRM"

    def ready(self) -> None:
        from scrm import openapi  # noqa: F401 - registers the OpenAPI schema extensions

        # Permissions are created by post_migrate, so the role groups are (re)built after them.
        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="scrm.roles_sync")
        # The audit trail records every sign-in, sign-out, failed sign-in and lockout.
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

        user_logged_in.connect(_signed_in, dispatch_uid="scrm.audit.login")
        user_logged_out.connect(_signed_out, dispatch_uid="scrm.audit.logout")
        user_login_failed.connect(_sign_in_failed, dispatch_uid="scrm.audit.login_failed")
        user_locked_out.connect(_locked_out, dispatch_uid="scrm.audit.locked_out")
