"""The full WeCom sync, as a resumable run (``SyncRun``).

Phases, each recorded in ``run.position["phase"]`` before the next starts:

1. ``staff``: ``get_follow_user_list`` → ``StaffAccount`` rows (set-based; see ``staff_accounts_sync``).
2. ``tags``: the corp tag groups and tags (``sync_tags.corp_tags_pull``), first, so that the customers'
   tags of linked groups can be put on contacts in the next phase.
3. ``contacts``: ``batch/get_by_user`` over ``position["userids"]``, ``BATCH_USERIDS`` members per call
   from ``position["index"]``, page after page with ``position["cursor"]``. Each page's writes
   (``sync_contacts.contacts_page_apply``) and the run's new position, counters and heartbeat are
   committed together: a crash (even SIGKILL) resumes from the last committed cursor, and a page
   applied twice writes nothing the second time.

WeCom errors by kind: ``busy`` (after the client's own retries) → pause and try the page again, and
after ``BUSY_ROUNDS`` leave the run running (``--resume`` or the next start continues it); ``invalid``
(a member WeCom no longer knows) → recorded in ``run.skipped``, the member dropped from the run, the
others go on; ``fatal``/``token`` → the run is marked failed with WeCom's message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import sync_contacts, sync_tags
from .client import MAX_LIMIT, MAX_USERIDS, WeComClient, WeComError
from .models import StaffAccount, SyncRun

logger = logging.getLogger(__name__)
User = get_user_model()

BATCH_USERIDS = MAX_USERIDS  # members per batch/get_by_user call
PAGE_LIMIT = MAX_LIMIT  # customers per page
BUSY_ROUNDS = 3  # pauses on a page that stays busy before the run is left for later
MAX_SKIPPED = 1000  # entries kept in run.skipped


def sync_run_start(*, user=None) -> SyncRun:
    """A new run, or the one already running (the partial unique constraint ``one_running_sync`` allows
    one): starting twice never starts two."""
    running = SyncRun.objects.filter(status=SyncRun.Status.RUNNING).first()
    if running is not None:
        return running
    try:
        with transaction.atomic():
            return SyncRun.objects.create(started_by=user, position={"phase": "staff"})
    except IntegrityError:
        return SyncRun.objects.get(status=SyncRun.Status.RUNNING)


def sync_run_running() -> SyncRun | None:
    return SyncRun.objects.filter(status=SyncRun.Status.RUNNING).first()


def staff_accounts_sync(*, userids: list[str], client: WeComClient | None = None, run: SyncRun | None = None) -> dict:
    """Mirror WeCom's follow users into ``StaffAccount``: create the missing ones, mark those no longer
    listed ``is_follow_user=False`` (and listed ones True again), link an account without a user to the
    user whose username is its userid (when that user has no account yet; a mapping a manager made is
    never changed), and fetch the names of accounts without one (``user/get``). Writes only what changed."""
    userids = list(dict.fromkeys(u for u in userids if u))
    now = timezone.now()
    accounts = {
        a["userid"]: a for a in StaffAccount.objects.values("id", "userid", "user_id", "name", "is_follow_user")
    }
    created = StaffAccount.objects.bulk_create(
        [StaffAccount(userid=u, synced_at=now) for u in userids if u not in accounts], ignore_conflicts=True
    )
    listed = set(userids)
    relisted = delisted = 0
    # Compared first: a sync of unchanged data issues no write at all.
    if any(not a["is_follow_user"] for u, a in accounts.items() if u in listed):
        relisted = StaffAccount.objects.filter(userid__in=userids, is_follow_user=False).update(
            is_follow_user=True, synced_at=now
        )
    if any(a["is_follow_user"] for u, a in accounts.items() if u not in listed):
        delisted = (
            StaffAccount.objects.filter(is_follow_user=True).exclude(userid__in=userids).update(is_follow_user=False)
        )
    unlinked = StaffAccount.objects.filter(user__isnull=True)
    users = dict(
        User.objects.filter(username__in=unlinked.values("userid"), wecom_account__isnull=True).values_list(
            "username", "pk"
        )
    )
    linked = 0
    for account in unlinked.filter(userid__in=list(users)) if users else ():
        linked += StaffAccount.objects.filter(pk=account.pk, user__isnull=True).update(user_id=users[account.userid])
    named = 0
    if client is not None:
        for account in StaffAccount.objects.filter(userid__in=userids, name=""):
            try:
                name = str(client.user_get(account.userid).get("name") or "")[:64]
            except WeComError as exc:
                if exc.kind != "invalid":
                    raise
                _skip(run, {"userid": account.userid, "errcode": exc.errcode, "error": str(exc)})
                continue
            if name:
                named += StaffAccount.objects.filter(pk=account.pk, name="").update(name=name, synced_at=now)
    return {"created": len(created), "relisted": relisted, "delisted": delisted, "linked": linked, "named": named}


def _skip(run: SyncRun | None, entry: dict) -> None:
    if run is not None and len(run.skipped) < MAX_SKIPPED:
        run.skipped.append(entry)


def _save(run: SyncRun, *fields: str) -> None:
    run.heartbeat_at = timezone.now()
    run.save(update_fields=["position", "heartbeat_at", "skipped", *fields])


def _fail(run: SyncRun, message: str) -> SyncRun:
    run.status = SyncRun.Status.FAILED
    run.error = message[:2000]
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    return run


def sync_run_continue(
    *,
    run: SyncRun,
    client: WeComClient | None = None,
    busy_pause: float = 5.0,
    progress: Callable[[SyncRun], None] | None = None,
) -> SyncRun:
    """Carry ``run`` on from its position to the end (or until WeCom stays busy: the run is then left
    running with the error noted). ``progress`` is called after every committed page."""
    own_client = client is None
    client = client or WeComClient()
    try:
        return _continue(run, client, busy_pause, progress)
    except WeComError as exc:
        if exc.kind == "busy":
            run.error = f"paused, WeCom stayed busy: {exc}"[:2000]
            run.save(update_fields=["error"])
            return run
        logger.warning("WeCom sync %s failed: %s", run.pk, exc)
        return _fail(run, str(exc))
    except Exception as exc:  # a crash: the run stays running, to be resumed from its last page
        SyncRun.objects.filter(pk=run.pk).update(error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    finally:
        if own_client:
            client.close()


def _continue(run: SyncRun, client: WeComClient, busy_pause: float, progress) -> SyncRun:
    run.refresh_from_db()
    if run.status != SyncRun.Status.RUNNING:
        return run
    position = run.position or {}
    if position.get("phase", "staff") == "staff":
        userids = client.follow_user_list()
        staff_accounts_sync(userids=userids, client=client, run=run)
        run.position = {"phase": "tags", "userids": userids, "index": 0, "cursor": "", "batch": BATCH_USERIDS}
        run.staff_count = len(userids)
        _save(run, "staff_count")
    if run.position["phase"] == "tags":
        sync_tags.corp_tags_pull(client=client)
        run.position["phase"] = "contacts"
        _save(run)
    if run.position["phase"] == "contacts":
        _contacts(run, client, busy_pause, progress)
    run.status = SyncRun.Status.DONE
    run.finished_at = timezone.now()
    run.error = ""
    run.position["phase"] = "done"
    _save(run, "status", "finished_at", "error")
    return run


def _page(run: SyncRun, client: WeComClient, batch: list[str], cursor: str, busy_pause: float):
    """The next page of ``batch``; WeCom staying busy pauses and tries again, ``BUSY_ROUNDS`` times."""
    for round_ in range(BUSY_ROUNDS + 1):
        try:
            return client.external_contacts_by_user(batch, cursor=cursor, limit=PAGE_LIMIT)
        except WeComError as exc:
            if exc.kind != "busy" or round_ == BUSY_ROUNDS:
                raise
            logger.info("WeCom busy on batch/get_by_user; pausing %.1f s", busy_pause * 2**round_)
            time.sleep(busy_pause * 2**round_)
    raise AssertionError("unreachable")


def _drop_invalid(run: SyncRun, client: WeComClient, batch: list[str], error: WeComError) -> None:
    """A batch WeCom refused as invalid: find its members WeCom does not know (one call each), record
    and drop them, and restart the batch. Raises ``error`` when every member is fine on its own."""
    bad = []
    for userid in batch:
        try:
            client.external_contacts_by_user([userid], limit=1)
        except WeComError as exc:
            if exc.kind != "invalid":
                raise
            bad.append(userid)
            _skip(run, {"userid": userid, "errcode": exc.errcode, "error": str(exc)})
    if not bad:
        raise error
    run.position["userids"] = [u for u in run.position["userids"] if u not in bad]
    run.position["cursor"] = ""
    _save(run)


def _contacts(run: SyncRun, client: WeComClient, busy_pause: float, progress) -> None:
    context = sync_contacts.SyncContext.load()
    while True:
        position = run.position
        size = int(position.get("batch") or BATCH_USERIDS)
        batch = position["userids"][position["index"] : position["index"] + size]
        if not batch:
            return
        try:
            items, next_cursor = _page(run, client, batch, position.get("cursor") or "", busy_pause)
        except WeComError as exc:
            if exc.kind != "invalid":
                raise
            _drop_invalid(run, client, batch, exc)
            continue
        for attempt in range(3):
            try:
                with transaction.atomic():  # the page's writes and the run's new position, together
                    result = sync_contacts.contacts_page_apply(items=items, context=context)
                    _advance(run, result, batch, next_cursor)
                break
            except IntegrityError:
                # A callback created one of these contacts or follows meanwhile: read the page's rows again.
                run.refresh_from_db()
                if attempt == 2:
                    raise
        if progress is not None:
            progress(run)


def _advance(run: SyncRun, result, batch: list[str], next_cursor: str) -> None:
    position = run.position
    if next_cursor:
        position["cursor"] = next_cursor
    else:
        position["index"] += len(batch)
        position["cursor"] = ""
    for entry in result.skipped:
        _skip(run, entry)
    run.customers_seen += result.customers_seen
    run.contacts_created += result.contacts_created
    run.follows_written += result.follows_written
    _save(run, "customers_seen", "contacts_created", "follows_written")
