"""The entry points: ``import_csv`` imports a file right away (management commands, and the workers);
``import_job_create`` queues an uploaded file as an ImportJob that a Celery worker runs
(``import_job_run``), and ``import_jobs_sweep`` picks up jobs that lost their enqueue or their worker."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Q, Value
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.translation import gettext as _

from scrm.audit import Action, audit

from ..models import ImportJob
from .contacts import _ContactImporter
from .driver import BATCH_SIZE, ImportReport, _Run
from .purchases import _PurchaseImporter
from .reading import ImportFileError, _CsvSource
from .writing import _is_postgres

logger = logging.getLogger(__package__)  # "contacts.imports", as before the split

# A job still RUNNING this long after it was created lost its worker (the task time limit is far lower).
STALE_AFTER = dt.timedelta(hours=24)


def import_csv(
    *,
    kind: str,
    fileobj: IO[bytes],
    actor=None,
    batch_size: int = BATCH_SIZE,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[ImportReport], None] | None = None,
    on_error: Callable[[dict], None] | None = None,
    use_copy: bool | None = None,
) -> ImportReport:
    """Import a CSV of contacts (``kind="contacts"``) or purchases (``kind="purchases"``) from a binary,
    seekable file. ``actor`` is the user the import acts for (operators import into their own book);
    ``None`` means unrestricted. Raises ``ImportFileError`` when the file as a whole is unusable.

    ``on_start(estimated_rows)`` is called once the file was scanned, ``on_progress(report)`` after each
    committed batch and ``on_error(error)`` for every problem, in line order. ``use_copy`` forces (or
    forbids) the PostgreSQL ``COPY`` path; by default it is used on PostgreSQL."""
    importer_class = {ImportJob.Kind.CONTACTS: _ContactImporter, ImportJob.Kind.PURCHASES: _PurchaseImporter}.get(kind)
    if importer_class is None:
        raise ValueError(f"unknown import kind {kind!r}")
    if use_copy is None:
        use_copy = _is_postgres()
    elif use_copy and not _is_postgres():
        raise ValueError("the COPY path needs PostgreSQL")
    source = _CsvSource(fileobj)
    try:
        importer = importer_class(header=source.header, actor=actor, use_copy=use_copy)
        report = ImportReport(kind=kind, total_rows=source.row_count, encoding=source.encoding)
        if on_start:
            on_start(report.total_rows)
        _Run(source=source, importer=importer, report=report, on_progress=on_progress, on_error=on_error).run(
            batch_size
        )
    finally:
        source.detach()  # the caller's file stays open (and theirs to close)
    return report


def _estimate_rows(upload) -> int:
    lines = sum(chunk.count(b"\n") for chunk in upload.chunks())
    return max(0, lines - 1)


def import_job_create(*, kind: str, upload, actor) -> ImportJob:
    """Store an uploaded CSV as a queued import and hand it to a worker once the job row is committed."""
    from contacts.tasks import import_job_process

    if kind not in ImportJob.Kind.values:
        raise ValidationError({"kind": [_("Choose one of: %(kinds)s.") % {"kinds": ", ".join(ImportJob.Kind.values)}]})
    if upload is None or not upload.size:
        raise ValidationError({"file": [_("The file is empty.")]})
    job = ImportJob(
        kind=kind,
        filename=(upload.name or "").replace("\\", "/").rsplit("/", 1)[-1][:200],
        created_by=actor,
        total_rows=_estimate_rows(upload),
    )
    # The stored name is ours: the user's file name is only shown, never used as a path.
    job.file.save(f"{uuid.uuid4().hex}.csv", upload, save=False)
    with transaction.atomic():
        job.save()
        audit(Action.CONTACTS_IMPORTED, actor=actor, target=job, detail={"kind": kind})
        transaction.on_commit(lambda: import_job_process.delay(job.pk))
    return job


def _summary(report: ImportReport) -> str:
    message = _(
        "%(rows)s rows: %(created)s created, %(updated)s updated, %(unchanged)s unchanged, %(rejected)s rejected."
    ) % {
        "rows": report.processed_rows,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": report.error_count,
    }
    if len({error["line"] for error in report.errors}) < report.error_count:
        message += " " + _("Only the first %(count)s problems are listed.") % {"count": len(report.errors)}
    return message


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Run a queued import. Claims the job first (QUEUED → RUNNING in one conditional update): a second
    delivery of the same task finds nothing to claim and does nothing. Returns the finished job, or
    ``None`` when there was nothing to claim."""
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING, processed_rows=0, message=""
    )
    if not claimed:
        return None
    job = ImportJob.objects.select_related("created_by").get(pk=job_id)
    jobs = ImportJob.objects.filter(pk=job_id)
    actor = job.created_by
    if actor is None or not actor.is_active:
        return import_job_fail(
            job_id=job_id, message=_("The user who uploaded this file no longer exists or is inactive.")
        )

    def progress(report: ImportReport) -> None:
        jobs.update(
            processed_rows=report.processed_rows,
            created_count=report.created,
            updated_count=report.updated,
            unchanged_count=report.unchanged,
            error_count=report.error_count,
        )

    try:
        with job.file.open("rb") as fileobj:
            report = import_csv(
                kind=job.kind,
                fileobj=fileobj,
                actor=actor,
                on_start=lambda total: jobs.update(total_rows=total),
                on_progress=progress,
            )
    except ImportFileError as exc:
        return import_job_fail(job_id=job_id, message=str(exc))
    except (OperationalError, InterfaceError):
        # A lost database connection: give the job back so that the task's retry can claim it again.
        # Running it again is safe, rows already committed come out unchanged.
        if not connection.in_atomic_block:
            connection.close()
        try:
            jobs.filter(status=ImportJob.Status.RUNNING).update(status=ImportJob.Status.QUEUED)
        except (OperationalError, InterfaceError):
            logger.exception("could not give import job %s back to the queue", job_id)
        raise
    except Exception:
        logger.exception("import job %s failed", job_id)
        import_job_fail(
            job_id=job_id,
            message=_(
                "The import stopped because of an internal error. Rows of the batches already committed stay imported."
            ),
        )
        raise
    jobs.update(
        status=ImportJob.Status.DONE,
        total_rows=report.total_rows,
        processed_rows=report.processed_rows,
        created_count=report.created,
        updated_count=report.updated,
        unchanged_count=report.unchanged,
        error_count=report.error_count,
        errors=report.errors,
        message=_summary(report),
        finished_at=timezone.now(),
    )
    return ImportJob.objects.get(pk=job_id)


