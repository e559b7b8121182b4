from __future__ import annotations

from django.urls import path

from . import views
from .views import detail
from .views import list as list_views

app_name = "contacts"

urlpatterns = [
    path("", views.contact_list, name="list"),
    path("bulk-tag/", views.contact_bulk_tag, name="bulk_tag"),
    path("bulk/", list_views.contact_bulk_action, name="bulk"),
    path("saved-views/", list_views.saved_view_list, name="saved_views"),
    path("saved-views/<int:pk>/", list_views.saved_view_change, name="saved_view_change"),
    path("saved-views/<int:pk>/delete/", list_views.saved_view_remove, name="saved_view_delete"),
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
    # The contact page as a workspace
    path("<int:pk>/profile/", detail.contact_profile_edit, name="profile_edit"),
    path("<int:pk>/notes/", detail.contact_note_create, name="note_create"),
    path("<int:pk>/tasks/", detail.contact_task_create, name="task_create"),
    path("<int:pk>/communities/", detail.contact_community_join, name="community_join"),
    path("<int:pk>/scores/refresh/", detail.contact_scores_refresh, name="scores_refresh"),
    path("<int:pk>/personal-data/", views.contact_personal_data, name="personal_data"),
]
