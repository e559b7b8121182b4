"""Communities (社群) and who is in them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from scrm.querysets import RestrictedQuerySet

SEE_ALL_COMMUNITIES = "communities.view_all_communities"


class CommunityQuerySet(RestrictedQuerySet):
    """A community is run by its owner and its admins; managers and integrators see every one."""

    see_all_permissions = (SEE_ALL_COMMUNITIES,)

    def owned_by(self, user, prefix: str = "") -> Q:
        admins = Community.admins.through.objects.filter(user=user).values("community")
        return Q(**{f"{prefix}owner": user}) | Q(**{f"{prefix}pk__in": admins})


class MembershipQuerySet(RestrictedQuerySet):
    """Memberships in communities the user runs, and the memberships of contacts the user owns."""

    def sees_all(self, user) -> bool:
        from contacts.models import Contact

        return Community.objects.sees_all(user) and Contact.objects.sees_all(user)

    def owned_by(self, user, prefix: str = "") -> Q:
        from contacts.models import Contact

        communities = Community.objects.visible_to(user).values("pk")
        contacts = Contact.objects.live().visible_to(user).values("pk")
        return Q(**{f"{prefix}community__in": communities}) | Q(**{f"{prefix}contact__in": contacts})


class Community(models.Model):
    """One group of contacts run by staff: a WeChat or WeCom group, a member club, a training camp."""

    class Kind(models.TextChoices):
        PRODUCT_USERS = "product_users", _("Product users")
        INTEREST = "interest", _("Interest")
        MEMBERS_ONLY = "members_only", _("Members only")
        GENERAL = "general", _("General")
        EVENT = "event", _("Event / temporary")
        TRAINING = "training", _("Training")

    class Platform(models.TextChoices):
        WECHAT_GROUP = "wechat_group", _("WeChat group")
        WECOM_GROUP = "wecom_group", _("WeCom group")
        OTHER = "other", _("Other")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        ARCHIVED = "archived", _("Archived")

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("type"), max_length=20, choices=Kind.choices, default=Kind.GENERAL)
    platform = models.CharField(_("platform"), max_length=20, choices=Platform.choices, default=Platform.WECHAT_GROUP)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_communities",
        verbose_name=_("owner"),
    )
    admins = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="administered_communities", verbose_name=_("admins")
    )
    capacity = models.PositiveIntegerField(_("capacity"), default=500)
    rules = models.TextField(_("rules"), blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    external_chat_id = models.CharField(_("external chat ID"), max_length=64, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = CommunityQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("community")
        verbose_name_plural = _("communities")
        permissions = [("view_all_communities", _("Can see and run every community"))]
        indexes = [models.Index(fields=["owner", "status"], name="community_owner_status")]
        constraints = [models.CheckConstraint(condition=Q(capacity__gt=0), name="community_capacity_positive")]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """One stay of one contact in one community, from joining to leaving. Re-joining starts a new row,
    so the history of joins and leaves is kept; at most one row per pair is open at a time."""

    class Role(models.TextChoices):
        MEMBER = "member", _("Member")
        ADMIN = "admin", _("Admin")
        KOC = "koc", _("KOC")

    class JoinSource(models.TextChoices):
        QR_CODE = "qr_code", _("QR code")
        INVITE = "invite", _("Invited by a member")
        STAFF = "staff", _("Added by staff")
        IMPORT = "import", _("Import")
        API = "api", _("API")

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="memberships")
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(_("joined at"))
    left_at = models.DateTimeField(_("left at"), null=True, blank=True)
    join_source = models.CharField(_("joined via"), max_length=10, choices=JoinSource.choices, default=JoinSource.STAFF)
    invited_by = models.ForeignKey(
        "contacts.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["-joined_at", "-id"]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["community", "contact"], condition=Q(left_at__isnull=True), name="membership_one_open"
            ),
            models.CheckConstraint(
                condition=Q(left_at__isnull=True) | Q(left_at__gte=models.F("joined_at")),
                name="membership_left_after_join",
            ),
        ]
        indexes = [
            models.Index(fields=["contact", "-joined_at"], name="membership_contact"),
            models.Index(fields=["community", "left_at"], name="membership_community_open"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id}@{self.community_id}"

    @property
    def is_active(self) -> bool:
        return self.left_at is None
