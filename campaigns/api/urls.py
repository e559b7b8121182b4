"""Routes of the campaigns API, mounted under ``/api/v1/`` by ``scrm/api_urls.py``."""

from __future__ import annotations

from rest_framework.routers import Route, SimpleRouter

from . import views


class Router(SimpleRouter):
    """A SimpleRouter that also serves singleton resources: a viewset with ``singleton = True`` answers
    ``GET`` (``retrieve``) and ``PUT`` (``update``) on its prefix, with no id in the URL."""

    singleton_routes = [
        Route(
            url=r"^{prefix}{trailing_slash}$",
            mapping={"get": "retrieve", "put": "update"},
            name="{basename}-detail",
            detail=True,
            initkwargs={"suffix": "Instance"},
        ),
    ]

    def get_routes(self, viewset):
        if getattr(viewset, "singleton", False):
            return self.singleton_routes
        return super().get_routes(viewset)


router = Router()
router.register("segments", views.SegmentViewSet, basename="segment")
router.register("templates", views.MessageTemplateViewSet, basename="messagetemplate")
router.register("broadcasts", views.BroadcastViewSet, basename="broadcast")
router.register("deliveries", views.DeliveryViewSet, basename="delivery")
router.register("outbox", views.OutboxMessageViewSet, basename="outboxmessage")
router.register("frequency-policy", views.FrequencyPolicyViewSet, basename="frequencypolicy")
router.register("automations", views.AutomationViewSet, basename="automation")
router.register("automation-runs", views.AutomationRunViewSet, basename="automationrun")
router.register("tasks", views.FollowUpTaskViewSet, basename="followuptask")

urlpatterns = router.urls
