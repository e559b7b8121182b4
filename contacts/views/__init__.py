"""Dashboard pages for contacts: the list (filters, bulk tagging, export), a contact's whole relationship
on one page, and CSV import with its progress.

Every read starts from ``contacts.selectors`` so an operator only ever reaches the contacts they own; an
id outside that set is a 404, never a 403 that would confirm the contact exists.
"""

from .detail import contact_detail, contact_personal_data, contact_tag_change
from .exports import contact_export, export_detail, export_download, export_list, export_progress
from .imports import contact_import, import_detail, import_errors_csv, import_progress
from .list import contact_bulk_tag, contact_list

__all__ = [
    "contact_bulk_tag",
    "contact_detail",
    "contact_export",
    "contact_import",
    "contact_list",
    "contact_personal_data",
    "contact_tag_change",
    "export_detail",
    "export_download",
    "export_list",
    "export_progress",
    "import_detail",
    "import_errors_csv",
    "import_progress",
]
