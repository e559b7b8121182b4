from __future__ import annotations

from django.urls import path

from . import views

app_name = "communities"

urlpatterns = [
    path("", views.community_list, name="list"),
    path("<int:pk>/", views.community_detail, name="detail"),
]
