"""The four roles and what each may do. Roles are Django groups; ``roles_sync`` (run after every
migrate) makes the groups' permissions match this table, so it is the single place to change them."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

ADMIN = "admin"
MANAGER = "manager"
OPERATOR = "operator"
INTEGRATOR = "integrator"
ROLES = (ADMIN, MANAGER, OPERATOR, INTEGRATOR)

# The reports (/reports/). ``analytics.view_reports`` is the team's reports, the analytics API included
# (managers, admins, integrators). Operators hold ``analytics.view_contactscore`` instead — the analytics
# of the contacts they own — and get the report pages with their own figures: ``analytics.views`` pins the
# owner filter to them, which also leaves spend and every number built on it (CPL, CAC, ROI, LTV:CAC)
# empty, since spend belongs to channels, not to a staff member. See docs/reports.md.
TEAM_REPORTS_PERMISSION = "analytics.view_reports"
OWN_REPORTS_PERMISSION = "analytics.view_contactscore"
REPORTS_PERMISSIONS = (TEAM_REPORTS_PERMISSION, OWN_REPORTS_PERMISSION)

# "app.*" grants every permission of an app; other entries are "app.codename".
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    ADMIN: (
        "contacts.*",
        "communities.*",
        "campaigns.*",
        "analytics.*",
        "wecom.*",
        "auth.*",
        "scrm.*",  # API tokens and the audit trail
        "auditlog.view_logentry",  # field-by-field change history
        "axes.*",  # unlocking locked-out sign-ins
        "django_celery_beat.*",
    ),
    MANAGER: (
        "contacts.*",
        "communities.*",
        "campaigns.*",
        "analytics.*",
        # WeCom: live codes, staff accounts, the callback inbox and sync runs (add_syncrun starts a sync).
        "wecom.*",
        "auth.view_user",
        "django_celery_beat.view_periodictask",
    ),
    OPERATOR: (
        "contacts.view_contact",
        "contacts.add_contact",
        "contacts.change_contact",
        "contacts.import_contacts",
        "contacts.export_contacts",
        "contacts.view_importjob",
        "contacts.add_importjob",
        "contacts.view_taggroup",
        "contacts.view_tag",
        "contacts.add_tag",
        "contacts.view_contacttag",
        "contacts.view_channel",
        "contacts.view_product",
        "contacts.view_purchase",
        "contacts.add_purchase",
        "contacts.change_purchase",
        "contacts.view_touchpoint",
        "contacts.add_touchpoint",
        "communities.view_community",
        "communities.add_community",
        "communities.change_community",
        "communities.view_membership",
        "communities.add_membership",
        "communities.change_membership",
        # Campaigns: operators build audiences and broadcasts for their own contacts; a manager approves.
        "campaigns.view_segment",
        "campaigns.add_segment",
        "campaigns.change_segment",
        "campaigns.view_messagetemplate",
        "campaigns.add_messagetemplate",
        "campaigns.view_broadcast",
        "campaigns.add_broadcast",
        "campaigns.change_broadcast",
        "campaigns.view_delivery",
        "campaigns.view_automation",
        "campaigns.view_frequencypolicy",
        "campaigns.view_frequencycap",
        "campaigns.view_followuptask",
        "campaigns.add_followuptask",
        "campaigns.change_followuptask",
        # WeCom: the live codes (read), and the follow relationships of their own contacts.
        "wecom.view_livecode",
        "wecom.view_followrelationship",
        "auth.view_user",
        # Their own figures on the report pages (OWN_REPORTS_PERMISSION above), not the team's.
        "analytics.view_contactscore",
    ),
    INTEGRATOR: (
        "contacts.view_all_contacts",
        "contacts.view_contact",
        "contacts.add_contact",
        "contacts.change_contact",
        "contacts.import_contacts",
        "contacts.export_contacts",
        "contacts.view_importjob",
        "contacts.add_importjob",
        "contacts.view_taggroup",
        "contacts.view_tag",
        "contacts.add_tag",
        "contacts.view_contacttag",
        "contacts.view_channel",
        "contacts.add_channel",
        "contacts.view_channelspend",
        "contacts.add_channelspend",
        "contacts.view_product",
        "contacts.add_product",
        "contacts.change_product",
        "contacts.view_purchase",
        "contacts.add_purchase",
        "contacts.change_purchase",
        "contacts.view_touchpoint",
        "contacts.add_touchpoint",
        "communities.view_all_communities",
        "communities.view_community",
        "communities.view_membership",
        "communities.add_membership",
        "communities.change_membership",
        "analytics.view_reports",
        "campaigns.view_segment",
        "campaigns.view_messagetemplate",
        "campaigns.view_broadcast",
        "campaigns.add_broadcast",
        "campaigns.view_delivery",
        "campaigns.view_automation",
        "campaigns.view_followuptask",
        "wecom.view_livecode",
        "wecom.view_followrelationship",
        "wecom.view_staffaccount",
        "wecom.view_syncrun",
        "auth.view_user",
    ),
}


def _permissions_for(entries: tuple[str, ...]):
    query = Q(pk__in=[])
    for entry in entries:
        app_label, codename = entry.split(".", 1)
        if codename == "*":
            query |= Q(content_type__app_label=app_label)
        else:
            query |= Q(content_type__app_label=app_label, codename=codename)
    return Permission.objects.filter(query)


def roles_sync() -> None:
    """Create the role groups and set their permissions to exactly ``ROLE_PERMISSIONS``. Idempotent."""
    for role, entries in ROLE_PERMISSIONS.items():
        group, _created = Group.objects.get_or_create(name=role)
        group.permissions.set(_permissions_for(entries))


def user_role(user) -> str | None:
    """The highest role a user holds (superusers are admins)."""
    if not user or not user.is_authenticated:
        return None
    if user.is_superuser:
        return ADMIN
    names = set(user.groups.values_list("name", flat=True))
    return next((role for role in ROLES if role in names), None)
