"""Routes of the WeCom API, mounted under ``/api/v1/`` by ``scrm/api_urls.py``."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("wecom/live-codes", views.LiveCodeViewSet, basename="wecom-livecode")
router.register("wecom/follows", views.FollowRelationshipViewSet, basename="wecom-follow")
router.register("wecom/callbacks", views.CallbackEventViewSet, basename="wecom-callback")
router.register("wecom/sync-runs", views.SyncRunViewSet, basename="wecom-syncrun")
router.register("wecom/staff", views.StaffAccountViewSet, basename="wecom-staff")

urlpatterns = router.urls
