"""The WeCom connection's writes that are not live codes (``livecodes``), events (``events``) or the
sync (``sync``): the staff mapping, and queueing a sync."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from contacts.forms import user_label

from .models import StaffAccount, SyncRun
from .sync import sync_run_start

STALE_AFTER = dt.timedelta(minutes=10)  # a running sync without a heartbeat for this long has stopped


def staff_account_user_set(*, staff_account: StaffAccount, user) -> StaffAccount:
    """Map a WeCom member to a Django user (or to nobody with ``user=None``). One user works as one member:
    a user already mapped to another member is refused, naming that member."""
    if user is not None and not user.is_active:
        raise ValidationError({"user": [gettext("Choose an active user.")]})
    with transaction.atomic():
        account = StaffAccount.objects.select_for_update().get(pk=staff_account.pk)
        if user is not None:
            taken = StaffAccount.objects.filter(user=user).exclude(pk=account.pk).first()
            if taken is not None:
                raise ValidationError(
                    {
                        "user": [
                            gettext("%(user)s already works as the WeCom member %(account)s.")
                            % {"user": user_label(user), "account": taken}
                        ]
                    }
                )
        account.user = user
        try:
            with transaction.atomic():
                account.save(update_fields=["user"])
        except IntegrityError:  # another manager mapped this user to another member a moment ago
            raise ValidationError({"user": [gettext("This user was just mapped to another WeCom member.")]}) from None
    return account


def sync_enqueue(*, user) -> tuple[bool, str]:
    """Start a full sync (``wecom.sync.sync_run_start``) and queue the task that runs it, after commit.
    A run that is already running and alive is left alone; one whose worker went quiet for
    ``STALE_AFTER`` is queued again, which resumes it from its last committed page. Returns (queued,
    message for the user)."""
    from .tasks import sync_run

    running = SyncRun.objects.filter(status=SyncRun.Status.RUNNING).first()
    if running is not None:
        last_sign = running.heartbeat_at or running.started_at
        if last_sign and timezone.now() - last_sign < STALE_AFTER:
            return False, _("A sync is already running.")
        run, message = running, _("The sync that had stopped is queued again: it resumes where it was.")
    else:
        run = sync_run_start(user=user if getattr(user, "is_authenticated", False) else None)
        message = _("Sync queued: it reads every member's customers and the corp tags.")
    run_id = run.pk
    transaction.on_commit(lambda: sync_run.delay(run_id))
    return True, message
