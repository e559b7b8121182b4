"""Contact exports as background jobs: the web request records what to export (the list's filters) and
a worker writes the file; the user follows its progress and downloads it when it is done.

A job is done with its whole file or failed with a message, never silently short: rows are written to a
``.part`` file next to the final name, which is renamed (atomic on one file system) and attached to the
job only after the last row. The worker walks the contacts by primary key in chunks (no long-open cursor
or transaction), so contacts that change while a large export runs appear as they were when their chunk
was read; the job records how many contacts matched when it started and how many rows were written, and
says so when the two differ."""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from types import SimpleNamespace

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext as _

from scrm.audit import Action, audit

from ..models import Contact, ExportJob
from .rows import contact_csv_chunks

logger = logging.getLogger(__name__)

# Holders see (and export) whole phone numbers; everyone else's files mask them as the list pages do.
FULL_PHONES_PERMISSION = "contacts.export_full_phones"

# A job QUEUED this long lost its enqueue (a crash between commit and ``on_commit``): enqueued again.
REQUEUE_AFTER = dt.timedelta(minutes=10)
# A job RUNNING this long lost its worker: the task's hard time limit is far lower.
STALE_AFTER = dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT) + dt.timedelta(minutes=10)


def _query(params: list) -> QueryDict:
    query = QueryDict(mutable=True)
    for key, value in params:
        query.appendlist(str(key), str(value))
    return query


def export_queryset(*, user, source: str, params: list) -> QuerySet[Contact]:
    """The contacts an export of the list with these filters holds, scoped to ``user`` exactly as the list
    is (the dashboard's list with its report drill-down, or the API's ``/contacts/``). Raises
    ``ValidationError`` when a filter is invalid."""
    from analytics.forms import DrillDownForm

    from ..filtersets import ContactFilterSet
    from ..forms import DashboardContactFilterSet

    query = _query(params)
    request = SimpleNamespace(user=user, GET=query, query_params=query)
    queryset = Contact.objects.live().visible_to(user)
    if source == ExportJob.Source.DASHBOARD:
        if DrillDownForm.present(query):
            drill = DrillDownForm(query, user=user)
            contacts = drill.contacts()
            if contacts is None:
                raise ValidationError(drill.error_text())
            queryset = queryset.filter(pk__in=contacts.values("pk"))
        filterset = DashboardContactFilterSet(query, queryset=queryset, request=request)
    else:
        filterset = ContactFilterSet(query, queryset=queryset, request=request)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    return filterset.qs


def export_job_create(*, user, source: str, params: list) -> ExportJob:
    """Check the filters (a bad one is a ``ValidationError`` now, not a failed job later), record the job
    and hand it to a worker once the row is committed."""
    from contacts.tasks import export_job_process

    if source not in ExportJob.Source.values:
        raise ValueError(f"unknown export source {source!r}")
    pairs = [[str(key), str(value)] for key, value in params if key not in ("page", "cursor", "ordering")]
    export_queryset(user=user, source=source, params=pairs)
    with transaction.atomic():
        job = ExportJob.objects.create(source=source, params=pairs, created_by=user)
        # The filter names only: a search value may be a person's name or number.
        audit(Action.CONTACTS_EXPORTED, actor=user, target=job, detail={"filters": sorted({k for k, _v in pairs})})
        transaction.on_commit(lambda: export_job_process.delay(job.pk))
    return job


def export_job_fail(*, job_id: int, message: str) -> None:
    """Mark a job failed (a finished job stays finished)."""
    ExportJob.objects.filter(pk=job_id, status__in=[ExportJob.Status.QUEUED, ExportJob.Status.RUNNING]).update(
        status=ExportJob.Status.FAILED, message=message, finished_at=timezone.now()
    )


