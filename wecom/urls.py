"""The WeCom pages, mounted at /wecom/ (namespace ``wecom``), and the public callback endpoint."""

from __future__ import annotations

from django.urls import path

from . import views, views_callback

app_name = "wecom"

urlpatterns = [
    path("callback/", views_callback.callback, name="callback"),
    # Channel live codes (渠道活码): the section's home page.
    path("", views.live_code_list, name="live_code_list"),
    path("live-codes/new/", views.live_code_create, name="live_code_create"),
    path("live-codes/<int:pk>/", views.live_code_detail, name="live_code_detail"),
    path("live-codes/<int:pk>/edit/", views.live_code_edit, name="live_code_edit"),
    path("live-codes/<int:pk>/qr.png", views.live_code_qr, name="live_code_qr"),
    path("live-codes/<int:pk>/archive/", views.live_code_archive, name="live_code_archive"),
    path("live-codes/<int:pk>/simulate-scan/", views.live_code_simulate_scan, name="live_code_simulate_scan"),
    path("intake/", views.intake, name="intake"),
    # The connection (managers)
    path("connection/", views.connection, name="connection"),
    path("connection/token/", views.connection_token, name="connection_token"),
    path("connection/sync/", views.sync_now, name="sync_now"),
    path("staff/<int:pk>/user/", views.staff_account_map, name="staff_account_map"),
]
