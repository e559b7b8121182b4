from __future__ import annotations

from django.urls import path

from . import views

app_name = "contacts"

urlpatterns = [
    path("", views.contact_list, name="list"),
    path("bulk-tag/", views.contact_bulk_tag, name="bulk_tag"),
    path("export/", views.contact_export, name="export"),
    path("exports/", views.export_list, name="exports"),
    path("exports/<int:pk>/", views.export_detail, name="export_detail"),
    path("exports/<int:pk>/progress/", views.export_progress, name="export_progress"),
    path("exports/<int:pk>/download/", views.export_download, name="export_download"),
    path("import/", views.contact_import, name="import"),
    path("import/<int:pk>/", views.import_detail, name="import_detail"),
    path("import/<int:pk>/progress/", views.import_progress, name="import_progress"),
    path("import/<int:pk>/rejected.csv", views.import_errors_csv, name="import_errors"),
    path("<int:pk>/", views.contact_detail, name="detail"),
    path("<int:pk>/tags/", views.contact_tag_change, name="tag_change"),
    path("<int:pk>/personal-data/", views.contact_personal_data, name="personal_data"),
]
