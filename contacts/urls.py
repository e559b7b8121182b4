from __future__ import annotations

from django.urls import path

from . import views

app_name = "contacts"

urlpatterns = [
    path("", views.contact_list, name="list"),
    path("import/", views.contact_import, name="import"),
    path("<int:pk>/", views.contact_detail, name="detail"),
]
