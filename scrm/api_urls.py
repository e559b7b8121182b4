"""The REST API, version 1."""

from __future__ import annotations

from rest_framework.routers import DefaultRouter

from communities.api.views import CommunityViewSet, MembershipViewSet
from contacts.api import views as contact_views

router = DefaultRouter()
router.register("contacts", contact_views.ContactViewSet, basename="contact")
router.register("imports", contact_views.ImportJobViewSet, basename="importjob")
router.register("tag-groups", contact_views.TagGroupViewSet)
router.register("tags", contact_views.TagViewSet)
router.register("channels", contact_views.ChannelViewSet)
router.register("channel-spend", contact_views.ChannelSpendViewSet)
router.register("products", contact_views.ProductViewSet)
router.register("purchases", contact_views.PurchaseViewSet, basename="purchase")
router.register("touchpoints", contact_views.TouchpointViewSet, basename="touchpoint")
router.register("communities", CommunityViewSet, basename="community")
router.register("memberships", MembershipViewSet, basename="membership")

urlpatterns = router.urls
