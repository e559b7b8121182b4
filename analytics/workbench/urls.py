"""The workbench's blocks that load after the page, mounted at /workbench/ (namespace ``workbench``). The
page itself is the site's root, ``/`` (``scrm.urls``, name ``home``)."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "workbench"

urlpatterns = [
    path("blocks/<slug:name>/", views.block, name="block"),
]
