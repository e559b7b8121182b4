from __future__ import annotations

from django.urls import path

from . import views_callback

app_name = "wecom"

urlpatterns = [
    path("callback/", views_callback.callback, name="callback"),
]
