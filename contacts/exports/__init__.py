"""Contact exports: ``rows`` turns a contact queryset into the CSV of the import's columns; ``jobs`` runs an
export in the background (``ExportJob``) so that no export depends on a web worker's time limit."""

from .jobs import export_job_create, export_job_run, export_jobs_sweep, export_queryset, exports_expire_all
from .rows import EXPORT_CHUNK, contact_csv_chunks, contact_csv_rows

__all__ = [
    "EXPORT_CHUNK",
    "contact_csv_chunks",
    "contact_csv_rows",
    "export_job_create",
    "export_job_run",
    "export_jobs_sweep",
    "export_queryset",
    "exports_expire_all",
]
