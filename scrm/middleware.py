"""Response headers the whole site shares."""

from __future__ import annotations

from django.conf import settings
from django.utils.cache import patch_cache_control


class NoStoreForAuthenticatedMiddleware:
    """``Cache-Control: no-store`` on every response to a signed-in user or an API token, so a shared
    browser's cache, the back button after logout or a proxy never keeps a page of customer data.
    Static files are left cacheable (WhiteNoise serves them before this middleware runs; the path check
    covers ``runserver`` and the test server)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(self.static_prefix):
            return response
        user = getattr(request, "user", None)
        if (user is not None and user.is_authenticated) or "HTTP_AUTHORIZATION" in request.META:
            patch_cache_control(response, no_store=True, private=True)
        return response
