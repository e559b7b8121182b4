from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from analytics.workbench import views as workbench_views

urlpatterns = [
    path("api/v1/", include("scrm.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    # After signing in, the workbench (unless the login page was given another page to go back to).
    path("login/", auth_views.LoginView.as_view(next_page="home"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("contacts/", include("contacts.urls")),
    path("communities/", include("communities.urls")),
    path("reports/", include("analytics.urls")),
    path("campaigns/", include("campaigns.urls")),
    path("wecom/", include("wecom.urls")),
    path("workbench/", include("analytics.workbench.urls")),
    # The landing page: the workbench (工作台).
    path("", workbench_views.workbench, name="home"),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
