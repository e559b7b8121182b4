"""Celery entry points for contacts. Each task takes ids and calls one service."""

from __future__ import annotations

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError
from django.utils.translation import gettext as _

from . import exports, imports


class _ImportTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Retries are used up (or the error was not transient): the job must not stay QUEUED/RUNNING.
        job_id = kwargs.get("job_id", args[0] if args else None)
        if job_id is not None:
            imports.import_job_fail(job_id=job_id, message=_("The import failed: %(error)s") % {"error": exc})


@shared_task(
    base=_ImportTask,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=5,
)
def import_job_process(job_id: int) -> None:
    """Run one queued CSV import. Safe to deliver twice: only the delivery that claims the job runs it."""
    imports.import_job_run(job_id=job_id)


@shared_task
def import_jobs_sweep() -> dict[str, int]:
    """Re-enqueue imports whose enqueue was lost and fail the ones whose worker died (run it every few
    minutes from beat; running it twice at once is harmless)."""
    return imports.import_jobs_sweep()


class _ExportTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        job_id = kwargs.get("job_id", args[0] if args else None)
        if job_id is not None:
            exports.jobs.export_job_fail(job_id=job_id, message=_("The export failed: %(error)s") % {"error": exc})


@shared_task(base=_ExportTask)
def export_job_process(job_id: int) -> None:
    """Write one queued contact export. Safe to deliver twice: only the delivery that claims the job runs it."""
    exports.export_job_run(job_id=job_id)


@shared_task
def export_jobs_sweep() -> dict[str, int]:
    """Re-enqueue lost exports, fail the ones whose worker died, delete expired files (every few minutes)."""
    return exports.export_jobs_sweep()