def export_job_run(*, job_id: int) -> ExportJob | None:
    """Write one queued export. The claim (QUEUED → RUNNING in one conditional update) makes a second
    delivery of the task do nothing. Returns the finished job, or ``None`` when there was nothing to claim."""
    now = timezone.now()
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.QUEUED).update(
        status=ExportJob.Status.RUNNING, started_at=now, written_rows=0, message=""
    )
    if not claimed:
        return None
    job = ExportJob.objects.select_related("created_by").get(pk=job_id)
    jobs = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.RUNNING)
    user = job.created_by
    if not user.is_active or not user.has_perm("contacts.export_contacts"):
        export_job_fail(job_id=job_id, message=_("The user who asked for this export may no longer export contacts."))
        return ExportJob.objects.get(pk=job_id)
    try:
        queryset = export_queryset(user=user, source=job.source, params=job.params)
    except ValidationError as exc:
        export_job_fail(job_id=job_id, message=" ".join(exc.messages))
        return ExportJob.objects.get(pk=job_id)
    # Decided now, when the file is written, from the permission the user holds now (like the export
    # permission above): a permission taken away while the job waited in the queue is honoured. The job's
    # message records which it was.
    masked = not user.has_perm(FULL_PHONES_PERMISSION)

    storage = ExportJob._meta.get_field("file").storage
    name = storage.get_available_name(f"exports/{now:%Y/%m}/{uuid.uuid4().hex}.csv")
    path = storage.path(name)
    part = f"{path}.part"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        total = queryset.count()
        jobs.update(total_rows=total)
        written = 0
        with open(part, "w", encoding="utf-8", newline="") as out:
            rows = contact_csv_chunks(queryset, mask_phones=True) if masked else contact_csv_chunks(queryset)
            for text, count in rows:
                out.write(text)
                if count:
                    written += count
                    jobs.update(written_rows=written)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, path)
    except BaseException as exc:
        # The worker's time limit, a lost database, a full disk: the job fails, no partial file is left.
        _remove(part)
        logger.exception("export job %s failed", job_id)
        export_job_fail(
            job_id=job_id,
            message=_("The export stopped before it was complete (%(error)s); no file was kept. Try again.")
            % {"error": type(exc).__name__},
        )
        if isinstance(exc, Exception):
            return ExportJob.objects.get(pk=job_id)
        raise
    message = _("%(rows)s contacts written.") % {"rows": written}
    if masked:
        message += " " + _("Phone numbers are masked (138****5678), as on the list pages.")
    else:
        message += " " + _("Phone numbers are complete.")
    if written != total:
        message += " " + _(
            "%(total)s matched when the export started; the list changed while it was being written."
        ) % {"total": total}
    finished = jobs.update(
        status=ExportJob.Status.DONE, file=name, written_rows=written, message=message, finished_at=timezone.now()
    )
    if not finished:
        # Marked failed meanwhile (by the sweeper): the file is not the job's.
        _remove(path)
    return ExportJob.objects.get(pk=job_id)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError:
        logger.exception("could not delete %s", path)


def _retention() -> dt.timedelta:
    return dt.timedelta(days=settings.SCRM_EXPORT_RETENTION_DAYS)


def export_jobs_sweep(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Periodic clean-up, harmless when run twice at once: re-enqueue jobs whose enqueue was lost, fail the
    ones whose worker was lost, and delete the files of exports finished longer ago than
    ``SCRM_EXPORT_RETENTION_DAYS`` (the job stays, marked expired)."""
    from contacts.tasks import export_job_process

    now = now or timezone.now()
    expired = 0
    storage = ExportJob._meta.get_field("file").storage
    cutoff = now - _retention()
    for pk, name in list(
        ExportJob.objects.filter(status=ExportJob.Status.DONE, finished_at__lt=cutoff).values_list("pk", "file")
    ):
        claimed = ExportJob.objects.filter(pk=pk, status=ExportJob.Status.DONE).update(
            status=ExportJob.Status.EXPIRED,
            file="",
            message=_("The file was deleted %(days)s days after the export.") % {"days": _retention().days},
        )
        if claimed and name:
            try:
                storage.delete(name)
            except OSError:
                logger.exception("could not delete the file %s of export job %s", name, pk)
            expired += 1
    queued = list(
        ExportJob.objects.filter(status=ExportJob.Status.QUEUED, created_at__lt=now - REQUEUE_AFTER).values_list(
            "pk", flat=True
        )
    )
    for pk in queued:
        export_job_process.delay(pk)
    failed = ExportJob.objects.filter(status=ExportJob.Status.RUNNING, started_at__lt=now - STALE_AFTER).update(
        status=ExportJob.Status.FAILED,
        finished_at=now,
        message=_("The export stopped unexpectedly (its worker was lost); no file was kept. Try again."),
    )
    return {"requeued": len(queued), "failed": failed, "expired": expired, "parts_deleted": _parts_delete(now)}


def _parts_delete(now: dt.datetime) -> int:
    """Delete ``.part`` files a killed worker left behind (older than any export may run)."""
    root = os.path.join(settings.MEDIA_ROOT, "exports")
    cutoff = (now - STALE_AFTER).timestamp()
    deleted = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if name.endswith(".part") and os.path.getmtime(path) < cutoff:
                _remove(path)
                deleted += 1
    return deleted


def exports_expire_all(*, reason: str) -> int:
    """Delete the file of every finished export now (PIPL erasure: a file written before a person was
    erased may hold them; exports are short-lived copies, so they all go rather than be rewritten)."""
    storage = ExportJob._meta.get_field("file").storage
    expired = 0
    for pk, name in list(ExportJob.objects.filter(status=ExportJob.Status.DONE).values_list("pk", "file")):
        if ExportJob.objects.filter(pk=pk, status=ExportJob.Status.DONE).update(
            status=ExportJob.Status.EXPIRED, file="", message=reason
        ):
            transaction.on_commit(lambda name=name: name and storage.delete(name))
            expired += 1
    return expired
