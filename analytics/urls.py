"""The report pages, mounted at /reports/ (namespace "analytics")."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "analytics"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("funnel/", views.funnel, name="funnel"),
    path("cohorts/", views.cohorts, name="cohorts"),
    path("channels/", views.channels, name="channels"),
    path("trend/", views.trend, name="trend"),
    path("decomposition/", views.decomposition, name="decomposition"),
    path("layers/", views.layers, name="layers"),
    path("communities/", views.communities, name="communities"),
    path("koc/", views.koc, name="koc"),
]
