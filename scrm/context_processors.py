"""Template context shared by every dashboard page."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from scrm.roles import user_role

# Later features append their sections here: (url name, label, permission needed or None).
NAVIGATION = [
    ("contacts:list", _("Contacts"), "contacts.view_contact"),
    ("contacts:import", _("Import"), "contacts.import_contacts"),
    ("communities:list", _("Communities"), "communities.view_community"),
]


def navigation(request):
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return {}
    items = []
    for url_name, label, perm in NAVIGATION:
        if perm is None or user.has_perm(perm):
            url = reverse(url_name)
            items.append({"url": url, "label": label, "active": request.path.startswith(url)})
    return {"nav_items": items, "user_role": user_role(user)}
