"""The project's URLs plus the campaigns pages at /campaigns/, for the tests that run before
``scrm/urls.py`` includes them (ROOT_URLCONF override). Once it does, this module changes nothing."""

from __future__ import annotations

from django.urls import include, path

from scrm.urls import urlpatterns as project_urlpatterns

urlpatterns = list(project_urlpatterns)
if not any(getattr(p, "namespace", None) == "campaigns" for p in urlpatterns):
    urlpatterns.insert(0, path("campaigns/", include("campaigns.urls")))
