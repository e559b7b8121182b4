"""CSV import of contacts and of purchases: one service used by the management commands, the API and the
dashboard.

How an import runs (docs/csv-import.md is the user-facing description):

1. The file is scanned once in binary to choose the encoding (UTF-8 with or without BOM, else GB18030, the
   superset of the GBK that Excel in China writes) and to count lines for the progress bar. Then it is
   streamed through the ``csv`` module; nothing holds the whole file in memory.
2. The header is checked: unknown, duplicate or missing columns fail the whole import before anything is
   written.
3. Rows are validated in Python one by one (all problems of a row are reported together), then handled in
   batches: one query per batch finds the existing contacts (or orders) the rows name, each row is resolved
   in file order (create / update / unchanged / rejected), and the batch is written set-based in its own
   transaction. On PostgreSQL new rows go in with ``COPY`` (ids taken from the table's sequence first) and
   changed rows with one ``UPDATE ... FROM`` a ``COPY``-filled temporary table; elsewhere ``bulk_create``
   and ``bulk_update`` do the same. No user input is ever part of SQL text: data travels through
   ``COPY`` and query parameters only. Parsing (pure Python, no queries) runs in a thread a batch or two
   ahead of the writing, which mostly waits on the database with the GIL released.

A rejected row writes nothing; valid rows are committed batch by batch; a crash in the middle of a batch
rolls that whole batch back. Re-importing a file is a no-op (rows are compared with what is stored and
unchanged rows are not written), so an interrupted import can simply be run again.

Where it lives: ``reading`` (encoding, CSV rows, header, cell parsers), ``rejected`` (the rejected-rows
CSV), ``writing`` (``COPY`` and bulk
inserts), ``driver`` (batches, the parsing thread, the report), ``contacts`` and ``purchases`` (one
importer per kind), ``jobs`` (``import_csv`` and the queued ImportJob). This package re-exports the public
names, so callers import from ``contacts.imports``.
"""

from __future__ import annotations

from scrm.csv_writer import FORMULA_START

from .contacts import CONTACT_COLUMNS, IMPORTED_FIELDS, _ContactImporter
from .driver import BATCH_SIZE, ImportReport
from .jobs import (
    STALE_AFTER,
    import_csv,
    import_job_create,
    import_job_fail,
    import_job_files_delete,
    import_job_run,
    import_jobs_sweep,
)
from .purchases import PURCHASE_COLUMNS, _PurchaseImporter
from .reading import ImportFileError
from .rejected import rejected_row, rejected_rows_csv, rejected_rows_header

__all__ = [
    "BATCH_SIZE",
    "CONTACT_COLUMNS",
    "FORMULA_START",
    "IMPORTED_FIELDS",
    "PURCHASE_COLUMNS",
    "STALE_AFTER",
    "ImportFileError",
    "ImportReport",
    "_ContactImporter",
    "_PurchaseImporter",
    "import_csv",
    "import_job_create",
    "import_job_fail",
    "import_job_files_delete",
    "import_job_run",
    "import_jobs_sweep",
    "rejected_row",
    "rejected_rows_csv",
    "rejected_rows_header",
]