def import_job_fail(*, job_id: int, message: str) -> ImportJob | None:
    """Mark a job failed with a message for its owner (a finished job stays finished)."""
    ImportJob.objects.filter(pk=job_id).exclude(status=ImportJob.Status.DONE).update(
        status=ImportJob.Status.FAILED, message=message, finished_at=timezone.now()
    )
    return ImportJob.objects.filter(pk=job_id).first()


def _retention() -> dt.timedelta | None:
    """How long a finished job keeps its uploaded file (``SCRM_IMPORT_RETENTION_DAYS``, default 30;
    ``None`` keeps files forever)."""
    days = getattr(settings, "SCRM_IMPORT_RETENTION_DAYS", 30)
    return None if days is None else dt.timedelta(days=days)


def import_job_files_delete(*, now: dt.datetime | None = None, all_finished: bool = False) -> int:
    """Delete the uploaded files of jobs finished longer ago than the retention period, with the original
    cells of the rejected rows; the job keeps its counts and its report (line, field, message) and says
    that the file was deleted.
    Harmless when run twice at once: a conditional update claims each file before it is deleted."""
    retention = _retention()
    if all_finished:
        # PIPL erasure: any uploaded file may hold the person, so every finished job's file goes now.
        cutoff = now or timezone.now()
        note = " " + _("The uploaded file was deleted when a contact was erased.")
    elif retention is None:
        return 0
    else:
        cutoff = (now or timezone.now()) - retention
        note = " " + _("The uploaded file was deleted %(days)s days after the import.") % {"days": retention.days}
    finished = ImportJob.objects.filter(status__in=[ImportJob.Status.DONE, ImportJob.Status.FAILED]).exclude(file="")
    expired = finished.filter(
        Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff)
    ).values_list("pk", "file")
    deleted = 0
    for pk, name in list(expired):
        # The rejected rows' original cells are copies of the file: they go with it (line, field and
        # message stay, so the report still says what was wrong).
        errors = ImportJob.objects.filter(pk=pk).values_list("errors", flat=True).first() or []
        stripped = [{k: v for k, v in e.items() if k != "row"} for e in errors if isinstance(e, dict)]
        claimed = ImportJob.objects.filter(pk=pk, file=name).update(
            file="", errors=stripped, message=Concat("message", Value(note))
        )
        if not claimed:
            continue  # another sweep claimed it
        transaction.on_commit(lambda name=name, pk=pk: _file_delete(name, pk))
        deleted += 1
    return deleted


def _file_delete(name: str, pk: int) -> None:
    try:
        ImportJob._meta.get_field("file").storage.delete(name)
    except OSError:
        logger.exception("could not delete the file %s of import job %s", name, pk)


def import_jobs_sweep(*, requeue_after: dt.timedelta = dt.timedelta(minutes=10)) -> dict[str, int]:
    """Periodic clean-up, harmless when run twice at once. Jobs still QUEUED a while after they were
    created may have lost their enqueue (a crash between commit and ``on_commit``): they are enqueued
    again (a duplicate delivery does nothing, the claim decides). Jobs RUNNING far longer than any task
    may run lost their worker: they are marked failed (re-uploading the file is safe). Uploaded files of
    jobs finished longer ago than ``SCRM_IMPORT_RETENTION_DAYS`` are deleted."""
    from contacts.tasks import import_job_process

    now = timezone.now()
    queued = list(
        ImportJob.objects.filter(status=ImportJob.Status.QUEUED, created_at__lt=now - requeue_after).values_list(
            "pk", flat=True
        )
    )
    for pk in queued:
        import_job_process.delay(pk)
    failed = ImportJob.objects.filter(status=ImportJob.Status.RUNNING, created_at__lt=now - STALE_AFTER).update(
        status=ImportJob.Status.FAILED,
        finished_at=now,
        message=_(
            "The import stopped unexpectedly (its worker was lost). Upload the file again: rows already imported will come out unchanged."
        ),
    )
    return {"requeued": len(queued), "failed": failed, "files_deleted": import_job_files_delete(now=now)}
