"""The REST API, version 1."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

from analytics.api import views as analytics_views
from campaigns.api.urls import router as campaigns_router
from communities.api.views import CommunityViewSet, MembershipViewSet
from contacts.api import views as contact_views
from contacts.api.privacy import PersonalDataView
from wecom.api.urls import router as wecom_router

router = DefaultRouter()
router.register("contacts", contact_views.ContactViewSet, basename="contact")
router.register("imports", contact_views.ImportJobViewSet, basename="importjob")
router.register("exports", contact_views.ExportJobViewSet, basename="exportjob")
router.register("saved-views", contact_views.SavedViewViewSet, basename="savedview")
router.register("tag-groups", contact_views.TagGroupViewSet)
router.register("tags", contact_views.TagViewSet)
router.register("channels", contact_views.ChannelViewSet)
router.register("channel-spend", contact_views.ChannelSpendViewSet)
router.register("products", contact_views.ProductViewSet)
router.register("purchases", contact_views.PurchaseViewSet, basename="purchase")
router.register("touchpoints", contact_views.TouchpointViewSet, basename="touchpoint")
router.register("communities", CommunityViewSet, basename="community")
router.register("memberships", MembershipViewSet, basename="membership")

# Campaigns have their own router (it serves the singleton frequency-policy/ without an id).
urlpatterns = [
    # Everything held about one person (PIPL access request), JSON or ?as=csv.
    path("contacts/<int:pk>/personal-data/", PersonalDataView.as_view(), name="contact-personal-data"),
    *router.urls,
    *campaigns_router.urls,
]
# WeCom (企业微信): live codes, follow relationships, the callback inbox, sync runs, staff accounts.
urlpatterns += wecom_router.urls

# Analytics reports (GET only; ?format=csv for the tables): analytics/api/views.py.
urlpatterns += [
    path("analytics/overview/", analytics_views.OverviewView.as_view(), name="analytics-overview"),
    path("analytics/kpis/", analytics_views.KpisView.as_view(), name="analytics-kpis"),
    path("analytics/cohorts/", analytics_views.CohortsView.as_view(), name="analytics-cohorts"),
    path("analytics/funnel/", analytics_views.FunnelView.as_view(), name="analytics-funnel"),
    path("analytics/channels/", analytics_views.ChannelsView.as_view(), name="analytics-channels"),
    path("analytics/decomposition/", analytics_views.DecompositionView.as_view(), name="analytics-decomposition"),
    path("analytics/layers/", analytics_views.LayersView.as_view(), name="analytics-layers"),
    path("analytics/communities/", analytics_views.CommunitiesView.as_view(), name="analytics-communities"),
    path("analytics/koc/", analytics_views.KocView.as_view(), name="analytics-koc"),
    path("analytics/trend/", analytics_views.TrendView.as_view(), name="analytics-trend"),
    path("analytics/drilldown/", analytics_views.DrilldownView.as_view(), name="analytics-drilldown"),
]
