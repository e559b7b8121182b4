"""Template context shared by every dashboard page."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from scrm import roles
from scrm.roles import user_role

# Later features append their sections here: (url name, label, permission needed — one, or a tuple of which
# any one will do — or None).
NAVIGATION = [
    ("home", _("Workbench"), None),
    ("contacts:list", _("Contacts"), "contacts.view_contact"),
    ("contacts:import", _("Import"), "contacts.import_contacts"),
    ("communities:list", _("Communities"), "communities.view_community"),
    ("campaigns:broadcast_list", _("Campaigns"), "campaigns.view_broadcast"),
    ("campaigns:task_list", _("My tasks"), "campaigns.view_followuptask"),
    # The team's reports, or (operators) one's own figures: see scrm.roles.REPORTS_PERMISSIONS.
    ("analytics:overview", _("Reports"), roles.REPORTS_PERMISSIONS),
    # WeCom: managers get the whole section (live codes and the connection), operators its live codes.
    # An entry whose page an earlier entry already links to is left out.
    ("wecom:live_code_list", _("WeCom"), "wecom.view_callbackevent"),
    ("wecom:live_code_list", _("Live codes"), "wecom.view_livecode"),
]

ROLE_LABELS = {
    roles.ADMIN: _("Administrator"),
    roles.MANAGER: _("Manager"),
    roles.OPERATOR: _("Operator"),
    roles.INTEGRATOR: _("Integrator"),
}

CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "HKD": "HK$", "JPY": "¥"}


def _allowed(user, perm) -> bool:
    if perm is None:
        return True
    if isinstance(perm, tuple):
        return any(user.has_perm(one) for one in perm)
    return user.has_perm(perm)


def _is_under(path: str, url: str) -> bool:
    """Whether ``path`` is the section at ``url``: the page itself or one below it. The root ("/", the
    workbench) is a prefix of every path, so it is the active section only on itself."""
    return path == url if url == "/" else path.startswith(url)


def navigation(request):
    user = getattr(request, "user", None)
    context = {"currency_symbol": CURRENCY_SYMBOLS.get(settings.SCRM_CURRENCY, settings.SCRM_CURRENCY + " ")}
    if not (user and user.is_authenticated):
        return context
    items = []
    for url_name, label, perm in NAVIGATION:
        if _allowed(user, perm):
            url = reverse(url_name)
            if any(item["url"] == url for item in items):
                continue
            items.append({"url": url, "label": label, "active": _is_under(request.path, url)})
    # The longest matching prefix wins, so /contacts/import/ highlights "Import", not "Contacts" too.
    active = [item for item in items if item["active"]]
    if len(active) > 1:
        longest = max(active, key=lambda item: len(item["url"]))
        for item in active:
            item["active"] = item is longest
    role = user_role(user)
    return {
        **context,
        "nav_items": items,
        "user_role": role,
        "user_role_label": ROLE_LABELS.get(role, ""),
        "user_display_name": user.get_full_name() or user.get_username(),
    }
